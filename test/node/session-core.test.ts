/**
 * The session core driven directly: a plain `ws` server hands its sockets to SessionCore, with no
 * Fastify, no routes and no process around it (the plugin shape of issue 11).
 */
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { WebSocketServer } from 'ws';
import { nodeOptionTable } from '../../supernode/config/node-options';
import { resolveOptions } from '../../supernode/config/options';
import { type NodeSettings, SessionCore } from '../../supernode/node/core/sessions';
import { KeyStore } from '../../supernode/node/keys';
import { NodeMetrics } from '../../supernode/node/metrics';
import {
  encodeRelayFrame,
  FLAG_ACK,
  FRAME_DELIVER,
  FRAME_SEND,
  parseRelayFrame,
} from '../../supernode/protocol/frames';
import { createLogger } from '../../supernode/shared/log';
import {
  makeTestKeys,
  type RawConnection,
  type RunningNode,
  rawConnect,
  type TestKeys,
  waitFor,
} from '../helpers/node';

let keys: TestKeys;
let store: KeyStore;
let server: WebSocketServer;
let core: SessionCore;
let metrics: NodeMetrics;
let url: string;

beforeAll(async () => {
  keys = await makeTestKeys();
  const log = createLogger('silent', 'core-test');
  store = new KeyStore({ jwksFile: keys.jwksFile, refreshMs: 60_000, log });
  await store.start();
  const config: NodeSettings = {
    ...resolveOptions(nodeOptionTable, { jwksFile: keys.jwksFile, maxSessions: 3, authTimeoutMs: 300 }),
    nodeId: 'core-node',
    publicUrl: 'ws://core.example:7001',
  };
  let sessions = 0;
  metrics = new NodeMetrics({
    sessions: () => sessions,
    pendingConnections: () => 0,
    users: () => 0,
    capacity: () => config.maxSessions,
    ready: () => true,
  });
  core = new SessionCore({ config, keys: store, metrics, log });
  sessions = 0;
  server = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: config.maxFrameBytes });
  server.on('connection', (socket) => core.accept(socket));
  await once(server, 'listening');
  url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  core.startTimers();
});

afterAll(async () => {
  core.stopTimers();
  core.closeAll();
  await new Promise((resolve) => server.close(resolve));
  store.stop();
  metrics.stop();
  await keys.cleanup();
});

async function connect(): Promise<RawConnection> {
  // A bare ws server accepts any path; rawConnect adds the session path to this URL.
  return rawConnect({ url } as RunningNode);
}

async function hello(client: RawConnection, user: string): Promise<Record<string, unknown>> {
  client.socket.send(JSON.stringify({ type: 'hello', token: await keys.mint(user) }));
  return client.next();
}

test('hello, welcome, lookup and an acknowledged relay, all in the core', async () => {
  const alice = await connect();
  const bob = await connect();
  const welcome = await hello(alice, 'alice');
  expect(welcome).toMatchObject({ type: 'welcome', user: 'alice', node: 'core-node' });
  expect(await hello(bob, 'bob')).toMatchObject({ type: 'welcome', user: 'bob' });
  expect(core.sessionCount).toBe(2);

  alice.socket.send(JSON.stringify({ type: 'lookup', id: 7, user: 'bob' }));
  expect(await alice.next()).toMatchObject({
    type: 'lookup_result',
    id: 7,
    online: true,
    node: 'ws://core.example:7001',
    sessions: 1,
  });

  alice.socket.send(encodeRelayFrame(FRAME_SEND, FLAG_ACK, 9, 'bob', Buffer.from('hi bob')));
  expect(await alice.next()).toEqual({ type: 'ack', msgId: 9, delivered: 1 });
  await waitFor(() => bob.binary.length === 1, 2000, 'the delivery');
  const delivered = parseRelayFrame(bob.binary[0], FRAME_DELIVER);
  expect(delivered.ok && delivered.frame.userId).toBe('alice');
  expect(metrics.stats.relayedMessages).toBe(1);

  alice.socket.close();
  bob.socket.close();
  await Promise.all([alice.closed, bob.closed]);
  await waitFor(() => core.connectionCount === 0, 2000, 'cleanup');
});

test('refusals: no hello in time, a binary first frame, and a full node', async () => {
  const silent = await connect();
  expect(await silent.next()).toMatchObject({ type: 'error', code: 'auth_timeout' });
  expect((await silent.closed).code).toBe(4001);

  const binaryFirst = await connect();
  binaryFirst.socket.send(Buffer.from([1, 2, 3]));
  expect(await binaryFirst.next()).toMatchObject({ type: 'error', code: 'auth_required' });

  const held = [await connect(), await connect(), await connect()];
  const extra = await connect();
  expect(await extra.next()).toMatchObject({ type: 'error', code: 'full' });
  expect(core.readyState().reasons).toContain('full');
  for (const client of held) client.socket.close();
  await waitFor(() => core.connectionCount === 0, 2000, 'cleanup');
  expect(metrics.stats.refusals.get('auth_timeout')).toBe(1);
  expect(metrics.stats.refusals.get('full')).toBe(1);
});

test('drain: sessions are told to move, new ones refused, the rest closed with 1001 at the end', async () => {
  const carol = await connect();
  await hello(carol, 'carol');
  core.beginDrain(100);
  const notice = await carol.next();
  expect(notice).toMatchObject({ type: 'drain' });
  expect(notice.retryAfterMs as number).toBeLessThan(100);
  const late = await connect();
  expect(await late.next()).toMatchObject({ type: 'error', code: 'draining' });
  core.closeDrained();
  expect(await carol.closed).toEqual({ code: 1001, reason: 'drained' });
  expect(metrics.stats.disconnects.get('drained')).toBe(1);
});
