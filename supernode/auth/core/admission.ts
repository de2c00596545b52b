/**
 * Admission by cost for password hashing. One scrypt verify at OWASP parameters costs ~400 ms of a
 * core and 128 MiB; refusing a request costs microseconds. So a login storm is met with a bounded
 * pool (`concurrency` hashes at once), a short queue (`maxQueue`) whose entries give up at a deadline,
 * and an immediate, jittered "retry after" for everyone beyond that. See docs/admission.md.
 */

export interface HashPoolOptions {
  /** Hashes at once; about one per core (libuv's thread pool, shared with fs and dns, must be larger). */
  concurrency: number;
  /** Reservations allowed beyond the `concurrency` running ones. */
  maxQueue: number;
  /** A reservation not started within this many ms of `reserve()` is dropped before hashing. */
  deadlineMs: number;
  /** Estimate of one hash's duration until one has completed; default 400. */
  initialRunMs?: number;
  /** Monotonic clock in ms; default `performance.now`. */
  now?: () => number;
  /** Jitter source in [0, 1); default `Math.random`. */
  random?: () => number;
  /** Called with each started job's queue wait in ms (from `run()` to start), e.g. for a histogram. */
  onWait?: (waitMs: number) => void;
}

export interface HashTicket {
  /**
   * Waits for a slot (FIFO by `run()` call), then runs `work`. If the ticket's deadline (reserve time +
   * deadlineMs) passes before a slot frees, rejects with DeadlineExceededError WITHOUT running work.
   * Releases the slot when work settles (success or failure). May be called once.
   */
  run<T>(work: () => Promise<T>): Promise<T>;
  /**
   * Gives the reservation back without running (request abandoned). Idempotent; a pending `run()`
   * rejects with TicketCancelledError, as does `run()` after `cancel()`. No effect once work started.
   */
  cancel(): void;
}

export type Reservation =
  | { admitted: true; ticket: HashTicket }
  | { admitted: false; reason: 'queue_full' | 'deadline_unreachable'; retryAfterMs: number };

export interface HashPoolStats {
  /** Jobs running now (at most `concurrency`). */
  inFlight: number;
  /** Reservations holding queue space: reserved (not yet `run()`) or waiting for a slot. */
  queued: number;
  completed: number;
  failed: number;
  shedQueueFull: number;
  droppedDeadline: number;
  cancelled: number;
  /** EWMA of successful run durations, ms; starts at `initialRunMs`. */
  runMsEwma: number;
  /** Sum of successful run durations, ms: with `completed`, the mean hash time over any interval. */
  runMsTotal: number;
  /** Sum and last value of queue waits (from `run()` to start) of started jobs, ms. */
  waitMsTotal: number;
  lastWaitMs: number;
}

/** The reservation's deadline passed before a slot freed; its work never ran. */
export class DeadlineExceededError extends Error {
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super(`hash queue deadline exceeded; retry after ${retryAfterMs} ms`);
    this.name = 'DeadlineExceededError';
    this.retryAfterMs = retryAfterMs;
  }
}

/** `run()` on a cancelled ticket, or a pending `run()` whose ticket was cancelled. */
export class TicketCancelledError extends Error {
  constructor() {
    super('hash ticket was cancelled');
    this.name = 'TicketCancelledError';
  }
}

/** Weight of the newest run in the duration EWMA: reacts within ~5 runs, yet one outlier moves it 20%. */
const EWMA_ALPHA = 0.2;
/** Retry advice never below this: a quicker retry would likely be shed again. */
export const MIN_RETRY_AFTER_MS = 250;
/** Retry advice never above this. */
export const MAX_RETRY_AFTER_MS = 60_000;

type EntryState = 'reserved' | 'waiting' | 'running' | 'settled' | 'cancelled' | 'expired';

/** Pool-side state of one reservation; a node of the waiting list while in state 'waiting'. */
interface Entry {
  state: EntryState;
  deadlineAt: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  prev: Entry | null;
  next: Entry | null;
  runCalledAt: number;
  /** Starts the work; set by `run()`. */
  start: (() => void) | null;
  /** Rejects the pending `run()`. */
  reject: ((err: Error) => void) | null;
}

/** Admit a place only if its estimated turn comes within this share of the deadline. */
const DEADLINE_ADMISSION_SHARE = 0.9;

export class HashPool {
  onWait?: (waitMs: number) => void;

  private readonly concurrency: number;
  private readonly maxQueue: number;
  private readonly deadlineMs: number;
  private readonly now: () => number;
  private readonly random: () => number;
  // Waiting list (tickets whose run() was called, in call order): a doubly linked list, so cancel and
  // expiry unlink in O(1) and dead entries never accumulate.
  private head: Entry | null = null;
  private tail: Entry | null = null;
  private readonly s: HashPoolStats;
  private shedRate = 0;
  private shedInWindow = 0;
  private shedWindowStart = 0;

  constructor(options: HashPoolOptions) {
    const { concurrency, maxQueue, deadlineMs, initialRunMs = 400 } = options;
    if (!Number.isInteger(concurrency) || concurrency < 1)
      throw new RangeError('concurrency must be an integer >= 1');
    if (!Number.isInteger(maxQueue) || maxQueue < 0) throw new RangeError('maxQueue must be an integer >= 0');
    if (!Number.isFinite(deadlineMs) || deadlineMs <= 0) throw new RangeError('deadlineMs must be > 0');
    if (!Number.isFinite(initialRunMs) || initialRunMs <= 0) throw new RangeError('initialRunMs must be > 0');
    this.concurrency = concurrency;
    this.maxQueue = maxQueue;
    this.deadlineMs = deadlineMs;
    this.now = options.now ?? (() => performance.now());
    this.random = options.random ?? Math.random;
    this.onWait = options.onWait;
    this.s = {
      inFlight: 0,
      queued: 0,
      completed: 0,
      failed: 0,
      shedQueueFull: 0,
      droppedDeadline: 0,
      cancelled: 0,
      runMsEwma: initialRunMs,
      runMsTotal: 0,
      waitMsTotal: 0,
      lastWaitMs: 0,
    };
  }

  /** A snapshot of the counters. */
  get stats(): HashPoolStats {
    return { ...this.s };
  }

  /** Hashes at once (read-only, for GET /status). */
  get size(): number {
    return this.concurrency;
  }

  /** C, the hash capacity: logins per second at the recent hash duration (as pressureMs() counts it). */
  capacityPerSec(): number {
    return (this.concurrency * 1000) / this.s.runMsEwma;
  }

  /**
   * Time for the pool to work off what it has already admitted:
   * `ceil((inFlight + queued) / concurrency) * runMsEwma`, i.e. rounds of `concurrency` parallel hashes,
   * each counted as a full average run. Conservative (a running hash is partly done), which suits retry
   * advice: a client told to come back after this should find room.
   */
  /**
   * How long until the clients turned away in the last seconds could be served: shed rate over hash
   * capacity, in ms. In a storm the queue is short but thousands wait outside it; advising only the
   * queue's wait would bring them all back within a second or two, at many times what can be served.
   */
  pressureMs(): number {
    this.rollShedWindow(this.now());
    const capacityPerSec = (this.concurrency * 1000) / this.s.runMsEwma;
    return (this.shedRate / capacityPerSec) * 1000;
  }

  private noteShed(): void {
    this.rollShedWindow(this.now());
    this.shedInWindow++;
  }

  /** Sheds per second, smoothed over 1 s windows with a 1 s half-life; idle windows decay it. */
  private rollShedWindow(now: number): void {
    const elapsed = now - this.shedWindowStart;
    if (elapsed < 1000) return;
    const observed = (this.shedInWindow * 1000) / elapsed;
    const keep = 0.5 ** Math.min(elapsed / 1000, 30);
    this.shedRate = this.shedRate * keep + observed * (1 - keep);
    this.shedInWindow = 0;
    this.shedWindowStart = now;
  }

  /** When a place taken now would start: the rounds of hashes ahead of it, at the recent duration. */
  private waitForNewPlaceMs(): number {
    const ahead = this.s.inFlight + this.s.queued + 1 - this.concurrency;
    return ahead <= 0 ? 0 : Math.ceil(ahead / this.concurrency) * this.s.runMsEwma;
  }

  estimatedWaitMs(): number {
    return Math.ceil((this.s.inFlight + this.s.queued) / this.concurrency) * this.s.runMsEwma;
  }

  /**
   * Retry advice: `floor(base * (1 + u))` with `base = clamp(ceil(estimatedWaitMs()), 250, 30000)` and
   * `u = random()` in [0, 1). So retries spread uniformly over [base, 2 * base) rather than returning
   * together, and the advice stays in [250, 60000) ms; the base is capped at half the maximum so the
   * jitter survives the cap.
   */
  retryAfterMs(): number {
    const base = Math.min(
      Math.max(Math.ceil(this.estimatedWaitMs()), Math.ceil(this.pressureMs()), MIN_RETRY_AFTER_MS),
      MAX_RETRY_AFTER_MS / 2,
    );
    const u = Math.min(Math.max(this.random(), 0), 1);
    return Math.min(Math.floor(base * (1 + u)), MAX_RETRY_AFTER_MS);
  }

  /**
   * Synchronous, O(1). Admits when running + queued stay within concurrency + maxQueue; the reservation
   * then holds queue space until it starts, is cancelled or expires. Otherwise sheds at once.
   */
  reserve(): Reservation {
    if (this.s.inFlight + this.s.queued >= this.concurrency + this.maxQueue) {
      this.s.shedQueueFull++;
      this.noteShed();
      return { admitted: false, reason: 'queue_full', retryAfterMs: this.retryAfterMs() };
    }
    // Deadline-aware: a place whose turn would come after its deadline is refused now, for nothing,
    // rather than held and dropped at the deadline (a late 503 that cost the client the whole wait).
    // A tenth of the deadline is kept as margin: hash times vary by about that much (bench: 476-529 ms
    // in one storm), and without it the last place admitted in a storm's first seconds was dropped.
    if (this.waitForNewPlaceMs() > this.deadlineMs * DEADLINE_ADMISSION_SHARE) {
      this.s.shedQueueFull++;
      this.noteShed();
      return { admitted: false, reason: 'deadline_unreachable', retryAfterMs: this.retryAfterMs() };
    }
    const e: Entry = {
      state: 'reserved',
      deadlineAt: this.now() + this.deadlineMs,
      timer: undefined,
      prev: null,
      next: null,
      runCalledAt: 0,
      start: null,
      reject: null,
    };
    this.s.queued++;
    // One timer per reservation (at most concurrency + maxQueue at once), so a caller waiting in the
    // queue, or a reservation whose caller never calls run(), is released at its deadline. unref():
    // a pending deadline must not keep the process alive.
    e.timer = setTimeout(() => this.expire(e), this.deadlineMs);
    e.timer.unref();
    const ticket: HashTicket = {
      run: <T>(work: () => Promise<T>) => this.runEntry(e, work),
      cancel: () => this.cancelEntry(e),
    };
    return { admitted: true, ticket };
  }

  private runEntry<T>(e: Entry, work: () => Promise<T>): Promise<T> {
    if (e.state === 'reserved' && this.now() >= e.deadlineAt) this.expire(e);
    switch (e.state) {
      case 'reserved':
        break;
      case 'expired':
        return Promise.reject(new DeadlineExceededError(this.retryAfterMs()));
      case 'cancelled':
        return Promise.reject(new TicketCancelledError());
      default:
        return Promise.reject(new Error('HashTicket.run() may be called only once'));
    }
    return new Promise<T>((resolve, reject) => {
      e.state = 'waiting';
      e.runCalledAt = this.now();
      e.reject = reject;
      e.start = () => {
        const startedAt = this.now();
        let result: Promise<T>;
        try {
          result = Promise.resolve(work());
        } catch (err) {
          result = Promise.reject(err);
        }
        result.then(
          (value) => {
            this.finish(e, this.now() - startedAt);
            resolve(value);
          },
          (err: unknown) => {
            this.finish(e, undefined);
            reject(err);
          },
        );
      };
      this.append(e);
      this.dispatch();
    });
  }

  private cancelEntry(e: Entry): void {
    if (e.state !== 'reserved' && e.state !== 'waiting') return;
    const pending = e.reject;
    this.release(e, 'cancelled');
    this.s.cancelled++;
    pending?.(new TicketCancelledError());
  }

  /** Drops a reservation whose deadline passed (from its timer, from run(), or when met at the head). */
  private expire(e: Entry): void {
    if (e.state !== 'reserved' && e.state !== 'waiting') return;
    const pending = e.reject;
    this.release(e, 'expired');
    this.s.droppedDeadline++;
    pending?.(new DeadlineExceededError(this.retryAfterMs()));
  }

  /** Takes a reserved or waiting entry out of the queue for good. */
  private release(e: Entry, state: 'cancelled' | 'expired'): void {
    if (e.state === 'waiting') this.unlink(e);
    clearTimeout(e.timer);
    e.state = state;
    e.start = null;
    e.reject = null;
    this.s.queued--;
  }

  /** Starts waiting entries while slots are free, rejecting expired ones met on the way. */
  private dispatch(): void {
    while (this.s.inFlight < this.concurrency && this.head) {
      const e = this.head;
      if (this.now() >= e.deadlineAt) {
        this.expire(e);
        continue;
      }
      this.unlink(e);
      clearTimeout(e.timer);
      const start = e.start;
      e.state = 'running';
      e.start = null;
      e.reject = null;
      this.s.queued--;
      this.s.inFlight++;
      const waitMs = this.now() - e.runCalledAt;
      this.s.lastWaitMs = waitMs;
      this.s.waitMsTotal += waitMs;
      try {
        this.onWait?.(waitMs);
      } catch {
        // A metrics callback must not break admission.
      }
      start?.();
    }
  }

  /** Frees the slot; `runMs` is the duration of a successful run, undefined for a failed one. */
  private finish(e: Entry, runMs: number | undefined): void {
    e.state = 'settled';
    this.s.inFlight--;
    if (runMs === undefined) {
      this.s.failed++;
    } else {
      this.s.completed++;
      this.s.runMsTotal += runMs;
      this.s.runMsEwma += EWMA_ALPHA * (runMs - this.s.runMsEwma);
    }
    this.dispatch();
  }

  private append(e: Entry): void {
    e.prev = this.tail;
    e.next = null;
    if (this.tail) this.tail.next = e;
    else this.head = e;
    this.tail = e;
  }

  private unlink(e: Entry): void {
    if (e.prev) e.prev.next = e.next;
    else this.head = e.next;
    if (e.next) e.next.prev = e.prev;
    else this.tail = e.prev;
    e.prev = null;
    e.next = null;
  }
}
