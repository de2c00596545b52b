/**
 * A lookup during a re-publish: the owner asked first answers "nobody" (it just took the user over and
 * the record is still on its way), the other owner holds the record. The lookup must ask on.
 * Three real meshes in this process, linked over loopback.
 */
import { freePorts } from '../../supernode/local/fleet';
import { StaticDiscovery } from '../../supernode/mesh/discovery';
import { type LocalNode, Mesh } from '../../supernode/mesh/mesh';
import { owners } from '../../supernode/mesh/rendezvous';
import { createLogger } from '../../supernode/shared/log';
import { waitFor } from '../helpers/node';

const SECRET = 'lookup-fallback-secret-0123456789abcdef';
const IDS = ['mesh-a', 'mesh-b', 'mesh-c'];
let meshes: Mesh[] = [];
/** Users with a session on each node, by node id. */
const homes = new Map<string, Set<string>>(IDS.map((id) => [id, new Set<string>()]));
/** The endpoints every session advertises: the same device, say, seen through two nodes. */
const DEVICE = { address: '203.0.113.7', port: 40000, kind: 'srflx' as const };

function localOf(id: string): LocalNode {
  return {
    presenceOf: (user) => (homes.get(id)?.has(user) ? { sessions: 1, endpoints: [DEVICE] } : undefined),
    localUsers: () => homes.get(id)?.values() ?? [],
    deliver: () => -1,
    forwardResult: () => {},
  };
}

beforeAll(async () => {
  const ports = await freePorts(IDS.length);
  const members = IDS.map((id, i) => ({ id, meshUrl: `ws://127.0.0.1:${ports[i]}` }));
  meshes = IDS.map(
    (id, i) =>
      new Mesh({
        selfId: id,
        selfUrl: `ws://127.0.0.1:${7000 + i}`,
        host: '127.0.0.1',
        port: ports[i],
        secret: SECRET,
        discovery: new StaticDiscovery(members.filter((m) => m.id !== id)),
        replicas: 2,
        heartbeatMs: 200,
        deadAfterMisses: 5,
        lookupTimeoutMs: 1000,
        sendBufferBytes: 1 << 20,
        maxFrameBytes: 65536,
        log: createLogger('silent', id),
        local: localOf(id),
      }),
  );
  await Promise.all(meshes.map((mesh) => mesh.start()));
  await waitFor(() => meshes.every((mesh) => mesh.members().length === 3), 10_000, 'three live members');
});

afterAll(async () => {
  await Promise.all(meshes.map((mesh) => mesh.stop()));
});

test('the first owner has no record yet: the second owner answers, and the user is found', async () => {
  // A user homed on the one node that owns none of its records, asked about from its second owner.
  const byId = new Map(IDS.map((id, i) => [id, meshes[i]]));
  const user = 'user-42';
  const [first, second] = owners(user, [...IDS].sort(), 2);
  const home = IDS.find((id) => id !== first && id !== second) as string;
  homes.get(home)?.add(user);
  (byId.get(home) as Mesh).publish(user);
  const directoryOf = (id: string) =>
    (byId.get(id) as unknown as { records: Map<string, Map<string, unknown>> }).records;
  await waitFor(
    () => directoryOf(first).has(user) && directoryOf(second).has(user),
    5000,
    'both owners hold the record',
  );

  // An owner answers from its own replica, with no round trip and no fallback.
  const asker = byId.get(second) as Mesh;
  let fallbacksBefore = asker.stats.lookupFallbacks;
  const remoteBefore = asker.stats.lookupsRemote;
  expect(await asker.lookup(user)).toMatchObject({ online: true, sessions: 1 });
  expect(asker.stats.lookupFallbacks).toBe(fallbacksBefore);
  expect(asker.stats.lookupsRemote).toBe(remoteBefore);

  // The re-publish window: the asking owner has just taken the user over and holds no record yet,
  // the other owner still holds it.
  directoryOf(second).delete(user);
  fallbacksBefore = asker.stats.lookupFallbacks;
  expect(await asker.lookup(user)).toMatchObject({
    online: true,
    node: `ws://127.0.0.1:${7000 + IDS.indexOf(home)}`,
    sessions: 1,
  });
  expect(asker.stats.lookupFallbacks).toBe(fallbacksBefore + 1);

  // Nobody anywhere: both owners are asked, and the answer is offline.
  expect(await asker.lookup('user-nobody')).toEqual({
    online: false,
    node: null,
    sessions: 0,
    endpoints: [],
  });
});

test('a user on two nodes advertising the same endpoint: the lookup lists it once', async () => {
  const user = 'user-twice';
  const [first, second] = owners(user, [...IDS].sort(), 2);
  const outsider = IDS.find((id) => id !== first && id !== second) as string;
  // Homed on the outsider and on the second owner; asked from the first owner.
  for (const home of [outsider, second]) {
    homes.get(home)?.add(user);
    meshes[IDS.indexOf(home)].publish(user);
  }
  const asker = meshes[IDS.indexOf(first)];
  await waitFor(
    () => (asker as unknown as { records: Map<string, Map<string, unknown>> }).records.get(user)?.size === 2,
    5000,
    'both homes recorded',
  );
  const answer = await asker.lookup(user);
  expect(answer.sessions).toBe(2);
  expect(answer.endpoints).toEqual([DEVICE]);
});
