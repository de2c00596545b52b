import { AuthClient } from '../../supernode/client/auth-client';
import { SupernodeSession } from '../../supernode/client/session';
import {
  BANNER,
  exitWithin,
  stillRunning,
  type Tier,
  TierFixtures,
  type TierPorts,
  tierPorts,
  waitForOutput,
} from './helpers';

const DRAIN_TIMEOUT_MS = 1500;
const fixtures = new TierFixtures();
afterAll(() => fixtures.cleanup());

async function start(ports: TierPorts, nodes: number): Promise<Tier> {
  const tier = fixtures.start(ports, await fixtures.dataDir(), {
    SUPERNODE_LOCAL_NODES: String(nodes),
    SUPERNODE_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
  });
  await waitForOutput(tier, BANNER, 30_000);
  return tier;
}

test('Ctrl-C to the whole process group drains every supernode once: drain, then 1001 at the deadline, exit 0', async () => {
  const ports = await tierPorts(2);
  const tier = await start(ports, 2);
  const auth = new AuthClient(`http://127.0.0.1:${ports.auth}`);
  await auth.signup('carol', 'carol-secret-1');
  const session = await SupernodeSession.connect({
    url: `ws://127.0.0.1:${ports.base}`,
    token: (await auth.login('carol', 'carol-secret-1')).accessToken,
  });
  const drains: unknown[] = [];
  session.on('drain', (drain) => drains.push(drain));
  const closed = new Promise<{ code: number; at: number }>((resolve) =>
    session.once('close', (code: number) => resolve({ code, at: Date.now() })),
  );

  // What a terminal does on Ctrl-C (and `kill -INT -- -PGID`): the signal goes to every process in
  // the foreground group, not just the supervisor.
  const signalledAt = Date.now();
  process.kill(-(tier.child.pid as number), 'SIGINT');

  const close = await closed;
  expect(drains).toEqual([
    expect.objectContaining({ type: 'drain', alternatives: [`ws://127.0.0.1:${ports.base + 1}`] }),
  ]);
  // Closed by the node at its drain deadline, not cut (1006) by a node exiting at once.
  expect(close.code).toBe(1001);
  expect(close.at - signalledAt).toBeGreaterThanOrEqual(DRAIN_TIMEOUT_MS - 200);
  expect(await exitWithin(tier, 20_000)).toBe(0);
  expect(tier.output()).not.toContain('second signal');
  expect(tier.output()).toContain('local tier: stopped (exit code 0)');
  expect(await stillRunning(tier.seen, 5000)).toEqual([]);
}, 60_000);

test('a supernode that exits is reported with what still runs; a supervisor killed outright leaves no component behind', async () => {
  const ports = await tierPorts(2);
  const tier = await start(ports, 2);
  const components = await stillRunning(tier.seen, 0);
  expect(components.length).toBeGreaterThanOrEqual(3); // the auth service and two supernodes

  // Asked to drain by someone other than the supervisor: it goes, and the rest stays up.
  expect((await fetch(`http://127.0.0.1:${ports.base + 1}/admin/drain`, { method: 'POST' })).status).toBe(
    202,
  );
  await waitForOutput(tier, 'supernode local-2 exited', 10_000);
  expect(tier.output()).toContain(
    'local tier: supernode local-2 exited with code 0; still running: auth service, supernode local-1',
  );
  expect((await fetch(`http://127.0.0.1:${ports.base}/readyz`)).status).toBe(200);

  // No chance to stop anything: each component notices its parent is gone and stops by itself.
  process.kill(tier.child.pid as number, 'SIGKILL');
  await tier.exited;
  expect(await stillRunning(components, DRAIN_TIMEOUT_MS + 8000)).toEqual([]);
  for (const port of [ports.auth, ports.base]) {
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
  }
}, 60_000);
