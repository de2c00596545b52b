/**
 * Time for the client SDK: a scheduler the tests can replace, and full-jitter exponential backoff.
 * Full jitter (sleep = random(0, min(cap, base * 2^attempt))) spreads a crowd of clients that failed
 * together over the whole window instead of bunching them at the same instants, which is what turns a
 * recovered server back into an overloaded one (AWS Architecture Blog, "Exponential Backoff And Jitter").
 */

/** A uniform random number in [0, 1), like Math.random. */
export type Random = () => number;

/** The clock and timers the client uses; the default is the process's, which Jest fake timers control. */
export interface Scheduler {
  now(): number;
  /** Calls `callback` after `delayMs`; the returned function cancels it. */
  schedule(callback: () => void, delayMs: number): () => void;
}

export const systemScheduler: Scheduler = {
  now: () => Date.now(),
  schedule(callback, delayMs) {
    const timer = setTimeout(callback, delayMs);
    return () => clearTimeout(timer);
  },
};

export interface BackoffPolicy {
  /** The window of the first retry (attempt 0). */
  baseMs: number;
  /** The largest window; reached after log2(capMs / baseMs) attempts (6 with the defaults). */
  capMs: number;
}

/** 0.5 s for the first retry, doubling up to 30 s: quick after a blip, one try per ~15 s in an outage. */
export const DEFAULT_BACKOFF: Readonly<BackoffPolicy> = { baseMs: 500, capMs: 30_000 };

/** The window of retry `attempt` (0-based): min(cap, base * 2^attempt). */
export function backoffWindow(policy: BackoffPolicy, attempt: number): number {
  // Capping the exponent keeps 2^attempt finite however long an outage lasts.
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.min(attempt, 52));
}

/**
 * How long to wait before retry `attempt`: random(0, window), but never less than `floorMs` (a
 * Retry-After or a supernode's `retryAfterMs`). The servers spread their advice themselves, so the
 * floor does not bunch clients up.
 */
export function fullJitterDelay(policy: BackoffPolicy, attempt: number, random: Random, floorMs = 0): number {
  return Math.max(floorMs, Math.floor(random() * backoffWindow(policy, attempt)));
}
