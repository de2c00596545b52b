import type { Account } from '../store';
import type { AccountStoreApi } from '../store-api';

export interface LockoutPolicy {
  /** Failures in a row before the first lock. */
  threshold: number;
  baseSec: number;
  maxSec: number;
}

/** Most usernames with no account whose failures are remembered; the oldest is forgotten first. */
const MAX_PHANTOMS = 100_000;

/**
 * Progressive lockout after failed logins. A username with no account locks exactly like a real one
 * (its count is kept in memory on this instance), so the answer never tells whether an account exists.
 */
export class Lockout {
  private readonly phantomFailures = new Map<string, { failures: number; lockedUntil: number }>();

  constructor(
    private readonly store: AccountStoreApi,
    private readonly policy: LockoutPolicy,
  ) {}

  /** The lock's end if `username` is locked now, else 0. */
  lockedUntil(account: Account | undefined, username: string, now: number): number {
    const until = account ? account.lockedUntil : (this.phantomFailures.get(username)?.lockedUntil ?? 0);
    return until > now ? until : 0;
  }

  async recordFailure(account: Account | undefined, username: string, now: number): Promise<void> {
    if (account) {
      await this.store.recordLoginFailure(username, now + this.lockFor(account.failedLogins + 1));
      return;
    }
    const entry = this.phantomFailures.get(username) ?? { failures: 0, lockedUntil: 0 };
    entry.failures++;
    entry.lockedUntil = now + this.lockFor(entry.failures);
    this.phantomFailures.delete(username);
    this.phantomFailures.set(username, entry);
    if (this.phantomFailures.size > MAX_PHANTOMS)
      this.phantomFailures.delete(this.phantomFailures.keys().next().value as string);
  }

  private lockFor(failures: number): number {
    const { threshold, baseSec, maxSec } = this.policy;
    return failures < threshold ? 0 : Math.min(maxSec, baseSec * 2 ** (failures - threshold)) * 1000;
  }
}
