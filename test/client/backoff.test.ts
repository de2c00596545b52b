import {
  backoffWindow,
  DEFAULT_BACKOFF,
  fullJitterDelay,
  systemScheduler,
} from '../../supernode/client/backoff';

/** A seeded generator (mulberry32): the sampled tests see the same numbers on every run. */
function seeded(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('full-jitter backoff', () => {
  it('the window doubles from the base and stops at the cap', () => {
    const windows = Array.from({ length: 9 }, (_, n) => backoffWindow(DEFAULT_BACKOFF, n));
    expect(windows).toEqual([500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000]);
    expect(backoffWindow(DEFAULT_BACKOFF, 10_000)).toBe(30_000);
  });

  it('each delay is within [0, min(cap, base * 2^n)), spread over the whole window', () => {
    const random = seeded(1);
    for (let attempt = 0; attempt < 10; attempt++) {
      const window = backoffWindow(DEFAULT_BACKOFF, attempt);
      const delays = Array.from({ length: 2000 }, () => fullJitterDelay(DEFAULT_BACKOFF, attempt, random));
      expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...delays)).toBeLessThan(window);
      // Full jitter, not "half the window plus jitter": the low and high tenths are both used.
      expect(delays.some((d) => d < window / 10)).toBe(true);
      expect(delays.some((d) => d > (window * 9) / 10)).toBe(true);
      const mean = delays.reduce((a, b) => a + b, 0) / delays.length;
      expect(mean / window).toBeGreaterThan(0.45);
      expect(mean / window).toBeLessThan(0.55);
    }
    expect(fullJitterDelay(DEFAULT_BACKOFF, 3, () => 0)).toBe(0);
    expect(fullJitterDelay(DEFAULT_BACKOFF, 3, () => 0.9999999)).toBe(3999);
  });

  it("a Retry-After or a node's advice is a floor, not added on top", () => {
    expect(fullJitterDelay(DEFAULT_BACKOFF, 0, () => 0.5, 5000)).toBe(5000);
    expect(fullJitterDelay(DEFAULT_BACKOFF, 6, () => 0.5, 5000)).toBe(15_000);
    expect(fullJitterDelay({ baseMs: 100, capMs: 1000 }, 20, () => 0.9999, 60_000)).toBe(60_000);
  });

  it('the system scheduler runs and cancels on the process timers (fake in tests)', () => {
    jest.useFakeTimers({ now: 1_000_000 });
    try {
      const fired: number[] = [];
      systemScheduler.schedule(() => fired.push(systemScheduler.now()), 250);
      const cancel = systemScheduler.schedule(() => fired.push(-1), 300);
      cancel();
      jest.advanceTimersByTime(1000);
      expect(fired).toEqual([1_000_250]);
    } finally {
      jest.useRealTimers();
    }
  });
});
