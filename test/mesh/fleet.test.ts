import { SupernodeSession } from '../../supernode/client/session';
import { type FleetNode, killAll, metric, planFleet, startFleetNode } from '../../supernode/local/fleet';
import { makeTestKeys, type TestKeys, waitFor } from '../helpers/node';

const SECRET = 'mesh-secret-for-tests-0123456789abcdef';

let keys: TestKeys;
let fleet: FleetNode[] = [];
const sessions: SupernodeSession[] = [];

async function connect(node: FleetNode, user: string): Promise<SupernodeSession> {
  const session = await SupernodeSession.connect({ url: node.url, token: await keys.mint(user) });
  sessions.push(session);
  return session;
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<number> {
  const started = Date.now();
  while (!(await check())) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - started;
}

/**
 * A registration reaches the owners one mesh message after the welcome (docs/architecture.md), so
 * "everyone is visible" is awaited, within a bound, rather than assumed at once.
 */
async function allOnline(observer: SupernodeSession, users: string[]): Promise<void> {
  await eventually(
    async () => (await Promise.all(users.map((u) => observer.lookup(u)))).every((a) => a.online),
    3000,
    'all users visible',
  );
}

beforeAll(async () => {
  keys = await makeTestKeys();
});
afterEach(async () => {
  await Promise.all(sessions.splice(0).map((s) => s.close().catch(() => {})));
  killAll(fleet);
  fleet = [];
});
afterAll(() => keys.cleanup());

describe('a mesh of real node processes', () => {
  it('looks up and relays between users on different nodes', async () => {
    fleet = await planFleet(3);
    await Promise.all(
      fleet.map((n) => startFleetNode(n, { jwksFile: keys.jwksFile, secret: SECRET, peers: fleet })),
    );
    await eventually(async () => (await metric(fleet[0], 'supernode_mesh_members')) === 3, 5000, 'full mesh');

    const users = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank'];
    const clients = await Promise.all(users.map((u, i) => connect(fleet[i % 3], u)));
    await allOnline(clients[0], users);
    for (const [i, client] of clients.entries()) {
      const other = users[(i + 1) % users.length];
      const answer = await client.lookup(other);
      expect(answer).toMatchObject({ online: true, node: fleet[(i + 1) % 3].url, sessions: 1 });
    }
    expect(await clients[0].lookup('nobody')).toMatchObject({ online: false, node: null });

    // alice (node 1) -> bob (node 2), in order, with acks from the far side.
    const received: string[] = [];
    clients[1].on('message', (m) => received.push(`${m.from}:${m.payload.toString()}`));
    for (let i = 0; i < 50; i++) clients[0].send('bob', Buffer.from(String(i)));
    const ack = await clients[0].sendWithAck('bob', Buffer.from('last'));
    expect(ack.delivered).toBe(1);
    await waitFor(() => received.length === 51, 5000, 'all frames');
    expect(received).toEqual([...Array.from({ length: 50 }, (_, i) => `alice:${i}`), 'alice:last']);
    const missing = await clients[0].sendWithAck('nobody', Buffer.from('x')).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: 'unknown_recipient' });
    expect(await metric(fleet[0], 'supernode_mesh_forwarded_total')).toBeGreaterThanOrEqual(51);
    expect(await metric(fleet[0], 'supernode_mesh_lookup_seconds_count')).toBeGreaterThanOrEqual(
      users.length,
    );
  });

  it('a killed node: its users vanish from lookups, then return when their clients reconnect elsewhere', async () => {
    fleet = await planFleet(3);
    await Promise.all(
      fleet.map((n) => startFleetNode(n, { jwksFile: keys.jwksFile, secret: SECRET, peers: fleet })),
    );
    await eventually(async () => (await metric(fleet[0], 'supernode_mesh_members')) === 3, 5000, 'full mesh');
    const users = Array.from({ length: 30 }, (_, i) => `user-${i}`);
    await Promise.all(users.map((u, i) => connect(fleet[i % 3], u)));
    const observer = await connect(fleet[0], 'observer');
    const victims = users.filter((_, i) => i % 3 === 2);
    await allOnline(observer, users);

    fleet[2].child?.kill('SIGKILL');
    // Dead after 5 missed 200 ms heartbeats; the owners purge the records whose home died.
    const vanishMs = await eventually(
      async () => (await Promise.all(victims.map((u) => observer.lookup(u)))).every((a) => !a.online),
      5000,
      'victims offline',
    );
    expect(vanishMs).toBeLessThan(3000);
    for (const user of users.filter((u) => !victims.includes(u)))
      expect((await observer.lookup(user)).online).toBe(true);

    await Promise.all(victims.map((u) => connect(fleet[1], u)));
    for (const user of victims)
      expect(await observer.lookup(user)).toMatchObject({ online: true, node: fleet[1].url });
  });

  it('a node that joins takes over records without losing any', async () => {
    fleet = await planFleet(4);
    await Promise.all(
      fleet
        .slice(0, 3)
        .map((n) => startFleetNode(n, { jwksFile: keys.jwksFile, secret: SECRET, peers: fleet })),
    );
    await eventually(
      async () => (await metric(fleet[0], 'supernode_mesh_members')) === 3,
      5000,
      'three members',
    );
    const users = Array.from({ length: 40 }, (_, i) => `member-${i}`);
    await Promise.all(users.map((u, i) => connect(fleet[i % 3], u)));
    await allOnline(await connect(fleet[0], 'first-observer'), users);
    const before = await Promise.all(fleet.slice(0, 3).map((n) => metric(n, 'supernode_directory_records')));
    // R = 2 copies of each record, plus at most a few strays (swept later) from publishes made
    // while the nodes were still meeting each other.
    expect(before.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(users.length * 2);

    await startFleetNode(fleet[3], { jwksFile: keys.jwksFile, secret: SECRET, peers: fleet });
    await eventually(
      async () => (await metric(fleet[3], 'supernode_mesh_members')) === 4,
      10_000, // the others redial the absent node with backoff: at most 6 s between attempts
      'four members',
    );
    await eventually(
      async () => {
        const counts = await Promise.all(fleet.map((n) => metric(n, 'supernode_directory_records')));
        return counts.reduce((a, b) => a + b, 0) >= users.length * 2 && counts[3] > 0;
      },
      5000,
      'records rebalanced',
    );
    const observer = await connect(fleet[3], 'observer');
    await allOnline(observer, users);
  });

  it('refuses a peer with the wrong mesh secret', async () => {
    fleet = await planFleet(3);
    await Promise.all(
      fleet
        .slice(0, 2)
        .map((n) => startFleetNode(n, { jwksFile: keys.jwksFile, secret: SECRET, peers: fleet })),
    );
    await startFleetNode(fleet[2], {
      jwksFile: keys.jwksFile,
      secret: 'a-different-secret-of-enough-length-0000',
      peers: fleet,
    });
    await eventually(
      async () => (await metric(fleet[0], 'supernode_mesh_members')) === 2,
      5000,
      'two members',
    );
    await eventually(
      async () =>
        (await metric(fleet[0], 'supernode_mesh_refused_peers_total')) +
          (await metric(fleet[1], 'supernode_mesh_refused_peers_total')) >
        0,
      5000,
      'refusal counted',
    );
    expect(await metric(fleet[2], 'supernode_mesh_members')).toBe(1);
    expect(await metric(fleet[0], 'supernode_mesh_members')).toBe(2);
    // The outsider's users are invisible to the mesh.
    await connect(fleet[2], 'outsider');
    const insider = await connect(fleet[0], 'insider');
    expect((await insider.lookup('outsider')).online).toBe(false);
  });
});
