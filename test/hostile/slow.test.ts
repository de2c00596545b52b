/**
 * Hostile clients that are slow on purpose: upgrades dribbled byte by byte, upgrades that never say
 * hello and never answer a close, and readers that never read. Each must be cut off within a bound
 * while the control pair on the same node keeps working.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import type { SupernodeSession } from '../../supernode/client/session';
import type { ServerError } from '../../supernode/protocol/messages';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';
import {
  type ControlPair,
  closeCodeIn,
  controlPair,
  keepChecking,
  rawTcp,
  scale,
  sleep,
  stopChecking,
  textMessagesIn,
  upgradeRequest,
} from './hostile';

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

/** Sends `text` one byte every `everyMs` until the server closes the connection; resolves with when. */
async function dribble(port: number, text: string, everyMs: number): Promise<{ ms: number; answer: string }> {
  const client = await rawTcp(port);
  let i = 0;
  const timer = setInterval(() => {
    if (i < text.length && !client.socket.destroyed) client.socket.write(text[i++]);
  }, everyMs);
  const ms = await client.closed;
  clearInterval(timer);
  return { ms, answer: client.received().toString('latin1').split('\r\n')[0] };
}

describe('slow-loris upgrades', () => {
  // The node and the auth service both give a request 10 s to finish its headers. Node checks that
  // every connectionsCheckingInterval (set to 1 s; Node's default of 30 s let a slow loris hold its
  // socket 30-40 s). npm test shortens the 10 s to keep the suite quick; npm run fuzz runs the real one.
  const headersTimeoutMs = process.env.FUZZ_RUNS ? 10_000 : 1500;
  let authDir: string;
  let auth: AuthService | undefined;
  afterEach(async () => {
    await auth?.close();
    auth = undefined;
    await rm(authDir, { recursive: true, force: true });
  });

  it('a request dribbled byte by byte, or no request at all, is cut at the headers timeout (node and auth)', async () => {
    const node = await setup({});
    authDir = await mkdtemp(join(tmpdir(), 'hostile-auth-'));
    auth = await buildAuthService({ dataDir: authDir, port: 0, scryptN: 1024, logLevel: 'silent' });
    const authPort = (await auth.listen()).port;
    expect(node.node.app.server.headersTimeout).toBe(10_000);
    expect(auth.app.server.headersTimeout).toBe(10_000);
    node.node.app.server.headersTimeout = headersTimeoutMs;
    auth.app.server.headersTimeout = headersTimeoutMs;

    const checking = keepChecking(control as ControlPair);
    const upgrade = `${upgradeRequest('/v1/session').slice(0, -2)}X-Pad: ${'a'.repeat(2000)}\r\n\r\n`;
    const login = `POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nX-Pad: ${'a'.repeat(2000)}\r\n\r\n`;
    const attacks = [
      ...Array.from({ length: 3 * scale }, () => dribble(node.port, upgrade, 20)),
      ...Array.from({ length: 3 * scale }, () => dribble(authPort, login, 20)),
      // Connected, and not one byte sent.
      dribble(node.port, '', 20),
      dribble(authPort, '', 20),
    ];
    // Meanwhile the auth service keeps serving good clients.
    const good = async (): Promise<void> => {
      const response = await fetch(`http://127.0.0.1:${authPort}/v1/accounts`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'patient', password: 'correct-horse-1' }),
      });
      expect(response.status).toBe(201);
    };
    await good();
    const ends = await Promise.all(attacks);
    for (const end of ends) {
      expect(end.answer).toBe('HTTP/1.1 408 Request Timeout');
      // Within the headers timeout plus one check interval (and slack for a loaded machine).
      expect(end.ms).toBeLessThan(headersTimeoutMs + 1000 + 1500);
    }
    const { rounds } = await checking.stop();
    expect(rounds).toBeGreaterThan(1);
    expect((await fetch(`http://127.0.0.1:${authPort}/healthz`)).status).toBe(200);
  });
});

describe('upgrades that never say hello', () => {
  it('are cut at the auth timeout even when they ignore the close; their number is bounded by capacity', async () => {
    const node = await setup({ maxSessions: 12, authTimeoutMs: 300 });
    const checking = keepChecking(control as ControlPair);
    const count = 15 * scale;
    // Raw TCP: completes the upgrade, then neither says hello nor answers the node's close frame.
    const mutes = await Promise.all(
      Array.from({ length: count }, async () => {
        const client = await rawTcp(node.port);
        client.socket.write(upgradeRequest('/v1/session'));
        return client;
      }),
    );
    const closedAfter = await Promise.all(mutes.map((m) => m.closed));
    const codes = mutes.map((m) => closeCodeIn(m.received()));
    const errors = mutes.map((m) => textMessagesIn(m.received())[0]?.code);
    // Ten places left after the control pair: those wait for their hello, the rest are refused at once.
    expect(codes.filter((c) => c === 4001)).toHaveLength(10);
    expect(errors.filter((e) => e === 'auth_timeout')).toHaveLength(10);
    expect(codes.filter((c) => c === 4010)).toHaveLength(count - 10);
    // The node gives 5 s to answer its close frame, then cuts the socket (ws's default was 30 s).
    for (const ms of closedAfter) expect(ms).toBeLessThan(300 + 5000 + 1500);
    // The node's own close handler may run a moment after the client saw the socket end.
    for (let i = 0; i < 50 && (await metricValue(node, 'supernode_connections_pending')) !== 0; i++)
      await sleep(20);
    expect(await metricValue(node, 'supernode_connections_pending')).toBe(0);
    expect(node.node.readyState()).toEqual({ ready: true, reasons: [] });
    await checking.stop();
    open.push(await connectAs(node, keys, 'newcomer'));
  });
});

describe('readers that never read', () => {
  it('senders get recipient_busy, the reader is cut off, and the node holds no more than its send buffer', async () => {
    const node = await setup({
      sendBufferBytes: 16_384,
      slowConsumerMs: 500,
      messagesPerSecond: 100_000,
      messageBurst: 100_000,
    });
    const stats = node.node.metrics.stats;
    const sink = await connectAs(node, keys, 'sink');
    const pusher = await connectAs(node, keys, 'pusher');
    open.push(sink, pusher);
    sink.pauseReading();
    const busy: ServerError[] = [];
    pusher.on('server-error', (e: ServerError) => {
      if (e.code === 'recipient_busy') busy.push(e);
    });
    const checking = keepChecking(control as ControlPair);
    const payload = Buffer.alloc(32 * 1024, 7);
    for (let i = 0; i < 2000 && busy.length === 0; i++) {
      pusher.send('sink', payload);
      if (i % 16 === 15) await pusher.ping();
    }
    expect(busy.length).toBeGreaterThan(0);
    expect(busy[0].retryAfterMs).toBe(100);
    const relayedAtFirstBusy = stats.relayedBytes;
    for (let i = 0; i < 100 * scale; i++) pusher.send('sink', payload);
    await pusher.ping();
    // Nothing more was queued for the reader once its buffer was full.
    expect(stats.relayedBytes - relayedAtFirstBusy).toBeLessThanOrEqual(payload.length);
    await waitFor(() => stats.disconnects.get('slow_consumer') === 1, 3000, 'slow consumer cut off');
    await sink.close(); // reads again: finds its connection was cut without a close frame
    expect(sink.closeCode).toBe(1006);
    const { rounds } = await checking.stop();
    expect(rounds).toBeGreaterThan(0);
    expect(await pusher.lookup('sink')).toMatchObject({ online: false });
  });
});

async function metricValue(node: RunningNode, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}
