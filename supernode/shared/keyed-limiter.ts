import { TokenBucket } from './token-bucket';

/**
 * Per-key rate limits (client IP, username) in bounded memory: the least recently seen key is
 * forgotten first, so a flood of distinct keys costs a fixed amount of memory.
 */
export class KeyedLimiter {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly perMinute: number,
    private readonly burst: number,
    private readonly maxKeys = 100_000,
  ) {}

  /** 0 when allowed, else how long until the key may try again (a refused attempt costs nothing). */
  take(key: string, now: number): number {
    let bucket = this.buckets.get(key);
    if (bucket) {
      this.buckets.delete(key); // re-insert: Map order is the recency order
    } else {
      bucket = new TokenBucket(this.perMinute / 60, this.burst, now);
      if (this.buckets.size >= this.maxKeys) this.buckets.delete(this.buckets.keys().next().value as string);
    }
    this.buckets.set(key, bucket);
    return bucket.tryTake(now);
  }

  get size(): number {
    return this.buckets.size;
  }
}
