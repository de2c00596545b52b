import { RetryBudget } from '../../supernode/client/retry-budget';

describe('retry budget', () => {
  const options = { ratio: 0.1, maxTokens: 10, minIntervalMs: 10_000 };

  it('with nothing succeeding: a burst of maxTokens, then one retry per minIntervalMs', () => {
    const budget = new RetryBudget(options);
    let now = 0;
    let retries = 0;
    // A client retrying as fast as the budget lets it for one minute (bounded, should the budget not be).
    for (let i = 0; i < 1000; i++) {
      now += budget.acquire(now);
      if (now > 60_000) break;
      retries++;
    }
    expect(retries).toBe(10 + 6);
  });

  it('under sustained failure retries stay within 10% of successful requests (plus the burst)', () => {
    const budget = new RetryBudget(options);
    let now = 0;
    let immediate = 0;
    // A session that opens and drops over and over: each success is followed by a failure wanting a retry.
    for (let i = 0; i < 1000; i++) {
      budget.deposit();
      if (budget.acquire(now) === 0) immediate++;
      now += 10;
    }
    // 10 s of it: at most 10% of 1000 successes + the burst of 10 + one per 10 s once empty.
    expect(immediate).toBeLessThanOrEqual(100 + 10 + 1);
    expect(immediate).toBeGreaterThanOrEqual(100);
    expect(immediate / 1000).toBeLessThan(0.12);
  });

  it('never holds more than maxTokens', () => {
    const budget = new RetryBudget(options);
    for (let i = 0; i < 10_000; i++) budget.deposit();
    expect(budget.available).toBe(10);
  });
});
