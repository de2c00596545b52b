import {
  DeadlineExceededError,
  HashPool,
  type HashPoolOptions,
  type HashTicket,
  type Reservation,
  TicketCancelledError,
} from '../../supernode/auth/core/admission';

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (err: Error) => void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (err: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
/** Lets settled promises run their callbacks. */
const flush = async () => {
  for (let i = 0; i < 5; i++) await Promise.resolve();
};

function ticketOf(r: Reservation): HashTicket {
  if (!r.admitted) throw new Error(`expected admission, got ${r.reason}`);
  return r.ticket;
}

/** A pool with a hand-driven clock (deadline timers stay far away in real time). */
function manualPool(options: Partial<HashPoolOptions> = {}) {
  const clock = { t: 0 };
  const pool = new HashPool({
    concurrency: 1,
    maxQueue: 4,
    deadlineMs: 60_000,
    now: () => clock.t,
    ...options,
  });
  return { pool, clock };
}

afterEach(() => {
  jest.useRealTimers();
});

describe('HashPool', () => {
  it('never runs more than `concurrency` jobs with 20 submitted at once', async () => {
    const pool = new HashPool({ concurrency: 3, maxQueue: 17, deadlineMs: 10_000 });
    let active = 0;
    let maxActive = 0;
    const jobs = Array.from({ length: 20 }, (_, i) =>
      ticketOf(pool.reserve()).run(async () => {
        active++;
        maxActive = Math.max(maxActive, active);
        expect(pool.stats.inFlight).toBeLessThanOrEqual(3);
        await sleep(2);
        active--;
        return i;
      }),
    );
    expect(pool.reserve()).toMatchObject({ admitted: false, reason: 'queue_full' });
    await expect(Promise.all(jobs)).resolves.toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(maxActive).toBe(3);
    expect(pool.stats).toMatchObject({ inFlight: 0, queued: 0, completed: 20, failed: 0, shedQueueFull: 1 });
  });

  it('refuses at once a place whose turn would come after its deadline, instead of dropping it later', () => {
    // One slot, hashes of 500 ms: the 7th place would wait 6 rounds (3000 ms), past a 2,800 ms deadline.
    const { pool } = manualPool({ concurrency: 1, maxQueue: 20, deadlineMs: 2800, initialRunMs: 500 });
    const admitted = Array.from({ length: 6 }, () => pool.reserve());
    expect(admitted.every((r) => r.admitted)).toBe(true);
    const refused = pool.reserve();
    expect(refused).toMatchObject({ admitted: false, reason: 'deadline_unreachable' });
    expect((refused as { retryAfterMs: number }).retryAfterMs).toBeGreaterThanOrEqual(3000);
    // Far from the queue limit: it was the deadline, not the size, that refused it.
    expect(pool.stats.queued).toBe(6);
    for (const r of admitted) ticketOf(r).cancel();
    expect(pool.reserve().admitted).toBe(true);
  });

  it('keeps a tenth of the deadline as margin for hash times that vary', () => {
    // 500 ms hashes, a 3,000 ms deadline: the 7th place's turn is estimated at exactly 3,000 ms, which a
    // slightly slower hash would miss; only places estimated within 2,700 ms are admitted.
    const { pool } = manualPool({ concurrency: 1, maxQueue: 20, deadlineMs: 3000, initialRunMs: 500 });
    const admitted = Array.from({ length: 6 }, () => pool.reserve());
    expect(admitted.every((r) => r.admitted)).toBe(true);
    expect(pool.reserve()).toMatchObject({ admitted: false, reason: 'deadline_unreachable' });
  });

  it('starts waiting jobs in FIFO order of run()', async () => {
    const { pool } = manualPool({ maxQueue: 5 });
    const order: string[] = [];
    const gates = new Map<string, Deferred<void>>();
    const job = (ticket: HashTicket, name: string) => {
      const gate = deferred();
      gates.set(name, gate);
      return ticket.run(async () => {
        order.push(name);
        await gate.promise;
      });
    };
    const jobs = [job(ticketOf(pool.reserve()), 'a'), job(ticketOf(pool.reserve()), 'b')];
    // Reserved in the order x, y, z, but queued by run(): z, x, y.
    const [x, y, z] = [pool.reserve(), pool.reserve(), pool.reserve()].map(ticketOf);
    jobs.push(job(z, 'z'), job(x, 'x'), job(y, 'y'));
    expect(order).toEqual(['a']);
    expect(pool.stats).toMatchObject({ inFlight: 1, queued: 4 });
    for (const name of ['a', 'b', 'z', 'x', 'y']) {
      gates.get(name)?.resolve();
      await flush();
    }
    await Promise.all(jobs);
    expect(order).toEqual(['a', 'b', 'z', 'x', 'y']);
  });

  it('sheds synchronously when running + queued would exceed concurrency + maxQueue', () => {
    const { pool } = manualPool({ concurrency: 2, maxQueue: 1 });
    // Reservations count before run(): the service reserves before reading the store.
    const admitted = [pool.reserve(), pool.reserve(), pool.reserve()];
    expect(admitted.every((r) => r.admitted)).toBe(true);
    const shed = pool.reserve();
    // A plain value, not a promise, and no ticket: nothing of the shed request can run.
    expect(shed).toEqual({ admitted: false, reason: 'queue_full', retryAfterMs: expect.any(Number) });
    expect(pool.stats).toMatchObject({ queued: 3, inFlight: 0, shedQueueFull: 1 });
  });

  it('in a storm the advice grows with the shed rate: clients come back about when they can be served', () => {
    let now = 10_000;
    const pool = new HashPool({
      concurrency: 2,
      maxQueue: 0,
      deadlineMs: 10_000,
      initialRunMs: 500,
      now: () => now,
      random: () => 0,
    });
    pool.reserve();
    pool.reserve(); // full: two running, no queue
    const quiet = pool.reserve() as { retryAfterMs: number };
    expect(quiet.retryAfterMs).toBe(500); // one round of hashing
    // 400 turned away per second for 3 s against a capacity of 4 per second.
    for (let second = 0; second < 3; second++) {
      for (let i = 0; i < 400; i++) pool.reserve();
      now += 1000;
    }
    expect(pool.pressureMs()).toBeGreaterThan(50_000);
    expect((pool.reserve() as { retryAfterMs: number }).retryAfterMs).toBe(30_000); // capped base, no jitter here
    // Quiet again: the pressure halves every second.
    now += 10_000;
    expect(pool.pressureMs()).toBeLessThan(1000);
  });

  it('gives retry advice that grows with the backlog, jittered over [base, 2 * base)', async () => {
    const advice = (maxQueue: number, u: number) => {
      const pool = new HashPool({
        concurrency: 2,
        maxQueue,
        deadlineMs: 60_000,
        initialRunMs: 1000,
        random: () => u,
      });
      for (let i = 0; i < 2 + maxQueue; i++) ticketOf(pool.reserve());
      const r = pool.reserve();
      if (r.admitted) throw new Error('expected shedding');
      return { retryAfterMs: r.retryAfterMs, est: pool.estimatedWaitMs() };
    };
    // ceil((2 + maxQueue) / 2) rounds of 1000 ms.
    expect(advice(2, 0)).toEqual({ retryAfterMs: 2000, est: 2000 });
    expect(advice(8, 0)).toEqual({ retryAfterMs: 5000, est: 5000 });
    expect(advice(8, 0.5).retryAfterMs).toBe(7500);
    expect(advice(8, 0.999999).retryAfterMs).toBe(9999);
    // Floor: a tiny estimate still advises 250..500 ms.
    const tiny = new HashPool({
      concurrency: 1,
      maxQueue: 0,
      deadlineMs: 1000,
      initialRunMs: 1,
      random: () => 0,
    });
    ticketOf(tiny.reserve());
    expect(tiny.reserve()).toMatchObject({ retryAfterMs: 250 });
    // Cap: the base stops at 30 s so jittered advice stays below 60 s.
    const huge = new HashPool({
      concurrency: 1,
      maxQueue: 0,
      deadlineMs: 1000,
      initialRunMs: 1e6,
      random: () => 1,
    });
    ticketOf(huge.reserve());
    expect(huge.reserve()).toMatchObject({ retryAfterMs: 60_000 });
  });

  it('spreads retry advice with the jitter source', () => {
    let seed = 1;
    const random = () => {
      seed = (seed * 16807) % 2147483647;
      return (seed - 1) / 2147483646;
    };
    const pool = new HashPool({ concurrency: 1, maxQueue: 3, deadlineMs: 60_000, initialRunMs: 400, random });
    for (let i = 0; i < 4; i++) ticketOf(pool.reserve());
    const base = pool.estimatedWaitMs(); // 4 rounds * 400
    expect(base).toBe(1600);
    const advice = Array.from({ length: 200 }, () => {
      const r = pool.reserve();
      return r.admitted ? Number.NaN : r.retryAfterMs;
    });
    for (const a of advice) {
      expect(a).toBeGreaterThanOrEqual(base);
      expect(a).toBeLessThan(2 * base);
    }
    expect(new Set(advice).size).toBeGreaterThan(150);
    expect(Math.min(...advice)).toBeLessThan(base * 1.1);
    expect(Math.max(...advice)).toBeGreaterThan(base * 1.9);
  });

  it('estimates wait from the backlog: ceil((inFlight + queued) / concurrency) * runMsEwma', () => {
    const { pool } = manualPool({ concurrency: 2, maxQueue: 10, initialRunMs: 300 });
    expect(pool.estimatedWaitMs()).toBe(0);
    const expected = [300, 300, 600, 600, 900];
    for (const e of expected) {
      ticketOf(pool.reserve());
      expect(pool.estimatedWaitMs()).toBe(e);
    }
  });

  it('rejects a queued ticket at its deadline without running its work', async () => {
    jest.useFakeTimers();
    const pool = new HashPool({ concurrency: 1, maxQueue: 1, deadlineMs: 1000, now: () => Date.now() });
    const gate = deferred();
    const first = ticketOf(pool.reserve()).run(() => gate.promise);
    jest.advanceTimersByTime(500);
    const late = jest.fn(async () => 'ran');
    const second = ticketOf(pool.reserve()).run(late);
    const outcome = second.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    jest.advanceTimersByTime(999);
    expect(pool.stats).toMatchObject({ queued: 1, droppedDeadline: 0 });
    jest.advanceTimersByTime(1);
    const err = await outcome;
    expect(err).toBeInstanceOf(DeadlineExceededError);
    expect((err as DeadlineExceededError).retryAfterMs).toBeGreaterThanOrEqual(250);
    // The expired ticket gave its queue space back before the slot freed.
    expect(pool.stats).toMatchObject({ queued: 0, inFlight: 1, droppedDeadline: 1 });
    gate.resolve();
    await first;
    expect(late).not.toHaveBeenCalled();
    expect(pool.stats).toMatchObject({ completed: 1, inFlight: 0 });
  });

  it('skips tickets found expired when a slot frees, and starts the next live one', async () => {
    const { pool, clock } = manualPool({ maxQueue: 2, deadlineMs: 1000 });
    const gate = deferred();
    const first = ticketOf(pool.reserve()).run(() => gate.promise);
    const stale = jest.fn(async () => 'stale');
    const expired = ticketOf(pool.reserve()).run(stale);
    clock.t = 600;
    const fresh = ticketOf(pool.reserve()).run(async () => 'fresh');
    clock.t = 1000; // the second ticket's deadline; its real timer is still far off
    gate.resolve();
    await first;
    await expect(expired).rejects.toBeInstanceOf(DeadlineExceededError);
    await expect(fresh).resolves.toBe('fresh');
    expect(stale).not.toHaveBeenCalled();
    expect(pool.stats).toMatchObject({ droppedDeadline: 1, completed: 2, queued: 0, inFlight: 0 });
  });

  it('expires a reservation whose run() never came, and rejects a late run()', async () => {
    jest.useFakeTimers();
    const pool = new HashPool({ concurrency: 1, maxQueue: 0, deadlineMs: 1000, now: () => Date.now() });
    const ticket = ticketOf(pool.reserve());
    expect(pool.reserve().admitted).toBe(false);
    jest.advanceTimersByTime(1000);
    expect(pool.stats).toMatchObject({ queued: 0, droppedDeadline: 1 });
    const work = jest.fn(async () => 'ran');
    await expect(ticket.run(work)).rejects.toBeInstanceOf(DeadlineExceededError);
    expect(work).not.toHaveBeenCalled();
    expect(pool.reserve().admitted).toBe(true);
  });

  it('cancel releases queue space, is idempotent, and rejects run()', async () => {
    const { pool } = manualPool({ concurrency: 1, maxQueue: 1 });
    const gate = deferred();
    const running = ticketOf(pool.reserve());
    const first = running.run(() => gate.promise);
    const waiting = ticketOf(pool.reserve());
    const work = jest.fn(async () => 'ran');
    const pending = waiting.run(work);
    expect(pool.reserve().admitted).toBe(false);

    waiting.cancel();
    waiting.cancel();
    await expect(pending).rejects.toBeInstanceOf(TicketCancelledError);
    expect(pool.stats).toMatchObject({ queued: 0, inFlight: 1, cancelled: 1 });

    const reserved = ticketOf(pool.reserve()); // the freed space
    reserved.cancel();
    await expect(reserved.run(work)).rejects.toBeInstanceOf(TicketCancelledError);
    running.cancel(); // no effect on a running job
    expect(pool.stats).toMatchObject({ queued: 0, inFlight: 1, cancelled: 2 });

    gate.resolve();
    await first;
    expect(work).not.toHaveBeenCalled();
    expect(pool.stats).toMatchObject({ queued: 0, inFlight: 0, completed: 1 });
  });

  it('refuses a second run() on the same ticket', async () => {
    const { pool } = manualPool();
    const ticket = ticketOf(pool.reserve());
    await ticket.run(async () => 1);
    await expect(ticket.run(async () => 2)).rejects.toThrow('only once');
  });

  it('releases the slot when work fails, counting it as failed', async () => {
    const { pool } = manualPool({ concurrency: 1 });
    const boom = ticketOf(pool.reserve()).run(async () => {
      throw new Error('boom');
    });
    const sync = ticketOf(pool.reserve()).run((): Promise<never> => {
      throw new Error('sync boom');
    });
    const ok = ticketOf(pool.reserve()).run(async () => 'ok');
    await expect(boom).rejects.toThrow('boom');
    await expect(sync).rejects.toThrow('sync boom');
    await expect(ok).resolves.toBe('ok');
    expect(pool.stats).toMatchObject({ failed: 2, completed: 1, inFlight: 0, queued: 0 });
  });

  it('keeps an EWMA of successful run durations only', async () => {
    const { pool, clock } = manualPool({ initialRunMs: 400 });
    const run = async (ms: number, fail = false) => {
      const p = ticketOf(pool.reserve()).run(async () => {
        clock.t += ms;
        if (fail) throw new Error('fail');
      });
      await p.catch(() => undefined);
    };
    expect(pool.stats.runMsEwma).toBe(400);
    await run(100);
    expect(pool.stats.runMsEwma).toBeCloseTo(340); // 400 + 0.2 * (100 - 400)
    await run(5000, true);
    expect(pool.stats.runMsEwma).toBeCloseTo(340);
    await run(340 + 500);
    expect(pool.stats.runMsEwma).toBeCloseTo(440);
    expect(pool.estimatedWaitMs()).toBe(0);
  });

  it('reports each started job’s queue wait (from run() to start)', async () => {
    const waits: number[] = [];
    const { pool, clock } = manualPool({ onWait: (ms) => waits.push(ms) });
    const gate = deferred();
    const first = ticketOf(pool.reserve()).run(() => gate.promise);
    clock.t = 10;
    const second = ticketOf(pool.reserve()).run(async () => 'second');
    clock.t = 60;
    gate.resolve();
    await first;
    await second;
    expect(waits).toEqual([0, 50]);
    expect(pool.stats).toMatchObject({ lastWaitMs: 50, waitMsTotal: 50 });
  });

  it('validates its options', () => {
    expect(() => new HashPool({ concurrency: 0, maxQueue: 1, deadlineMs: 1 })).toThrow(RangeError);
    expect(() => new HashPool({ concurrency: 1, maxQueue: -1, deadlineMs: 1 })).toThrow(RangeError);
    expect(() => new HashPool({ concurrency: 1, maxQueue: 1, deadlineMs: 0 })).toThrow(RangeError);
    expect(() => new HashPool({ concurrency: 1, maxQueue: 1, deadlineMs: 1, initialRunMs: 0 })).toThrow(
      RangeError,
    );
  });
});
