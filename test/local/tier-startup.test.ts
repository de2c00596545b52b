import dgram from 'node:dgram';
import { createServer, type Server } from 'node:net';
import { BANNER, exitWithin, stillRunning, TierFixtures, tierPorts } from './helpers';

const fixtures = new TierFixtures();
afterAll(() => fixtures.cleanup());

test('busy ports: each is named with the option that moves it, no banner, exit non-zero, nothing left running', async () => {
  const ports = await tierPorts(2);
  // What another tier (or anything else) holding the ports looks like.
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(ports.base + 1, '127.0.0.1', resolve));
  const stun = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => stun.bind(ports.stun, '127.0.0.1', resolve));
  try {
    const tier = fixtures.start(ports, await fixtures.dataDir(), { SUPERNODE_LOCAL_NODES: '2' });
    const code = await exitWithin(tier, 20_000);
    expect(code).not.toBe(0);
    const output = tier.output();
    expect(output).not.toContain(BANNER);
    expect(output).not.toContain('keep running');
    expect(output).toMatch(
      new RegExp(`TCP port ${ports.base + 1} .*in use.*--base-port or SUPERNODE_LOCAL_BASE_PORT`),
    );
    expect(output).toMatch(new RegExp(`UDP port ${ports.stun} .*in use.*--stun-port or SUPERNODE_STUN_PORT`));
    expect(await stillRunning(tier.seen, 5000)).toEqual([]);
    await expect(fetch(`http://127.0.0.1:${ports.auth}/healthz`)).rejects.toThrow();
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await new Promise<void>((resolve) => stun.close(resolve));
  }
}, 60_000);

test('a supernode that cannot start stops the tier: no banner, what started is stopped, exit non-zero', async () => {
  const ports = await tierPorts(1);
  // A value the supernodes refuse (exit code 2) and neither the tier nor the auth service reads:
  // the auth service starts, then every supernode fails.
  const tier = fixtures.start(ports, await fixtures.dataDir(), {
    SUPERNODE_LOCAL_NODES: '1',
    SUPERNODE_HEARTBEAT_MS: 'often',
  });
  const code = await exitWithin(tier, 30_000);
  const output = tier.output();
  expect(code).toBe(1);
  expect(output).not.toContain(BANNER);
  expect(output).not.toContain('keep running');
  expect(output).toContain('local tier: supernode local-1 exited with code 2 before it was ready');
  expect(output).toContain(`TCP ${ports.base} (supernode local-1; --base-port or SUPERNODE_LOCAL_BASE_PORT)`);
  expect(output).toContain('the tier did not start');
  expect(tier.seen.size).toBeGreaterThanOrEqual(2); // the auth service did start
  expect(await stillRunning(tier.seen, 5000)).toEqual([]);
  await expect(fetch(`http://127.0.0.1:${ports.auth}/healthz`)).rejects.toThrow();
}, 60_000);
