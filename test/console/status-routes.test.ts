/**
 * GET /status on a supernode and on the auth service: the JSON matches the shared schema
 * (supernode/status/schemas.ts) and says what the services are doing; callers other than loopback
 * (or, on auth with an admin token, without the token) are refused.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { SupernodeSession } from '../../supernode/client/session';
import { freePorts } from '../../supernode/local/fleet';
import { checkAuthStatus, checkNodeStatus, type NodeStatusBody } from '../../supernode/status/schemas';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

/**
 * An address of this machine that is not loopback, to call from "elsewhere" (Fastify's inject() cannot
 * run under this Jest: light-my-request loads an ES module).
 */
function outsideAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
  if (!found) throw new Error('this test needs a network interface other than loopback (an IPv4 address)');
  return found;
}

async function getStatus(
  host: string,
  port: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://${host}:${port}/status`, { headers });
  return { status: response.status, body: await response.json() };
}

describe('supernode GET /status', () => {
  let keys: TestKeys;
  const nodes: RunningNode[] = [];

  beforeAll(async () => {
    keys = await makeTestKeys();
    const meshPorts = await freePorts(2);
    const ids = ['status-a', 'status-b'];
    for (const [i, id] of ids.entries()) {
      nodes.push(
        await startTestNode(keys, {
          nodeId: id,
          // Every address, as in AWS, so one node can be called from loopback and from outside.
          host: '0.0.0.0',
          mesh: true,
          meshPort: meshPorts[i],
          meshSecret: 's'.repeat(32),
          meshHeartbeatMs: 200,
          meshPeers: ids
            .filter((other) => other !== id)
            .map((other) => `${other}@ws://127.0.0.1:${meshPorts[ids.indexOf(other)]}`),
        }),
      );
    }
    await waitFor(() => nodes.every((n) => n.node.mesh?.members().length === 2), 10_000, 'the mesh');
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.node.close()));
    await keys.cleanup();
  });

  async function statusOf(running: RunningNode): Promise<NodeStatusBody> {
    const response = await getStatus('127.0.0.1', running.port);
    expect(response.status).toBe(200);
    const checked = checkNodeStatus(response.body);
    if (!checked.ok) throw new Error(`not the schema: ${checked.problem}`);
    return checked.value;
  }

  test('matches the schema and counts sessions, users, directory records and mesh links', async () => {
    const [a, b] = nodes;
    const sessions = await Promise.all(['ann', 'bea', 'cat'].map((user) => connectAs(a, keys, user)));
    try {
      // Each user's record goes to R = 2 owners: with two live members, both nodes hold every record.
      await waitFor(() => (b.node.mesh?.directorySize() ?? 0) === 3, 5000, 'the records on b');
      const status = await statusOf(a);
      expect(status).toMatchObject({
        service: 'node',
        nodeId: 'status-a',
        ready: true,
        reasons: [],
        draining: false,
        sessions: 3,
        users: 3,
        meshed: true,
        members: ['status-a', 'status-b'],
        links: [{ peer: 'status-b', state: 'live', lastHeardMsAgo: expect.any(Number) }],
      });
      expect(status.directoryRecords).toBe(a.node.mesh?.directorySize());
      expect(await statusOf(b)).toMatchObject({ sessions: 0, directoryRecords: 3 });
    } finally {
      await Promise.all(sessions.map((s) => s.close()));
    }
  });

  test('counts refusals by reason since start', async () => {
    const [a] = nodes;
    const before = (await statusOf(a)).refusals.token_invalid ?? 0;
    await expect(SupernodeSession.connect({ url: a.url, token: 'not-a-token' })).rejects.toThrow();
    await waitFor(
      () => (a.node.metrics.stats.refusals.get('token_invalid') ?? 0) > before,
      5000,
      'the refusal',
    );
    expect((await statusOf(a)).refusals.token_invalid).toBe(before + 1);
  });

  test('refuses a caller that is not loopback, as the admin routes do', async () => {
    const response = await getStatus(outsideAddress(), nodes[0].port);
    expect(response.status).toBe(403);
    expect(response.body).toEqual({ error: 'forbidden', message: expect.stringContaining('loopback') });
  });
});

describe('auth GET /status', () => {
  let dataDir: string;
  let auth: AuthService | undefined;
  const FAST = {
    scryptN: 1024,
    hashConcurrency: 2,
    hashQueue: 7,
    logLevel: 'silent',
    keyPublishLeadSec: 0,
  } as const;

  beforeEach(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'console-auth-'));
  });
  afterEach(async () => {
    await auth?.close();
    auth = undefined;
    await rm(dataDir, { recursive: true, force: true });
  });

  test('matches the schema: the pool, C, logins and refusals by outcome', async () => {
    auth = await buildAuthService({ ...FAST, dataDir, port: 0 });
    const { port, url: base } = await auth.listen();
    const post = (path: string, body: object) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/v1/accounts', { username: 'dora', password: 'dora-secret-1' })).status).toBe(201);
    expect((await post('/v1/login', { username: 'dora', password: 'dora-secret-1' })).status).toBe(200);
    expect((await post('/v1/login', { username: 'dora', password: 'wrong-secret-1' })).status).toBe(401);

    const response = await getStatus('127.0.0.1', port);
    expect(response.status).toBe(200);
    const checked = checkAuthStatus(response.body);
    if (!checked.ok) throw new Error(`not the schema: ${checked.problem}`);
    const status = checked.value;
    expect(status.hashPool).toMatchObject({ concurrency: 2, maxQueue: 7, inFlight: 0, queued: 0 });
    // C = concurrency / the duration of one hash.
    expect(status.hashPool.capacityPerSec).toBeCloseTo((2 * 1000) / status.hashPool.runMsEwma, 6);
    expect(status.logins).toMatchObject({ succeeded: 1, shed: 0 });
    expect(status.logins.admitted).toBeGreaterThanOrEqual(3);
    expect(status.refusals).toEqual({ invalid: 1 });
  });

  test('with an admin token: only its bearer; without one: loopback only', async () => {
    const token = 't'.repeat(40);
    const outside = outsideAddress();
    auth = await buildAuthService({ ...FAST, dataDir, host: '0.0.0.0', port: 0, adminToken: token });
    let { port } = await auth.listen();
    expect((await getStatus('127.0.0.1', port)).status).toBe(403);
    expect((await getStatus(outside, port, { authorization: `Bearer ${'x'.repeat(40)}` })).status).toBe(403);
    expect((await getStatus(outside, port, { authorization: `Bearer ${token}` })).status).toBe(200);
    await auth.close();

    auth = await buildAuthService({ ...FAST, dataDir, host: '0.0.0.0', port: 0 });
    ({ port } = await auth.listen());
    expect((await getStatus('127.0.0.1', port)).status).toBe(200);
    expect(await getStatus(outside, port)).toEqual({
      status: 403,
      body: { error: 'forbidden', message: 'admin credentials required' },
    });
  });
});
