import { SessionError, type SupernodeSession } from '../../supernode/client/session';
import type { ServerError } from '../../supernode/protocol/messages';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

let keys: TestKeys;
const nodes: RunningNode[] = [];
const open: SupernodeSession[] = [];

async function node(options: Parameters<typeof startTestNode>[1]): Promise<RunningNode> {
  const running = await startTestNode(keys, options);
  nodes.push(running);
  return running;
}
async function session(running: RunningNode, user: string): Promise<SupernodeSession> {
  const s = await connectAs(running, keys, user);
  open.push(s);
  return s;
}

beforeAll(async () => {
  keys = await makeTestKeys();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await Promise.all(nodes.splice(0).map((n) => n.node.close()));
});
afterAll(() => keys.cleanup());

describe('capacity', () => {
  it('refuses sessions past capacity with "full", jittered retry advice and alternatives; keeps the rest', async () => {
    const running = await node({ maxSessions: 2, retryAfterMs: 1000, alternatives: ['ws://10.0.0.2:7001'] });
    const a = await session(running, 'a');
    const b = await session(running, 'b');
    const refusals = await Promise.all(
      [1, 2, 3, 4, 5].map(async () => connectAs(running, keys, 'c').catch((e: unknown) => e as SessionError)),
    );
    for (const refusal of refusals) {
      expect(refusal).toBeInstanceOf(SessionError);
      expect(refusal).toMatchObject({ code: 'full', closeCode: 4010, alternatives: ['ws://10.0.0.2:7001'] });
      expect((refusal as SessionError).retryAfterMs).toBeGreaterThanOrEqual(1000);
      expect((refusal as SessionError).retryAfterMs).toBeLessThan(2000);
    }
    // Jitter: five refusals do not all carry the same advice.
    expect(new Set(refusals.map((r) => (r as SessionError).retryAfterMs)).size).toBeGreaterThan(1);
    expect(await a.ping()).toBeGreaterThanOrEqual(0);
    expect(await b.lookup('a')).toMatchObject({ online: true });

    const ready = await fetch(`http://127.0.0.1:${running.port}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ ready: false, reasons: ['full'], sessions: 2, capacity: 2 });

    await a.close();
    await waitFor(() => running.node.readyState().ready, 2000, 'ready again');
    expect((await session(running, 'c')).user).toBe('c');
    expect(running.node.metrics.stats.refusals.get('full')).toBe(5);
  });
});

describe('rate limits', () => {
  it('a session over its message rate is slowed down by backpressure, not dropped', async () => {
    const running = await node({ messagesPerSecond: 20, messageBurst: 5 });
    const alice = await session(running, 'alice');
    const started = Date.now();
    const pongs = await Promise.all(Array.from({ length: 45 }, () => alice.ping()));
    const elapsed = Date.now() - started;
    expect(pongs).toHaveLength(45);
    // 40 frames over the burst at 20/s cannot all be answered in much under 2 s.
    expect(elapsed).toBeGreaterThan(1500);
    expect(running.node.metrics.stats.throttledMessages).toBeGreaterThan(0);
  });

  it('a client that keeps sending while throttled is closed with rate_limited (4008)', async () => {
    const running = await node({ messagesPerSecond: 10, messageBurst: 5 });
    const alice = await session(running, 'alice');
    const closed = new Promise<number>((resolve) => alice.once('close', resolve));
    const flood = JSON.stringify({ type: 'ping', id: 1 });
    // Far more than one socket read holds, so the backlog overflows however the bytes are split.
    for (let i = 0; i < 10_000; i++) alice.sendRaw(flood);
    expect(await closed).toBe(4008);
    expect(running.node.metrics.stats.disconnects.get('rate_limited')).toBe(1);
    expect(await (await session(running, 'bob')).ping()).toBeGreaterThanOrEqual(0);
  });

  it('lookups have their own, lower rate', async () => {
    const running = await node({ lookupsPerSecond: 10, lookupBurst: 2 });
    const alice = await session(running, 'alice');
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 12 }, () => alice.lookup('bob')));
    expect(results.every((r) => r.online === false)).toBe(true);
    expect(Date.now() - started).toBeGreaterThan(700);
    expect(running.node.metrics.stats.throttledLookups).toBeGreaterThan(0);
    expect(running.node.metrics.stats.throttledMessages).toBe(0);
  });
});

describe('frame size', () => {
  it('a frame over the limit closes the session with 1009', async () => {
    const running = await node({ maxFrameBytes: 1024 });
    const alice = await session(running, 'alice');
    await session(running, 'bob');
    const closed = new Promise<number>((resolve) => alice.once('close', resolve));
    alice.send('bob', Buffer.alloc(2000));
    expect(await closed).toBe(1009);
  });
});

describe('slow consumers', () => {
  it('relays to a reader that stopped are refused once its buffer is full, then it is disconnected', async () => {
    const running = await node({
      sendBufferBytes: 16_384,
      slowConsumerMs: 500,
      messagesPerSecond: 100_000,
      messageBurst: 100_000,
    });
    const stats = running.node.metrics.stats;
    const alice = await session(running, 'alice');
    const bob = await session(running, 'bob');
    bob.pauseReading();
    const busy: ServerError[] = [];
    alice.on('server-error', (e: ServerError) => {
      if (e.code === 'recipient_busy') busy.push(e);
    });
    const payload = Buffer.alloc(32 * 1024, 7);
    // Loopback socket buffers absorb several MiB before the node's own queue grows.
    for (let i = 0; i < 2000 && busy.length === 0; i++) {
      alice.send('bob', payload);
      if (i % 16 === 15) await alice.ping(); // every frame before the pong has been handled
    }
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0].retryAfterMs).toBeGreaterThan(0);
    const deliveredAtFirstRefusal = stats.relayedBytes;
    const refusedAtFirstRefusal = stats.relayRecipientBusy + stats.relayUnknownRecipient;
    for (let i = 0; i < 200; i++) alice.send('bob', payload); // 6.4 MiB more, none of which may queue
    await alice.ping();
    expect(stats.relayedBytes - deliveredAtFirstRefusal).toBeLessThanOrEqual(payload.length);
    // Refused as busy, or as offline if bob was already cut off on a slow machine.
    expect(
      stats.relayRecipientBusy + stats.relayUnknownRecipient - refusedAtFirstRefusal,
    ).toBeGreaterThanOrEqual(199);

    await waitFor(() => stats.disconnects.get('slow_consumer') === 1, 3000, 'slow consumer disconnect');
    await waitFor(() => running.node.sessionCount() === 1, 2000, 'bob removed');
    expect(await alice.lookup('bob')).toMatchObject({ online: false });
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
  });
});
