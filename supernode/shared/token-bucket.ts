/**
 * A token bucket that may go into debt: a caller over its rate is not refused but told how long to
 * wait, so the node can stop reading from that socket (backpressure) instead of dropping frames.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token; returns 0 when within the rate, else the ms until the bucket is back to zero. */
  take(now: number): number {
    const elapsed = now - this.last;
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.perSecond) / 1000) - 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.perSecond);
  }

  /** Takes one token only if there is one; returns 0 when taken, else the ms until one is available. */
  tryTake(now: number): number {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }

  /**
   * Whether `n` tokens are there now (refilling first), without taking them: with `spend`, a caller
   * that must take from several buckets at once (a TURN allocation's and its user's bytes) takes from
   * none unless all have enough.
   */
  has(n: number, now: number): boolean {
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
    this.last = now;
    return this.tokens >= n;
  }

  /** Takes `n` tokens that `has` just found. */
  spend(n: number): void {
    this.tokens -= n;
  }
}
