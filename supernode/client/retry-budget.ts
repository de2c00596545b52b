/**
 * A retry budget (the token bucket of gRPC's retry throttling and Finagle's RetryBudget): every
 * successful request deposits `ratio` of a token, every retry withdraws one, and the bucket holds at
 * most `maxTokens`. So over any stretch, retries <= ratio x successes + maxTokens, plus, once the
 * bucket is empty, one retry per `minIntervalMs` (a client with nothing succeeding must still be able to
 * recover). Backoff spaces the retries of one failure; the budget bounds a client whose requests keep
 * succeeding and failing in turn (a session that is accepted and then dropped, over and over), where
 * backoff restarts from zero each time.
 */
export interface RetryBudgetOptions {
  /** Tokens deposited per successful request: the sustained retry fraction. */
  ratio: number;
  /** Bucket size, and how full it starts: the retries allowed in a burst. */
  maxTokens: number;
  /** With the bucket empty, the shortest time between two retries. */
  minIntervalMs: number;
}

/** Retries at most 10% of requests, after a burst of 10; one per 10 s with nothing succeeding. */
export const DEFAULT_RETRY_BUDGET: Readonly<RetryBudgetOptions> = {
  ratio: 0.1,
  maxTokens: 10,
  minIntervalMs: 10_000,
};

export class RetryBudget {
  private tokens: number;
  private lastRetryAt = Number.NEGATIVE_INFINITY;

  constructor(private readonly options: RetryBudgetOptions = DEFAULT_RETRY_BUDGET) {
    this.tokens = options.maxTokens;
  }

  /** A request succeeded. */
  deposit(): void {
    this.tokens = Math.min(this.options.maxTokens, this.tokens + this.options.ratio);
  }

  /**
   * Takes a retry planned for `at` (ms) and returns how much later than `at` it may run: 0 while tokens
   * last, else whatever remains of `minIntervalMs` since the previous retry.
   */
  acquire(at: number): number {
    if (this.tokens >= 1) {
      this.tokens -= 1;
      this.lastRetryAt = at;
      return 0;
    }
    const runAt = Math.max(at, this.lastRetryAt + this.options.minIntervalMs);
    this.lastRetryAt = runAt;
    return runAt - at;
  }

  get available(): number {
    return this.tokens;
  }
}
