/**
 * Hostile clients: floods of connections, of messages and of lookups against one real node on
 * loopback. Each case checks the defended outcome (docs/protocol.md#limits) and that a control pair
 * connected before the attack keeps working during and after it.
 */
import WebSocket from 'ws';
import { SessionError, SupernodeSession } from '../../supernode/client/session';
import { encodeRelayFrame, FRAME_SEND } from '../../supernode/protocol/frames';
import {
  connectAs,
  makeTestKeys,
  type RawConnection,
  type RunningNode,
  rawConnect,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';
import { type ControlPair, controlPair, keepChecking, scale, stopChecking } from './hostile';

let keys: TestKeys;
let running: RunningNode | undefined;
let control: ControlPair | undefined;
const open: SupernodeSession[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
});
afterEach(async () => {
  await stopChecking();
  await Promise.all(open.splice(0).map((s) => s.close()));
  await control?.close();
  await running?.node.close();
  control = undefined;
  running = undefined;
});
afterAll(() => keys.cleanup());

async function setup(options: Parameters<typeof startTestNode>[1]): Promise<RunningNode> {
  running = await startTestNode(keys, options);
  control = await controlPair({ a: running }, (user) => keys.mint(user));
  return running;
}

describe('connection floods', () => {
  it('many concurrent upgrades with valid tokens: past capacity each is refused with full (4010) and advice', async () => {
    const node = await setup({ maxSessions: 40, retryAfterMs: 500, alternatives: ['ws://10.0.0.9:7001'] });
    const checking = keepChecking(control as ControlPair);
    const flood = 150 * scale;
    const tokens = await Promise.all(Array.from({ length: flood }, (_, i) => keys.mint(`flood-${i}`)));
    const outcomes = await Promise.all(
      tokens.map((token) =>
        SupernodeSession.connect({ url: node.url, token }).catch((e: unknown) => e as SessionError),
      ),
    );
    const welcomed = outcomes.filter((o): o is SupernodeSession => !(o instanceof Error));
    open.push(...welcomed);
    const refused = outcomes.filter((o): o is SessionError => o instanceof SessionError);
    expect(welcomed.length + refused.length).toBe(flood);
    // Two places are the control pair's; the rest of the capacity and no more went to the flood.
    expect(welcomed.length).toBeLessThanOrEqual(38);
    expect(welcomed.length).toBeGreaterThan(0);
    for (const refusal of refused) {
      expect(refusal).toMatchObject({ code: 'full', closeCode: 4010, alternatives: ['ws://10.0.0.9:7001'] });
      expect(refusal.retryAfterMs).toBeGreaterThanOrEqual(500);
    }
    const { rounds } = await checking.stop();
    expect(rounds).toBeGreaterThan(0);

    // The flood leaves: capacity comes back for newcomers, the control pair never noticed.
    await Promise.all(open.splice(0).map((s) => s.close()));
    await waitFor(() => node.node.readyState().ready, 7000, 'ready again');
    open.push(await connectAs(node, keys, 'newcomer'));
    await control?.check();
  });

  it('many concurrent upgrades that never say hello: cut at the auth timeout (4001), past capacity refused (4010)', async () => {
    const node = await setup({ maxSessions: 30, authTimeoutMs: 400 });
    const checking = keepChecking(control as ControlPair);
    const flood = 100 * scale;
    const ends = await Promise.all(
      Array.from({ length: flood }, async () => {
        const connection: RawConnection = await rawConnect(node);
        const opened = Date.now();
        const error = await connection.next();
        const answered = Date.now();
        return { error, close: await connection.closed, opened, answered };
      }),
    );
    const timedOut = ends.filter((e) => e.error.code === 'auth_timeout');
    const full = ends.filter((e) => e.error.code === 'full');
    expect(timedOut.length + full.length).toBe(flood);
    for (const e of timedOut) {
      expect(e.close.code).toBe(4001);
      expect(e.answered - e.opened).toBeLessThan(400 + 1500);
    }
    for (const e of full) expect(e.close.code).toBe(4010);
    // Never more waiting for a hello at once than the capacity left beside the control pair: as one
    // is cut, a later one may take its place, but they never overlap by more than 28.
    const edges = timedOut.flatMap((e) => [
      [e.opened, 1],
      [e.answered, -1],
    ]);
    edges.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
    let waiting = 0;
    let mostWaiting = 0;
    for (const [, step] of edges) {
      waiting += step;
      mostWaiting = Math.max(mostWaiting, waiting);
    }
    expect(mostWaiting).toBeLessThanOrEqual(28);
    expect(mostWaiting).toBeGreaterThan(0);
    expect(node.node.metrics.stats.refusals.get('auth_timeout')).toBe(timedOut.length);
    await checking.stop();
    await waitFor(() => node.node.readyState().ready, 7000, 'ready again');
    open.push(await connectAs(node, keys, 'newcomer'));
  });
});

describe('message floods', () => {
  it('a session sending far beyond its rate is paused, then closed with rate_limited (4008)', async () => {
    const node = await setup({ messagesPerSecond: 50, messageBurst: 20 });
    const mallory = await connectAs(node, keys, 'mallory');
    open.push(mallory);
    const received: number[] = [];
    control?.b.on('message', (m) => {
      if (m.from === 'mallory') received.push(m.msgId);
    });
    const checking = keepChecking(control as ControlPair);
    const closed = new Promise<number>((resolve) => mallory.once('close', resolve));
    const started = Date.now();
    // Relay frames at the control user and pings, as fast as the socket takes them.
    for (let i = 0; i < 10_000 * scale; i++) {
      mallory.sendRaw(encodeRelayFrame(FRAME_SEND, 0, i + 1, 'control-b', Buffer.from('spam')));
      mallory.sendRaw(JSON.stringify({ type: 'ping', id: i }));
    }
    expect(await closed).toBe(4008);
    const elapsedSec = (Date.now() - started) / 1000;
    const { worstMs } = await checking.stop();
    expect(node.node.metrics.stats.disconnects.get('rate_limited')).toBe(1);
    expect(node.node.metrics.stats.throttledMessages).toBeGreaterThan(0);
    // What got through is what the rate allows (burst + rate x time), not the flood.
    expect(received.length).toBeLessThanOrEqual(20 + 50 * (elapsedSec + 1));
    // Frames from one sender arrive in order, even across pauses.
    expect(received).toEqual([...received].sort((x, y) => x - y));
    expect(worstMs).toBeLessThan(2000);
    // Closed, not banned: a new session of the same user is welcomed.
    open.push(await connectAs(node, keys, 'mallory'));
    await control?.check();
  });

  it('lookup enumeration: lookups beyond the rate are answered only at the rate; a blind flood is closed (4008)', async () => {
    const node = await setup({ lookupsPerSecond: 20, lookupBurst: 10 });
    const enumerator = await connectAs(node, keys, 'enumerator');
    open.push(enumerator);
    const checking = keepChecking(control as ControlPair);
    const names = Array.from({ length: 40 }, (_, i) => `user-${i}`);
    const started = Date.now();
    const answers = await Promise.all(names.map((name) => enumerator.lookup(name)));
    const elapsed = Date.now() - started;
    expect(answers.every((a) => a.online === false)).toBe(true);
    // 30 past the burst at 20/s: not much under 1.5 s, whatever the client sends.
    expect(elapsed).toBeGreaterThan(1200);
    expect(node.node.metrics.stats.throttledLookups).toBeGreaterThan(0);
    // The control pair has its own buckets: its lookups were not queued behind the enumerator's.
    const { worstMs } = await checking.stop();
    expect(worstMs).toBeLessThan(1000);

    const closed = new Promise<number>((resolve) => enumerator.once('close', resolve));
    for (let i = 0; i < 10_000 * scale; i++)
      enumerator.sendRaw(JSON.stringify({ type: 'lookup', id: i, user: `guess-${i}` }));
    expect(await closed).toBe(4008);
    await control?.check();
  });

  it('WebSocket pings from a client that never reads the pongs: cut off, not buffered', async () => {
    const node = await setup({});
    const checking = keepChecking(control as ControlPair);
    const token = await keys.mint('pinger');
    const socket = new WebSocket(`${node.url}/v1/session`);
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'hello', token }));
    await new Promise((resolve) => socket.once('message', resolve));
    const closed = new Promise<number>((resolve) => socket.once('close', resolve));
    socket.pause(); // never read: the node's pongs pile up on its side
    const payload = Buffer.alloc(125, 1);
    let sent = 0;
    // ws on the node cuts a peer with 60 pongs it cannot write (maxPendingAutoPongs).
    const pump = async () => {
      while (socket.readyState === WebSocket.OPEN && sent < 400_000) {
        for (let i = 0; i < 2000; i++) socket.ping(payload);
        sent += 2000;
        await new Promise((r) => setImmediate(r));
      }
    };
    await pump();
    socket.resume();
    expect(await closed).toBe(1006);
    expect(sent).toBeLessThan(400_000);
    await checking.stop();
    await waitFor(() => node.node.sessionCount() === 2, 3000, 'pinger removed');
  });
});
