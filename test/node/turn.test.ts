/**
 * TURN on a supernode (`--turn`), end to end: coturn's turnutils_uclient relays through a node with
 * the credentials a real auth service returned on login; drain refuses new allocations while existing
 * ones go on; /metrics shows allocations and bytes; a secret file rotates with overlap; bad
 * configurations stop the node with one ConfigError naming the option.
 */
import dgram from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth';
import { AuthClient } from '../../supernode/client/auth-client';
import { ConfigError } from '../../supernode/config/options';
import {
  buildSupernode,
  runSupernode,
  type Supernode,
  type SupernodeOptions,
} from '../../supernode/node/server';
import { writeAtomically } from '../../supernode/shared/files';
import { TurnClient, TurnError } from '../../supernode/turn/client';
import { turnCredentials } from '../../supernode/turn/credentials';
import { makeTestKeys, type TestKeys } from '../helpers/node';
import { coturnTool, echoPeerPair, killAll, run, uclientTotals } from '../turn/coturn';
import { type Peer, relayPortRange } from '../turn/helpers';

const SECRET = 'node-turn-test-secret-0123456789';
const CERT = join(__dirname, '../turn/fixtures/test-cert.pem');
const KEY = join(__dirname, '../turn/fixtures/test-key.pem');
const MESSAGES = 10;

let keys: TestKeys;
let dir: string;
let peers: Peer[];
const nodes: Supernode[] = [];
const services: AuthService[] = [];
const clients: TurnClient[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  dir = await mkdtemp(join(tmpdir(), 'node-turn-'));
  peers = await echoPeerPair();
});
afterEach(() => killAll());
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(nodes.map((node) => node.close()));
  await Promise.all(services.map((service) => service.close()));
  await Promise.all(peers.map((peer) => peer.close()));
  await keys.cleanup();
  await rm(dir, { recursive: true, force: true });
});

/** A node serving TURN on 127.0.0.1 (ports picked by the OS), relays to loopback allowed. */
async function startTurnNode(options: SupernodeOptions = {}) {
  const node = buildSupernode({
    host: '127.0.0.1',
    port: 0,
    stunPort: 0,
    jwksFile: keys.jwksFile,
    logLevel: 'silent',
    nodeId: 'turn-node',
    turn: true,
    turnSecret: SECRET,
    turnAllowPeers: ['127.0.0.1'],
    turnMaxAllocationsPerUser: 64,
    ...(() => {
      const { minPort, maxPort } = relayPortRange(64);
      return { turnMinPort: minPort, turnMaxPort: maxPort };
    })(),
    ...options,
  });
  nodes.push(node);
  const address = await node.listen();
  return { node, ...address, turnPort: address.turnPort as number };
}

async function turnClient(port: number, username: string, password: string): Promise<TurnClient> {
  const client = await TurnClient.connect({ host: '127.0.0.1', port, username, password, timeoutMs: 2000 });
  clients.push(client);
  return client;
}

/** The error code our client's Allocate gets, or 0 when it is granted (the allocation then deleted). */
async function allocateCode(port: number, secret: string, user: string): Promise<number> {
  const { username, credential } = turnCredentials(secret, user, 600);
  const client = await turnClient(port, username, credential);
  try {
    await client.allocate();
    await client.refresh(0);
    return 0;
  } catch (err) {
    if (err instanceof TurnError) return err.code;
    throw err;
  }
}

/** turnutils_uclient through `port` to the echo peers; `auth` is `-u user -w password` or `-W secret -u user`. */
function uclient(port: number, auth: string[], extra: string[] = []) {
  const args = [...auth, '-p', String(port), '-e', '127.0.0.1', '-r', String(peers[0].port)];
  return run(coturnTool('turnutils_uclient'), [...args, ...extra, '-n', String(MESSAGES), '-c', '127.0.0.1']);
}

async function metricsOf(node: { port: number }): Promise<string> {
  return (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
}

/** The value of one sample of /metrics, e.g. `supernode_turn_refusals_total{code="401"}`. */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in /metrics`);
  return Number(line.slice(name.length + 1));
}

async function waitUntil(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMs} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('TURN with credentials from the auth service', () => {
  let turn: Awaited<ReturnType<typeof startTurnNode>>;
  let auth: AuthClient;

  beforeAll(async () => {
    turn = await startTurnNode({ turnTlsCertFile: CERT, turnTlsKeyFile: KEY, turnTlsPort: 0 });
    const service = await buildAuthService({
      dataDir: join(dir, 'auth'),
      port: 0,
      scryptN: 1024,
      logLevel: 'silent',
      turnUrls: [
        `turn:127.0.0.1:${turn.turnPort}?transport=udp`,
        `turns:127.0.0.1:${turn.turnTlsPort}?transport=tcp`,
      ],
      turnSecret: SECRET,
    });
    services.push(service);
    const { url } = await service.listen();
    auth = new AuthClient(url);
    await auth.signup('alice', 'alice-password-1');
  });

  it('turnutils_uclient relays over UDP and TLS with the iceServers a login returned', async () => {
    const tokens = await auth.login('alice', 'alice-password-1');
    const [server] = tokens.iceServers ?? [];
    expect(server.urls).toEqual([
      `turn:127.0.0.1:${turn.turnPort}?transport=udp`,
      `turns:127.0.0.1:${turn.turnTlsPort}?transport=tcp`,
    ]);
    expect(server.username).toMatch(/^\d+:alice$/);
    // The port comes from the handed-out URL: what a WebRTC client would dial.
    const udpPort = Number(/:(\d+)\?transport=udp$/.exec(server.urls[0])?.[1]);
    const tlsPort = Number(/:(\d+)\?transport=tcp$/.exec(server.urls[1])?.[1]);
    const credentials = ['-u', server.username as string, '-w', server.credential as string];

    const viaUdp = await uclient(udpPort, credentials);
    expect(viaUdp.code).toBe(0);
    expect(uclientTotals(viaUdp.output)).toEqual({ sent: MESSAGES, received: MESSAGES, lost: 0 });
    const viaTls = await uclient(tlsPort, credentials, ['-t', '-S']);
    expect(viaTls.code).toBe(0);
    expect(uclientTotals(viaTls.output)).toEqual({ sent: MESSAGES, received: MESSAGES, lost: 0 });
  }, 60_000);

  it('a refresh answer carries new credentials; a tampered one is refused (401)', async () => {
    const first = await auth.login('alice', 'alice-password-1');
    const refreshed = await auth.refresh(first.refreshToken);
    const [server] = refreshed.iceServers ?? [];
    expect(server.username).toMatch(/^\d+:alice$/);
    const refusalsBefore = turn.node.turn?.server.stats.refusals[401] ?? 0;
    const createdBefore = turn.node.turn?.server.stats.allocationsCreated;
    const forged = (server.username as string).replace(/:alice$/, ':mallory');
    const result = await uclient(turn.turnPort, ['-u', forged, '-w', server.credential as string]);
    expect(result.code).not.toBe(0);
    expect(turn.node.turn?.server.stats.allocationsCreated).toBe(createdBefore);
    expect(turn.node.turn?.server.stats.refusals[401]).toBeGreaterThan(refusalsBefore + 1);
    // The genuine one still works.
    expect(await allocateCode(turn.turnPort, SECRET, 'alice')).toBe(0);
  }, 60_000);

  it('/metrics shows allocations, relayed bytes and packets, refusals by code and allocation events', async () => {
    const { username, credential } = turnCredentials(SECRET, 'bob', 600);
    const client = await turnClient(turn.turnPort, username, credential);
    // uclient leaves its UDP "probe" allocations to expire: count from what is there now.
    const before = turn.node.turn?.server.stats.allocationsActive ?? 0;
    await client.allocate();
    const text = await metricsOf(turn);
    const stats = turn.node.turn?.server.stats;
    expect(sample(text, 'supernode_turn_allocations')).toBe(before + 1);
    expect(sample(text, 'supernode_turn_relayed_packets_total{direction="to_peer"}')).toBeGreaterThanOrEqual(
      2 * MESSAGES,
    );
    expect(
      sample(text, 'supernode_turn_relayed_packets_total{direction="to_client"}'),
    ).toBeGreaterThanOrEqual(2 * MESSAGES);
    expect(sample(text, 'supernode_turn_relayed_bytes_total{direction="to_peer"}')).toBe(stats?.bytesToPeer);
    expect(stats?.bytesToPeer).toBeGreaterThanOrEqual(2 * MESSAGES * 100);
    expect(sample(text, 'supernode_turn_refusals_total{code="401"}')).toBe(stats?.refusals[401]);
    expect(sample(text, 'supernode_turn_refusals_total{code="401"}')).toBeGreaterThan(0);
    expect(sample(text, 'supernode_turn_allocation_events_total{event="allocated"}')).toBe(
      stats?.allocationsCreated,
    );
    expect(sample(text, 'supernode_turn_dropped_total{reason="internal_error"}')).toBe(0);
    // CloudWatch gets the allocations and the bytes relayed since the last interval.
    const samples = turn.node.metrics.cloudWatchSamples();
    expect(samples).toContainEqual({ name: 'TurnAllocations', value: before + 1, unit: 'Count' });
    expect(samples).toContainEqual({
      name: 'TurnRelayedBytes',
      value: (stats?.bytesToPeer ?? 0) + (stats?.bytesToClient ?? 0),
      unit: 'Bytes',
    });
    await client.refresh(0);
  });
});

describe('drain', () => {
  it('refuses new allocations with 508 while an existing one goes on; ends when it is gone', async () => {
    let drained = false;
    const turn = await startTurnNode({ drainTimeoutMs: 120_000, onDrained: () => (drained = true) });
    const { username, credential } = turnCredentials(SECRET, 'carol', 600);
    const held = await turnClient(turn.turnPort, username, credential);
    await held.allocate();

    const draining = turn.node.drain();
    await waitUntil(() => turn.node.turn?.server.isDraining === true, 'TURN draining');
    const refused = await uclient(turn.turnPort, ['-W', SECRET, '-u', 'dave']);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain('error 508');
    expect(turn.node.turn?.server.stats.refusals[508]).toBeGreaterThan(0);
    expect(sample(await metricsOf(turn), 'supernode_turn_draining')).toBe(1);
    // The existing allocation is still served: refreshed and relaying.
    expect(await held.refresh(600)).toBe(600);
    await held.createPermission('127.0.0.1');
    held.send({ address: '127.0.0.1', port: peers[1].port }, Buffer.from('still relayed'));
    await waitUntil(() => peers[1].received.some((r) => r.data.toString() === 'still relayed'), 'relayed');
    expect(drained).toBe(false);

    await held.refresh(0);
    await draining;
    expect(drained).toBe(true);
  }, 60_000);
});

describe('secret file rotation', () => {
  it('applies a rotation without a restart: the old secret works during the overlap, not once removed', async () => {
    const file = join(dir, 'turn-secrets');
    const [oldSecret, newSecret] = ['old-secret-0123456789abcdef', 'new-secret-0123456789abcdef'];
    // Replaced whole (as an operator's tooling should), so no read sees half a file.
    const put = (text: string) => writeAtomically(file, text, 0o600);
    await put(`${oldSecret}\n`);
    const turn = await startTurnNode({
      turnSecret: undefined,
      turnSecretFile: file,
      turnSecretRefreshMs: 100,
    });
    const secretFile = turn.node.turn?.secretFile;
    if (!secretFile) throw new Error('no secret file watch');
    expect(await allocateCode(turn.turnPort, oldSecret, 'erin')).toBe(0);
    expect(await allocateCode(turn.turnPort, newSecret, 'erin')).toBe(401);

    await put(`${newSecret}\n${oldSecret}\n`);
    await waitUntil(() => secretFile.reloads === 1, 'first reload');
    expect(await allocateCode(turn.turnPort, newSecret, 'erin')).toBe(0);
    const overlap = await uclient(turn.turnPort, ['-W', oldSecret, '-u', 'erin']);
    expect(overlap.code).toBe(0);
    expect(uclientTotals(overlap.output)).toEqual({ sent: MESSAGES, received: MESSAGES, lost: 0 });

    await put(`${newSecret}\n`);
    await waitUntil(() => secretFile.reloads === 2, 'second reload');
    expect(await allocateCode(turn.turnPort, oldSecret, 'erin')).toBe(401);
    const removed = await uclient(turn.turnPort, ['-W', oldSecret, '-u', 'erin']);
    expect(removed.code).not.toBe(0);
    expect(await allocateCode(turn.turnPort, newSecret, 'erin')).toBe(0);

    // A broken file keeps the last good secrets, and says so in the metrics.
    await put('short\n');
    await waitUntil(() => secretFile.failures > 0, 'failed reload');
    expect(await allocateCode(turn.turnPort, newSecret, 'erin')).toBe(0);
    const text = await metricsOf(turn);
    expect(sample(text, 'supernode_turn_secret_reloads_total')).toBe(2);
    expect(sample(text, 'supernode_turn_secret_reload_failures_total')).toBeGreaterThan(0);
  }, 60_000);
});

describe('configuration', () => {
  const build = (options: SupernodeOptions) => () =>
    buildSupernode({
      jwksFile: keys.jwksFile,
      logLevel: 'silent',
      turn: true,
      turnSecret: SECRET,
      ...options,
    });

  it.each<[string, SupernodeOptions, RegExp]>([
    [
      'no secret',
      { turnSecret: undefined },
      /--turn-secret \(SUPERNODE_TURN_SECRET\) or --turn-secret-file .* is required with --turn/,
    ],
    ['both secrets', { turnSecretFile: '/x' }, /at most one of --turn-secret .* and --turn-secret-file/],
    [
      'a short secret',
      { turnSecret: 'short' },
      /--turn-secret \(SUPERNODE_TURN_SECRET\) must be 16-512 non-space characters/,
    ],
    [
      'min port above max',
      { turnMinPort: 60_000, turnMaxPort: 50_000 },
      /--turn-min-port .* must not exceed --turn-max-port .*60000-50000/,
    ],
    [
      'a certificate without key',
      { turnTlsCertFile: CERT },
      /--turn-tls-cert-file .* and --turn-tls-key-file .* go together/,
    ],
    [
      'a wildcard without external address',
      { host: '0.0.0.0' },
      /--turn-external-address .* is required with --turn when TURN binds 0\.0\.0\.0/,
    ],
    [
      'a wildcard external address',
      { turnExternalAddress: '0.0.0.0' },
      /--turn-external-address .* must be the IP address/,
    ],
    [
      'a CIDR that does not parse',
      { turnAllowPeers: ['10.0.0.0/99'] },
      /--turn: invalid CIDR 10\.0\.0\.0\/99/,
    ],
    [
      'an unreadable certificate',
      { turnTlsCertFile: '/nonexistent/cert.pem', turnTlsKeyFile: KEY },
      /--turn-tls-cert-file \(SUPERNODE_TURN_TLS_CERT_FILE\): cannot read \/nonexistent\/cert\.pem \(ENOENT\)/,
    ],
    [
      'an unreadable secret file',
      { turnSecret: undefined, turnSecretFile: '/nonexistent/secrets' },
      /--turn-secret-file \(SUPERNODE_TURN_SECRET_FILE\): cannot read \/nonexistent\/secrets \(ENOENT\)/,
    ],
  ])('%s: one ConfigError naming the option', (_what, options, message) => {
    expect(build(options)).toThrow(ConfigError);
    expect(build(options)).toThrow(message);
  });

  it('a bad line of the secret file is named by number, its content never shown', async () => {
    const file = join(dir, 'bad-secrets');
    await writeFile(file, `${SECRET}\n\nhas a space in it but long enough\n`);
    expect(build({ turnSecret: undefined, turnSecretFile: file })).toThrow(
      /--turn-secret-file .*: line 3 of .* must be 16-512 non-space characters; it holds 33 characters including white space$/,
    );
  });

  it('a TURN port in use: listen() rejects with a ConfigError naming --stun-port', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', resolve));
    const port = holder.address().port;
    try {
      const node = buildSupernode({
        host: '127.0.0.1',
        port: 0,
        jwksFile: keys.jwksFile,
        logLevel: 'silent',
        turn: true,
        turnSecret: SECRET,
        stunPort: port,
      });
      const failure = node.listen();
      await expect(failure).rejects.toThrow(ConfigError);
      await expect(failure).rejects.toThrow(
        `TURN: UDP/TCP 127.0.0.1:${port} is in use (EADDRINUSE); choose another with --stun-port (SUPERNODE_STUN_PORT)`,
      );
    } finally {
      await new Promise<void>((resolve) => holder.close(resolve));
    }
  });

  it('--help lists every TURN option with its variable and default', async () => {
    const printed: string[] = [];
    const log = jest.spyOn(console, 'log').mockImplementation((text: string) => void printed.push(text));
    try {
      await runSupernode(['--help']);
    } finally {
      log.mockRestore();
    }
    const help = printed.join('\n');
    for (const [flag, env, value] of [
      ['--turn', 'SUPERNODE_TURN', 'false'],
      ['--turn-secret-file <value>', 'SUPERNODE_TURN_SECRET_FILE', 'none'],
      ['--turn-secret-refresh-ms <value>', 'SUPERNODE_TURN_SECRET_REFRESH_MS', '60000'],
      ['--turn-min-port <value>', 'SUPERNODE_TURN_MIN_PORT', '49152'],
      ['--turn-max-port <value>', 'SUPERNODE_TURN_MAX_PORT', '65535'],
      ['--turn-tls-port <value>', 'SUPERNODE_TURN_TLS_PORT', '5349'],
      ['--turn-max-allocations <value>', 'SUPERNODE_TURN_MAX_ALLOCATIONS', '10000'],
      ['--turn-max-allocations-per-user <value>', 'SUPERNODE_TURN_MAX_ALLOCATIONS_PER_USER', '16'],
      ['--turn-allow-peers <value>', 'SUPERNODE_TURN_ALLOW_PEERS', 'empty'],
    ]) {
      expect(help).toMatch(new RegExp(`  ${flag}   \\[${env}\\]\\n.*\\n.*Default: ${value}\\.`));
    }
  });
});
