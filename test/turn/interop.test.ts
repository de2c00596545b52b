import { StunServer } from '../../supernode/stun/server';
import { waitFor } from '../helpers/node';
import { coturnTool, echoPeerPair, killAll, run, uclientTotals } from './coturn';
import { RELAY_ENGINES } from './engines';
import { type Harness, type Peer, SECRET, startTurn, TLS_CERT, TLS_KEY } from './helpers';

/**
 * Our TURN server against coturn's test clients (turnutils_uclient, turnutils_stunclient), on
 * 127.0.0.1 with time-limited credentials from the shared secret (`-W`, the REST API scheme). The
 * client checks every packet it sends comes back through the relay from the echo peers.
 */

const MESSAGES = 10;

let turn: Harness | undefined;
let peers: Peer[] = [];

afterEach(async () => {
  killAll();
  await turn?.close();
  await Promise.all(peers.map((peer) => peer.close()));
  turn = undefined;
  peers = [];
});

async function setUp(
  allowLoopback = true,
  relayEngine: (typeof RELAY_ENGINES)[number] = 'native',
): Promise<{ port: number; tlsPort?: number; peerPort: number }> {
  turn = await startTurn({
    allowPeers: allowLoopback ? ['127.0.0.1'] : [],
    tlsCert: TLS_CERT,
    tlsKey: TLS_KEY,
    tlsPort: 0,
    maxAllocationsPerUser: 64,
    now: Date.now, // coturn's clients mint their usernames from the real clock
    sweepIntervalMs: 1000,
    relayEngine,
  });
  expect(turn.server.engine).toBe(relayEngine);
  peers = await echoPeerPair();
  return { port: turn.address.port, tlsPort: turn.address.tlsPort, peerPort: peers[0].port };
}

/** The client's own accounting and ours agree that `expected` packets went out and came back. */
function expectRelayed(output: string, expected: number): void {
  expect(uclientTotals(output)).toEqual({ sent: expected, received: expected, lost: 0 });
  const stats = turn?.server.stats;
  expect(stats?.packetsToPeer).toBeGreaterThanOrEqual(expected);
  expect(stats?.packetsToClient).toBeGreaterThanOrEqual(expected);
  expect(stats?.dropped.internal_error).toBe(0);
  // Credentials were checked: every client was challenged first.
  expect(stats?.refusals[401]).toBeGreaterThan(0);
}

/** Every datagram the echo peers got came from one of our relay ports. */
function expectFromRelayPorts(count: number): void {
  const received = peers.flatMap((peer) => peer.received);
  expect(received.length).toBeGreaterThanOrEqual(count);
  const { min, max } = (turn as Harness).server.relayPorts;
  for (const { port } of received) {
    expect(port).toBeGreaterThanOrEqual(min);
    expect(port).toBeLessThanOrEqual(max);
  }
}

const credentials = ['-W', SECRET, '-u', 'interop'];

/** uclient's arguments for `server` (`tls`: its TLS port) and, unless client to client, the echo peers. */
function target(setup: { port: number; tlsPort?: number; peerPort: number }, tls: boolean, toPeer: boolean) {
  const port = ['-p', String(tls ? setup.tlsPort : setup.port)];
  return toPeer ? [...port, '-e', '127.0.0.1', '-r', String(setup.peerPort)] : port;
}

describe.each(RELAY_ENGINES)('turnutils_uclient against our TurnServer, %s relay engine', (engine) => {
  it.each([
    // -m 4 without -c: two RTP and two RTCP sessions, each its own allocation.
    ['UDP with channels, RTP and RTCP pairs (EVEN-PORT, RESERVATION-TOKEN)', [], 4],
    ['UDP with Send and Data indications (-s)', ['-s', '-c'], 2],
    ['TCP with ChannelData framed on the stream (-t)', ['-t'], 2],
    ['TCP client to client (-t -y): two allocations relaying to each other', ['-t', '-y', '-c'], 2],
    ['TLS (-t -S) on the TLS port', ['-t', '-S'], 2],
  ])('%s', async (_name, flags, sessions) => {
    const uclient = coturnTool('turnutils_uclient');
    const setup = await setUp(true, engine);
    const toPeer = !flags.includes('-y');
    const args = [...credentials, ...flags, ...target(setup, flags.includes('-S'), toPeer)];
    const result = await run(uclient, [...args, '-n', String(MESSAGES), '-m', String(sessions), '127.0.0.1']);
    expect(result.code).toBe(0);
    expectRelayed(result.output, sessions * MESSAGES);
    if (toPeer) expectFromRelayPorts(sessions * MESSAGES);
    // Every session ends with Refresh LIFETIME 0; over TCP and TLS its connection closes too, and so
    // does that of uclient's first "probe" allocation, which over UDP is left to expire.
    expect(turn?.server.stats.allocationsDeleted).toBeGreaterThanOrEqual(sessions);
    if (flags.includes('-t')) expect(turn?.server.stats.allocationsActive).toBe(0);
    expect(turn?.server.stats.channelsActive).toBe(0);
    // uclient has exited; its TCP FIN may still be on its way to our loop on a loaded machine.
    await waitFor(() => turn?.server.stats.tcpConnections === 0, 5000, 'uclient TCP connections closed');
  });

  /** A short uclient run that must fail, relaying nothing to the echo peers. */
  async function refusedRun(auth: string[], allowLoopback: boolean): Promise<string> {
    const uclient = coturnTool('turnutils_uclient');
    const setup = await setUp(allowLoopback, engine);
    const result = await run(uclient, [...auth, ...target(setup, false, true), '-n', '2', '-c', '127.0.0.1']);
    expect(result.code).not.toBe(0);
    expect(peers.flatMap((peer) => peer.received)).toHaveLength(0);
    return result.output;
  }

  it('refuses a client with the wrong secret: 401 every time, nothing allocated or relayed', async () => {
    await refusedRun(['-W', 'wrong-secret', '-u', 'mallory'], true);
    expect(turn?.server.stats.allocationsCreated).toBe(0);
    expect(turn?.server.stats.refusals[401]).toBeGreaterThan(1);
  });

  it('refuses a loopback peer with 403 unless allowPeers lists it', async () => {
    expect(await refusedRun(credentials, false)).toMatch(/channel bind: error 403/);
    expect(turn?.server.stats.refusals[403]).toBeGreaterThan(0);
  });
});

describe('turnutils_stunclient (plain STUN Binding)', () => {
  it('learns its reflexive address from the TURN port and from StunServer', async () => {
    const stunclient = coturnTool('turnutils_stunclient');
    const { port } = await setUp();
    const viaTurn = await run(stunclient, ['-p', String(port), '127.0.0.1'], 10_000);
    expect(viaTurn.code).toBe(0);
    expect(viaTurn.output).toMatch(/UDP reflexive addr: 127\.0\.0\.1:\d+/);

    const stun = new StunServer({ host: '127.0.0.1', port: 0 });
    const { port: stunPort } = await stun.start();
    try {
      const viaStun = await run(stunclient, ['-p', String(stunPort), '127.0.0.1'], 10_000);
      expect(viaStun.code).toBe(0);
      expect(viaStun.output).toMatch(/UDP reflexive addr: 127\.0\.0\.1:\d+/);
      expect(stun.stats.answered).toBeGreaterThan(0);
    } finally {
      await stun.close();
    }
  });
});
