import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth';
import { AuthClient, type IceServer } from '../../supernode/client/auth-client';
import { buildSupernode, type Supernode } from '../../supernode/node';
import { turnPassword } from '../../supernode/turn/credentials';
import type { TurnServer } from '../../supernode/turn/server';
import { makeTestKeys, type TestKeys } from '../helpers/node';
import { relayPortRange } from '../turn/helpers';

/**
 * The server under test as a WebRTC app meets it: a supernode with `--turn` on 127.0.0.1, and an auth
 * service (embedded store) that hands out `iceServers` for the node on login, both sharing one TURN
 * secret. The tests use the `iceServers` of a real login, unchanged.
 */
export interface TurnFixture {
  /** What the auth service returned on login: the node's TURN URLs and credentials for the user. */
  iceServers: IceServer[];
  /** The same URLs and username with a password minted under another secret: the node must refuse it. */
  wrongIceServers: IceServer[];
  /** Host and port of the node's TURN listener (UDP and TCP). */
  address: { host: string; port: number };
  stats(): TurnServer['stats'];
  relayPorts(): TurnServer['relayPorts'];
  close(): Promise<void>;
}

const HOST = '127.0.0.1';
const USER = 'webrtc-proof';

export async function startTurnFixture(): Promise<TurnFixture> {
  const secret = randomBytes(24).toString('base64url');
  const keys: TestKeys = await makeTestKeys();
  const dataDir = await mkdtemp(join(tmpdir(), 'webrtc-auth-'));
  const cleanups: Array<() => Promise<void>> = [
    () => rm(dataDir, { recursive: true, force: true }),
    () => keys.cleanup(),
  ];
  const close = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  };
  try {
    const { minPort, maxPort } = relayPortRange(128);
    const node: Supernode = buildSupernode({
      host: HOST,
      port: 0,
      stunPort: 0,
      jwksFile: keys.jwksFile,
      logLevel: 'silent',
      nodeId: 'webrtc-node',
      turn: true,
      turnSecret: secret,
      // Both peers run on this machine, so each one's relayed address, which is the other's peer
      // address, is 127.0.0.1. The default policy refuses loopback peers (no relaying into the node's
      // own network); the tests open exactly that address and nothing else.
      turnAllowPeers: [HOST],
      // wrtc allocates per network interface and per transport (UDP and TCP): up to 8 per peer.
      turnMaxAllocationsPerUser: 64,
      turnMinPort: minPort,
      turnMaxPort: maxPort,
    });
    cleanups.push(() => node.close());
    const { turnPort } = await node.listen();
    const server = node.turn?.server;
    if (!server || turnPort === undefined)
      throw new Error('the node was built with turn: true but serves no TURN');

    const auth: AuthService = await buildAuthService({
      dataDir,
      port: 0,
      host: HOST,
      scryptN: 1024,
      logLevel: 'silent',
      turnUrls: [`turn:${HOST}:${turnPort}?transport=udp`, `turn:${HOST}:${turnPort}?transport=tcp`],
      turnSecret: secret,
    });
    cleanups.push(() => auth.close());
    const client = new AuthClient((await auth.listen()).url);
    const password = randomBytes(12).toString('base64url');
    await client.signup(USER, password);
    const { iceServers } = await client.login(USER, password);
    if (!iceServers?.length) throw new Error('the auth service returned no iceServers on login');

    // The username the login returned, signed with a secret the node does not hold.
    const wrongSecret = `not-${secret}`;
    return {
      iceServers,
      wrongIceServers: iceServers.map((entry) => ({
        ...entry,
        credential: entry.username && turnPassword(wrongSecret, entry.username),
      })),
      address: { host: HOST, port: turnPort },
      stats: () => server.stats,
      relayPorts: () => server.relayPorts,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Whether a UDP port on `host` is bound by some socket right now (binding it fails with EADDRINUSE). */
export async function udpPortIsBound(host: string, port: number): Promise<boolean> {
  const socket = createSocket('udp4');
  return new Promise((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.close();
      if (err.code === 'EADDRINUSE') resolve(true);
      else reject(err);
    });
    socket.bind(port, host, () => socket.close(() => resolve(false)));
  });
}
