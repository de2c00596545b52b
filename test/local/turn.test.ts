/**
 * TURN in the local tier (`npm start`): every supernode serves it on its own port, the banner prints
 * an iceServers example that coturn's turnutils_uclient can relay with, and the auth service's login
 * answers carry credentials for the same servers.
 */
import { AuthClient } from '../../supernode/client/auth-client';
import { freePortRun } from '../../supernode/local/fleet';
import { coturnTool, echoPeerPair, killAll, run, uclientTotals } from '../turn/coturn';
import type { Peer } from '../turn/helpers';
import { exitWithin, stillRunning, TierFixtures, tierPorts, waitForOutput } from './helpers';

const fixtures = new TierFixtures();
let peers: Peer[] = [];

afterEach(() => killAll());
afterAll(async () => {
  await fixtures.cleanup();
  await Promise.all(peers.map((peer) => peer.close()));
});

type IceServers = Array<{ urls: string[]; username?: string; credential?: string }>;

/** uclient with long-term credentials through `port` to the echo peers: what it counted. */
async function relayThrough(port: number, server: IceServers[number]) {
  const result = await run(coturnTool('turnutils_uclient'), [
    ...['-u', server.username as string, '-w', server.credential as string],
    ...['-p', String(port), '-e', '127.0.0.1', '-r', String(peers[0].port)],
    ...['-n', '5', '-c', '127.0.0.1'],
  ]);
  expect(result.code).toBe(0);
  return uclientTotals(result.output);
}

test('npm start serves TURN on every supernode; the printed iceServers and a login answer relay', async () => {
  coturnTool('turnutils_uclient'); // fail at once, with the install command, if it is missing
  peers = await echoPeerPair();
  // TURN of node i is on the STUN port + i: two consecutive free ones.
  const ports = { ...(await tierPorts(2)), stun: await freePortRun(2, 'udp') };
  // CONSOLE_PORT: the operator console of the tier, moved off its default so parallel tiers do not clash.
  const tier = fixtures.start(ports, await fixtures.dataDir(), {
    SUPERNODE_LOCAL_NODES: '2',
    CONSOLE_PORT: String(await freePortRun(1)),
  });
  await waitForOutput(tier, 'Ctrl-C drains and stops everything', 30_000);
  const output = tier.output();
  const turnPorts = [ports.stun, ports.stun + 1];
  expect(output).toContain(`TURN (UDP, TCP)    127.0.0.1:${turnPorts[0]}, 127.0.0.1:${turnPorts[1]}`);
  expect(output).toContain("new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' })");

  const printed = /const iceServers = (\[.*\]);/.exec(output)?.[1];
  expect(printed).toBeDefined();
  const example = JSON.parse(printed as string) as IceServers;
  const expectedUrls = turnPorts.flatMap((port) => [
    `turn:127.0.0.1:${port}?transport=udp`,
    `turn:127.0.0.1:${port}?transport=tcp`,
  ]);
  expect(example).toEqual([
    { urls: expectedUrls, username: expect.stringMatching(/^\d+:demo$/), credential: expect.any(String) },
  ]);
  // The demo credentials work on either node (one secret for the run).
  expect(await relayThrough(turnPorts[1], example[0])).toEqual({ sent: 5, received: 5, lost: 0 });

  const auth = new AuthClient(`http://127.0.0.1:${ports.auth}`);
  await auth.signup('alice', 'alice-secret-1');
  const { iceServers } = await auth.login('alice', 'alice-secret-1');
  expect(iceServers?.[0].urls).toEqual(expectedUrls);
  expect(iceServers?.[0].username).toMatch(/^\d+:alice$/);
  expect(await relayThrough(turnPorts[0], (iceServers as IceServers)[0])).toEqual({
    sent: 5,
    received: 5,
    lost: 0,
  });

  tier.child.kill('SIGINT');
  const code = await exitWithin(tier, 30_000);
  expect({ code, output: tier.output() }).toEqual({ code: 0, output: expect.any(String) });
  expect(await stillRunning(tier.seen, 5000)).toEqual([]);
}, 120_000);

test('--no-turn: the tier serves plain STUN on the first supernode only, as before', async () => {
  const ports = await tierPorts(1);
  const tier = fixtures.start(ports, await fixtures.dataDir(), {
    SUPERNODE_LOCAL_NODES: '1',
    SUPERNODE_LOCAL_TURN: 'false',
    CONSOLE_PORT: String(await freePortRun(1)),
  });
  await waitForOutput(tier, 'Ctrl-C drains and stops everything', 30_000);
  expect(tier.output()).toContain(`STUN (UDP)         127.0.0.1:${ports.stun}`);
  expect(tier.output()).not.toContain('iceServers');
  const auth = new AuthClient(`http://127.0.0.1:${ports.auth}`);
  await auth.signup('alice', 'alice-secret-1');
  expect((await auth.login('alice', 'alice-secret-1')).iceServers).toBeUndefined();
  tier.child.kill('SIGINT');
  expect(await exitWithin(tier, 30_000)).toBe(0);
}, 60_000);
