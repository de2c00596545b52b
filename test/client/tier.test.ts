/**
 * The resilient client against a real tier: the auth service (in-process, embedded store) and three
 * supernode processes meshed over loopback, all on free ports. The tests share the fleet and run in
 * order; each leaves the auth service up and at least two nodes running.
 */
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { AuthClient, type Tokens } from '../../supernode/client/auth-client';
import { FileCredentialStore } from '../../supernode/client/credentials';
import {
  type ClientEvents,
  SupernodeClient,
  type SupernodeClientOptions,
} from '../../supernode/client/resilient-client';
import { SupernodeSession } from '../../supernode/client/session';
import { type FleetNode, killAll, planFleet, startFleetNode } from '../../supernode/local/fleet';

const SECRET = 'mesh-secret-for-client-tests-0123456789';
const PASSWORD = 'correct-horse-1';

let dataDir: string;
let auth: AuthService;
let authPort: number;
let authUrl: string;
let fleet: FleetNode[] = [];
const clients: SupernodeClient[] = [];
const sessions: SupernodeSession[] = [];

async function startAuth(port = 0): Promise<void> {
  auth = await buildAuthService({
    scryptN: 1024,
    hashConcurrency: 2,
    logLevel: 'silent',
    keyPublishLeadSec: 0,
    dataDir,
    port,
  });
  ({ port: authPort, url: authUrl } = await auth.listen());
}

function startNode(node: FleetNode): Promise<FleetNode> {
  return startFleetNode(node, {
    jwksFile: auth.files.jwks,
    secret: SECRET,
    peers: fleet,
    extraEnv: {
      SUPERNODE_ALTERNATIVES: fleet
        .filter((n) => n !== node)
        .map((n) => n.url)
        .join(','),
      // Drain advice spread over [0, 1 s); refusals advise 100-200 ms.
      SUPERNODE_DRAIN_TIMEOUT_MS: '2000',
      SUPERNODE_RETRY_AFTER_MS: '100',
    },
  });
}

/** A client with test-sized waits; its password provider counts how often it is asked. */
function makeClient(
  username: string,
  store: FileCredentialStore,
  extra: Partial<SupernodeClientOptions> = {},
) {
  const asked = { password: 0 };
  const client = new SupernodeClient({
    username,
    nodes: fleet.map((n) => n.url),
    auth: new AuthClient(authUrl, 1000),
    credentials: store,
    password: () => {
      asked.password++;
      return PASSWORD;
    },
    backoff: { baseMs: 100, capMs: 800 },
    retryBudget: { minIntervalMs: 1000 },
    reconnectJitterMs: 200,
    connectTimeoutMs: 2000,
    ...extra,
  });
  clients.push(client);
  return { client, asked };
}

async function cachedStore(username: string, change: Partial<Tokens> = {}): Promise<FileCredentialStore> {
  const store = new FileCredentialStore(await mkdtemp(join(dataDir, 'cache-')));
  await store.save(username, { ...(await new AuthClient(authUrl).login(username, PASSWORD)), ...change });
  return store;
}

async function observer(): Promise<SupernodeSession> {
  const tokens = await new AuthClient(authUrl).login('observer', PASSWORD);
  const session = await SupernodeSession.connect({ url: fleet[2].url, token: tokens.accessToken });
  sessions.push(session);
  return session;
}

/** Lookups cross the mesh; a registration reaches the directory one mesh message after the welcome. */
async function homeOf(from: SupernodeSession, user: string, expected: string): Promise<void> {
  const deadline = Date.now() + 5000;
  let answer = await from.lookup(user);
  while (answer.node !== expected && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    answer = await from.lookup(user);
  }
  expect(answer).toMatchObject({ online: true, node: expected });
}

async function nextConnected(client: SupernodeClient): Promise<ClientEvents['connected'][0]> {
  const [event] = (await once(client, 'connected')) as ClientEvents['connected'];
  return event;
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'client-tier-'));
  await startAuth();
  const signup = new AuthClient(authUrl);
  for (const user of ['alice', 'carol', 'dave', 'erin', 'observer']) await signup.signup(user, PASSWORD);
  fleet = await planFleet(3, 'c');
  await Promise.all(fleet.map(startNode));
}, 30_000);

afterAll(async () => {
  await Promise.all([...clients.map((c) => c.stop()), ...sessions.map((s) => s.close())]);
  killAll(fleet);
  await auth?.close();
  await rm(dataDir, { recursive: true, force: true });
});

test('cached credentials: a killed node, then a drained one; the client re-homes and re-registers with no refresh and no login', async () => {
  const bob = await observer();
  const { client, asked } = makeClient('alice', await cachedStore('alice'));
  const rehomes: Array<{ from: string; to: string }> = [];
  client.on('rehomed', ({ from, to }) => rehomes.push({ from: from.url, to: to.url }));
  client.start();
  await client.whenConnected();
  await homeOf(bob, 'alice', fleet[0].url);

  fleet[0].child?.kill('SIGKILL');
  await once(client, 'rehomed');
  await homeOf(bob, 'alice', fleet[1].url);

  const drained = once(fleet[1].child as NonNullable<FleetNode['child']>, 'exit');
  expect((await fetch(`http://127.0.0.1:${fleet[1].port}/admin/drain`, { method: 'POST' })).status).toBe(202);
  await once(client, 'rehomed');
  // The only live alternative: fleet[0] is dead.
  await homeOf(bob, 'alice', fleet[2].url);
  expect(rehomes).toEqual([
    { from: fleet[0].url, to: fleet[1].url },
    { from: fleet[1].url, to: fleet[2].url },
  ]);
  expect(client.counters.attempts).toMatchObject({ refresh: 0, login: 0 });
  expect(asked.password).toBe(0);
  await client.stop();

  await drained;
  await Promise.all([startNode(fleet[0]), startNode(fleet[1])]);
}, 20_000);

test('auth service down: a valid cached token still reconnects; an expired one retries the refresh, never the password, until auth returns', async () => {
  const carolStore = await cachedStore('carol');
  const daveStore = await cachedStore('dave', { expiresAt: Date.now() - 1000 });
  await auth.close();

  const carol = makeClient('carol', carolStore);
  carol.client.start();
  const first = await nextConnected(carol.client);
  expect(first.resumed).toBe(true);
  const home = fleet.find((n) => n.url === first.url) as FleetNode;
  home.child?.kill('SIGKILL');
  const again = await nextConnected(carol.client);
  expect(again.resumed).toBe(true);
  expect(again.url).not.toBe(home.url);

  const dave = makeClient('dave', daveStore);
  const refreshWaits: number[] = [];
  dave.client.on('retry_scheduled', (e) => e.step === 'refresh' && refreshWaits.push(e.delayMs));
  dave.client.start();
  while (refreshWaits.length < 4) await new Promise((r) => setTimeout(r, 50));
  expect(dave.client.session).toBeUndefined();
  expect(dave.client.counters.attempts).toMatchObject({ connect: 0, login: 0 });
  expect(dave.asked.password).toBe(0);

  await startAuth(authPort);
  await dave.client.whenConnected();
  expect(dave.client.counters).toMatchObject({ refreshes: 1, passwordLogins: 0 });
  expect(dave.client.counters.attempts.refresh).toBeGreaterThanOrEqual(5);
  expect(dave.client.counters.attempts.login).toBe(0);
  // The rotated pair was saved: the next run resumes from it.
  expect((await daveStore.load('dave'))?.expiresAt).toBeGreaterThan(Date.now());
  expect(carol.client.counters.attempts).toMatchObject({ refresh: 0, login: 0 });

  await Promise.all([carol.client.stop(), dave.client.stop()]);
  await startNode(home);
}, 20_000);

test('a wiped credential cache: exactly one password login, then resumption from the new cache', async () => {
  const store = new FileCredentialStore(await mkdtemp(join(dataDir, 'cache-')));
  const first = makeClient('erin', store);
  first.client.start();
  await first.client.whenConnected();
  expect(first.client.counters).toMatchObject({ passwordLogins: 1, refreshes: 0 });
  expect(first.asked.password).toBe(1);
  await first.client.stop();

  const second = makeClient('erin', store);
  second.client.start();
  expect((await nextConnected(second.client)).resumed).toBe(true);
  expect(second.asked.password).toBe(0);
  expect(second.client.counters.attempts.login).toBe(0);
  await second.client.stop();
});
