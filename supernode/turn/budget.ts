import { TokenBucket } from '../shared/token-bucket';
import type { FastPathBinding } from './native/fastpath';

/**
 * Bandwidth budgets (bytes per second) of allocations and users. With the native relay engine they
 * live in the addon, because its fast path spends them without calling into JavaScript; the server's
 * own relaying (indications, TCP clients) spends the same ones through `spend`.
 */
export interface Budget {
  /** The addon's bucket id; -1 for a JavaScript bucket. */
  readonly fastId: number;
}

class JsBudget implements Budget {
  readonly fastId = -1;
  constructor(readonly bucket: TokenBucket) {}
}

export class RelayBudgets {
  constructor(
    private readonly fast: FastPathBinding | undefined,
    private readonly now: () => number,
  ) {}

  /** A budget with a burst of one second; undefined for 0 (unlimited). */
  create(bytesPerSecond: number): Budget | undefined {
    if (bytesPerSecond <= 0) return undefined;
    if (this.fast) return { fastId: this.fast.bucket(bytesPerSecond, bytesPerSecond) };
    return new JsBudget(new TokenBucket(bytesPerSecond, bytesPerSecond, this.now()));
  }

  /** Takes `bytes` from both budgets only if both have them. */
  spend(allocation: Budget | undefined, user: Budget | undefined, bytes: number, now: number): boolean {
    if (this.fast) return this.fast.spend(allocation?.fastId ?? -1, user?.fastId ?? -1, bytes);
    const a = (allocation as JsBudget | undefined)?.bucket;
    const u = (user as JsBudget | undefined)?.bucket;
    if (a && !a.has(bytes, now)) return false;
    if (u && !u.has(bytes, now)) return false;
    a?.spend(bytes);
    u?.spend(bytes);
    return true;
  }

  release(budget: Budget | undefined): void {
    if (budget && budget.fastId >= 0) this.fast?.freeBucket(budget.fastId);
  }
}
