import { KeyedLimiter } from '../../shared/keyed-limiter';
import type { LogSink } from '../../shared/log';
import type { AuthMetrics } from '../metrics';
import { DeadlineExceededError, type HashPool } from './admission';
import { describe, jitter, type Outcome, refusal } from './outcome';

export interface GateLimits {
  /** Off only to measure the naive baseline: every request hashes at once, nothing is shed. */
  admissionControl: boolean;
  ipLoginsPerMinute: number;
  ipRefreshesPerMinute: number;
  accountLoginsPerMinute: number;
  cheapConcurrency: number;
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

  /** The password class: limits, then a hash slot reserved before `work` touches the store. */
  async password(
    ip: string,
    username: string,
    route: string,
    work: (inSlot: InSlot) => Promise<Outcome>,
  ): Promise<Outcome> {
    if (!this.limits.admissionControl) return this.naive(route, work);
    const { metrics } = this;
    const shed = (reason: string, outcome: string, answer: Outcome): Outcome => {
      metrics.shed.inc({ class: 'login', reason });
      metrics.totals.shed++;
      metrics.requests.inc({ route, outcome });
      return answer;
    };
    const now = Date.now();
    const ipWait = this.ipLogins.take(ip, now);
    if (ipWait > 0)
      return shed(
        'ip_rate',
        'ip_rate',
        refusal(429, 'too_many_requests', 'too many attempts from this address', jitter(ipWait)),
      );
    const accountWait = this.accountLogins.take(username, now);
    if (accountWait > 0)
      return shed(
        'account_rate',
        'account_rate',
        refusal(429, 'too_many_attempts', 'too many attempts for this account', jitter(accountWait)),
      );
    const reservation = this.pool.reserve();
    if (!reservation.admitted)
      return shed(
        reservation.reason,
        'shed',
        refusal(503, 'overloaded', 'login capacity is full; retry later', reservation.retryAfterMs),
      );
    const ticket = reservation.ticket;
    try {
      return await work((job) => ticket.run(this.counted(job)));
    } catch (err) {
      if (err instanceof DeadlineExceededError)
        return shed(
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
