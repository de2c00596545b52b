/**
 * Hostile clients on the mesh port (docs/architecture.md#members): plain HTTP, WebSocket clients that
 * cannot authenticate, garbage bytes, and a would-be peer with the wrong secret. Two meshed nodes
 * keep looking up and relaying between a control pair, one user on each, throughout.
 */
import WebSocket from 'ws';
import { SupernodeSession } from '../../supernode/client/session';
import { freePorts } from '../../supernode/local/fleet';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys, waitFor } from '../helpers/node';
import {
  type ControlPair,
  controlPair,
  keepChecking,
  rawTcp,
  scale,
  sleep,
  stopChecking,
  upgradeRequest,
} from './hostile';

const SECRET = 'hostile-suite-mesh-secret-0123456789abcdef';

let keys: TestKeys;
let meshPorts: number[];
let peers: string[];
const nodes: RunningNode[] = [];
let control: ControlPair;

async function meshNode(id: string, meshPort: number, secret = SECRET): Promise<RunningNode> {
  const running = await startTestNode(keys, {
    nodeId: id,
    mesh: true,
    meshPort,
    meshPeers: peers,
    meshSecret: secret,
  });
  nodes.push(running);
  return running;
}

beforeAll(async () => {
  keys = await makeTestKeys();
  meshPorts = await freePorts(3);
  peers = ['a', 'b', 'c'].map((id, i) => `${id}@ws://127.0.0.1:${meshPorts[i]}`);
  const [a, b] = [await meshNode('a', meshPorts[0]), await meshNode('b', meshPorts[1])];
  await waitFor(
    () => a.node.mesh?.members().length === 2 && b.node.mesh?.members().length === 2,
    5000,
    'mesh',
  );
  control = await controlPair({ a, b }, (user) => keys.mint(user));
  // A registration reaches the directory one mesh message after the welcome.
  const deadline = Date.now() + 3000;
  for (;;) {
    try {
      await control.check();
      break;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await sleep(50);
    }
  }
});
afterEach(() => stopChecking());
afterAll(async () => {
  await control.close();
  await Promise.all(nodes.map((n) => n.node.close()));
  await keys.cleanup();
});

const refused = () => nodes[0].node.mesh?.stats.refusedPeers ?? 0;

/** A WebSocket to the mesh path; resolves with the close code once the node ends it. */
async function meshClient(
  act: (socket: WebSocket, challenge: Record<string, unknown>) => void,
): Promise<{ code: number; ms: number }> {
  const socket = new WebSocket(`ws://127.0.0.1:${meshPorts[0]}/v1/mesh`);
  socket.on('error', () => {});
  const started = Date.now();
  const closed = new Promise<{ code: number; ms: number }>((resolve) =>
    socket.once('close', (code) => resolve({ code, ms: Date.now() - started })),
  );
  socket.once('message', (data) => act(socket, JSON.parse(String(data)) as Record<string, unknown>));
  return closed;
}

describe('clients on the mesh port', () => {
  it('WebSocket clients that cannot authenticate are closed with 4401 and counted; the mesh keeps working', async () => {
    const checking = keepChecking(control);
    const before = refused();
    const attempts = [
      meshClient((s) => s.send('not json at all')),
      meshClient((s) => s.send(Buffer.from([3, 0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0x61]))),
      meshClient((s) => s.send(JSON.stringify({ t: 'accept', mac: 'x' }))),
      // A well-formed answer to the challenge, but without the secret the MAC cannot be right.
      meshClient((s, challenge) =>
        s.send(
          JSON.stringify({ t: 'auth', node: 'z9', nonce: 'n'.repeat(43), mac: String(challenge.nonce) }),
        ),
      ),
      // Claims to be the node itself.
      meshClient((s) =>
        s.send(JSON.stringify({ t: 'auth', node: 'a', nonce: 'n'.repeat(43), mac: 'm'.repeat(43) })),
      ),
      ...Array.from({ length: 3 * scale }, () => meshClient((s) => s.send('{"t":"hb"}'))),
      // Says nothing: closed when the handshake times out (5 s).
      meshClient(() => {}),
    ];
    const outcomes = await Promise.all(attempts);
    for (const outcome of outcomes) expect(outcome.code).toBe(4401);
    expect(outcomes[outcomes.length - 1].ms).toBeGreaterThanOrEqual(4500);
    expect(refused() - before).toBe(attempts.length);
    const { rounds } = await checking.stop();
    expect(rounds).toBeGreaterThan(1);
    expect(nodes[0].node.mesh?.members()).toEqual(['a', 'b']);
  });

  it('a socket that floods before proving the secret is refused at once, not held until the handshake times out', async () => {
    const checking = keepChecking(control);
    const before = refused();
    const started = Date.now();
    const socket = new WebSocket(`ws://127.0.0.1:${meshPorts[0]}/v1/mesh`);
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('open', resolve));
    // 20 frames of 64 KiB: far beyond what a handshake needs (16 frames or 256 KiB are allowed).
    for (let i = 0; i < 20; i++) socket.send(Buffer.alloc(64 * 1024, i));
    const code = await new Promise<number>((resolve) =>
      socket.once('close', (closeCode) => resolve(closeCode)),
    );
    expect(code).toBe(4401);
    expect(Date.now() - started).toBeLessThan(4000);
    await waitFor(() => refused() > before, 2000, 'refusal counted');
    await checking.stop();
    expect(nodes[0].node.mesh?.members()).toEqual(['a', 'b']);
  });

  it('plain HTTP, other paths and garbage bytes are refused at the HTTP layer; the node is unaffected', async () => {
    const checking = keepChecking(control);
    const base = `http://127.0.0.1:${meshPorts[0]}`;
    for (const path of ['/v1/mesh', '/', '/metrics', '/admin/drain']) {
      expect((await fetch(`${base}${path}`)).status).toBe(404);
      expect((await fetch(`${base}${path}`, { method: 'POST', body: 'x'.repeat(10_000) })).status).toBe(404);
    }
    // A WebSocket upgrade for any other path (the session path included) is dropped without an answer.
    const wrongPath = await rawTcp(meshPorts[0]);
    wrongPath.socket.write(upgradeRequest('/v1/session'));
    await wrongPath.closed;
    expect(wrongPath.received().length).toBe(0);
    for (let i = 0; i < 5 * scale; i++) {
      const garbage = await rawTcp(meshPorts[0]);
      garbage.socket.write(Buffer.from(Array.from({ length: 512 }, (_, j) => (j * 37 + i) % 256)));
      await garbage.closed;
      expect(garbage.received().toString('latin1')).toMatch(/^HTTP\/1\.1 400 Bad Request/);
    }
    await checking.stop();
    expect(nodes[0].node.mesh?.members()).toEqual(['a', 'b']);
    expect(nodes[0].node.readyState().ready).toBe(true);
  });

  it('a peer with the wrong secret is refused: it never joins, its users stay invisible, the members relay on', async () => {
    const checking = keepChecking(control);
    const before = refused() + (nodes[1].node.mesh?.stats.refusedPeers ?? 0);
    const outsider = await meshNode('c', meshPorts[2], 'a-different-secret-of-enough-length-0000');
    await waitFor(
      () => refused() + (nodes[1].node.mesh?.stats.refusedPeers ?? 0) > before,
      5000,
      'refusal counted by the members',
    );
    expect(outsider.node.mesh?.members()).toEqual(['c']);
    const stranger = await SupernodeSession.connect({
      url: outsider.url,
      token: await keys.mint('stranger'),
    });
    try {
      expect(await control.a.lookup('stranger')).toMatchObject({ online: false });
      const relay = await control.a.sendWithAck('stranger', Buffer.from('x')).catch((e: unknown) => e);
      expect(relay).toMatchObject({ code: 'unknown_recipient' });
    } finally {
      await stranger.close();
    }
    await checking.stop();
    expect(nodes[0].node.mesh?.members()).toEqual(['a', 'b']);
    expect(nodes[1].node.mesh?.members()).toEqual(['a', 'b']);
  });
});
