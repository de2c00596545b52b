import { KeyedLimiter } from '../../shared/keyed-limiter';
import type { LogSink } from '../../shared/log';
import type { AuthMetrics } from '../metrics';
import { DeadlineExceededError, type HashPool, type HashTicket } from './admission';
import { describe, jitter, type Outcome, type Refusal, refusal } from './outcome';

export interface GateLimits {
  /** Off only to measure the naive baseline: every request hashes at once, nothing is shed. */
  admissionControl: boolean;
  ipLoginsPerMinute: number;
  ipRefreshesPerMinute: number;
  accountLoginsPerMinute: number;
  cheapConcurrency: number;
}

/** What admit() gave a request: its place in the hash pool (none when admission control is off). */
export interface Admitted {
  ticket: HashTicket | undefined;
}

/** Runs a job in the hash slot the request holds. */
export type InSlot = <T>(job: () => Promise<T>) => Promise<T>;

/**
 * Admission by cost. The password class (sign-up, login, password change) passes per-IP and
 * per-account limits, then reserves a place in the hash pool before any store access, and is shed at
 * once with 503 and jittered advice when the pool is full. The cheap class (refresh, logout, key and
 * revocation reads) has its own per-IP rate and bounded concurrency.
 */
export class Gates {
  private readonly ipLogins: KeyedLimiter;
  private readonly ipRefreshes: KeyedLimiter;
  private readonly accountLogins: KeyedLimiter;

  constructor(
    private readonly limits: GateLimits,
    private readonly pool: HashPool,
    private readonly metrics: AuthMetrics,
    private readonly log: LogSink<'error'>,
  ) {
    this.ipLogins = new KeyedLimiter(
      limits.ipLoginsPerMinute,
      Math.max(1, Math.ceil(limits.ipLoginsPerMinute / 4)),
    );
    this.ipRefreshes = new KeyedLimiter(
      limits.ipRefreshesPerMinute,
      Math.max(1, Math.ceil(limits.ipRefreshesPerMinute / 4)),
    );
    this.accountLogins = new KeyedLimiter(limits.accountLoginsPerMinute, limits.accountLoginsPerMinute);
  }

  /** The per-IP rate of the cheap class alone (public key and revocation reads). */
  readRate(ip: string): Outcome | undefined {
    const wait = this.ipRefreshes.take(ip, Date.now());
    return wait > 0
      ? refusal(429, 'too_many_requests', 'too many requests from this address', jitter(wait))
      : undefined;
  }

  /** The cheap class: bounded concurrency and a per-IP rate, shed with 503/429 before any store access. */
  async cheap(ip: string, route: string, work: () => Promise<Outcome>): Promise<Outcome> {
    const wait = this.ipRefreshes.take(ip, Date.now());
    const { metrics } = this;
    if (wait > 0) {
      metrics.shed.inc({ class: 'cheap', reason: 'ip_rate' });
      return refusal(429, 'too_many_requests', 'too many requests from this address', jitter(wait));
    }
    if (this.limits.admissionControl && metrics.cheapInFlight >= this.limits.cheapConcurrency) {
      metrics.shed.inc({ class: 'cheap', reason: 'busy' });
      return refusal(503, 'overloaded', 'too many requests in progress', jitter(250));
    }
    metrics.cheapInFlight++;
    try {
      return await work();
    } catch (err) {
      this.log.error({ err: describe(err), route }, 'store call failed');
      metrics.requests.inc({ route, outcome: 'store_unavailable' });
      return refusal(503, 'store_unavailable', 'account store unavailable', jitter(1000));
    } finally {
      metrics.cheapInFlight--;
    }
  }

  /**
   * The password class, first half, before the body is even read: the per-IP rate, then a place in the
   * hash pool. A storm is refused here, for the price of reading headers. The routes call this from an
   * onRequest hook; the place is given back when the request ends without using it.
   */
  admit(ip: string, route: string): Admitted | Refusal {
    if (!this.limits.admissionControl) return { ticket: undefined };
    const ipWait = this.ipLogins.take(ip, Date.now());
    if (ipWait > 0)
      return this.shed(
        route,
        'ip_rate',
        'ip_rate',
        refusal(429, 'too_many_requests', 'too many attempts from this address', jitter(ipWait)),
      );
    const reservation = this.pool.reserve();
    if (!reservation.admitted)
      return this.shed(
        route,
        reservation.reason,
        'shed',
        refusal(503, 'overloaded', 'login capacity is full; retry later', reservation.retryAfterMs),
      );
    return { ticket: reservation.ticket };
  }

  /** The second half, once the username is known: its rate, then `work` with the place admitted. */
  async password(
    admitted: Admitted,
    username: string,
    route: string,
    work: (inSlot: InSlot) => Promise<Outcome>,
  ): Promise<Outcome> {
    const ticket = admitted.ticket;
    if (!ticket) return this.naive(route, work);
    const { metrics } = this;
    try {
      const accountWait = this.accountLogins.take(username, Date.now());
      if (accountWait > 0)
        return this.shed(
          route,
          'account_rate',
          'account_rate',
          refusal(429, 'too_many_attempts', 'too many attempts for this account', jitter(accountWait)),
        );
      return await work((job) => ticket.run(this.counted(job)));
    } catch (err) {
      if (err instanceof DeadlineExceededError)
        return this.shed(
          route,
          'deadline',
          'deadline',
          refusal(503, 'overloaded', 'login capacity is full; retry later', err.retryAfterMs),
        );
      this.log.error({ err: describe(err), route }, 'login work failed');
      metrics.requests.inc({ route, outcome: 'store_unavailable' });
      return refusal(503, 'store_unavailable', 'account store unavailable', jitter(1000));
    } finally {
      ticket.cancel(); // no-op once run; frees the place if the work never reached the pool
    }
  }

  private shed(route: string, reason: string, outcome: string, answer: Refusal): Refusal {
    this.metrics.shed.inc({ class: 'login', reason });
    this.metrics.totals.shed++;
    this.metrics.requests.inc({ route, outcome });
    return answer;
  }

  /** The baseline the benchmark compares against: every request hashes at once, nothing is shed. */
  private async naive(route: string, work: (inSlot: InSlot) => Promise<Outcome>): Promise<Outcome> {
    try {
      return await work((job) => this.counted(job)());
    } catch (err) {
      this.log.error({ err: describe(err), route }, 'login work failed');
      return refusal(503, 'store_unavailable', 'account store unavailable', jitter(1000));
    }
  }

  /** Password-class work counted as admitted once it holds a hash slot. */
  private counted<T>(job: () => Promise<T>): () => Promise<T> {
    return () => {
      this.metrics.totals.admitted++;
      return job();
    };
  }
}
