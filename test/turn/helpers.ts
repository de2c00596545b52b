import { randomInt } from 'node:crypto';
import dgram from 'node:dgram';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TurnClient, type TurnClientOptions, type TurnTransport } from '../../supernode/turn/client';
import { turnCredentials } from '../../supernode/turn/credentials';
import {
  type TurnDropReason,
  type TurnOutcome,
  TurnServer,
  type TurnServerAddress,
  type TurnServerOptions,
} from '../../supernode/turn/server';

export const SECRET = 'test-secret';
export const REALM = 'turn.test';

export const TLS_CERT = readFileSync(join(__dirname, 'fixtures', 'test-cert.pem'));
export const TLS_KEY = readFileSync(join(__dirname, 'fixtures', 'test-key.pem'));

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A relay port range below the ephemeral range (32768+ here), so no other test's bind(0) lands in it;
 * random, so two servers of parallel test files rarely overlap (and the pool steps over a port in use).
 */
export function relayPortRange(size: number): { minPort: number; maxPort: number } {
  const minPort = 20_000 + randomInt(12_000 - size);
  return { minPort, maxPort: minPort + size - 1 };
}

export interface Harness {
  server: TurnServer;
  address: TurnServerAddress;
  outcomes: Array<[TurnOutcome, number | TurnDropReason | undefined]>;
  /** A settable clock: `clock.now += ms` moves the server's time. */
  clock: { now: number };
  client(
    options?: Partial<TurnClientOptions> & { user?: string; secret?: string; ttlSec?: number },
  ): Promise<TurnClient>;
  close(): Promise<void>;
}

/** A TurnServer on 127.0.0.1 with a settable clock, and clients with fresh credentials. */
export async function startTurn(options: Partial<TurnServerOptions> = {}): Promise<Harness> {
  const clock = { now: Date.now() };
  const outcomes: Harness['outcomes'] = [];
  const server = new TurnServer({
    host: '127.0.0.1',
    port: 0,
    realm: REALM,
    secrets: [SECRET],
    sweepIntervalMs: 20,
    ...relayPortRange(64),
    now: () => clock.now,
    onOutcome: (outcome, detail) => outcomes.push([outcome, detail]),
    ...options,
  });
  const address = await server.start();
  const clients: TurnClient[] = [];
  return {
    server,
    address,
    outcomes,
    clock,
    async client(overrides = {}) {
      const credentials = turnCredentials(
        overrides.secret ?? SECRET,
        overrides.user ?? 'alice',
        overrides.ttlSec ?? 600,
        clock.now,
      );
      const transport: TurnTransport = overrides.transport ?? 'udp';
      const client = await TurnClient.connect({
        host: '127.0.0.1',
        port: transport === 'tls' ? (address.tlsPort as number) : address.port,
        transport,
        username: credentials.username,
        password: credentials.credential,
        timeoutMs: 2000,
        tls: transport === 'tls' ? { ca: TLS_CERT, servername: 'localhost' } : undefined,
        ...overrides,
      });
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((client) => client.close()));
      await server.close();
    },
  };
}

/** A UDP peer on 127.0.0.1 that records what it receives and can echo it back. */
export class Peer {
  readonly received: Array<{ data: Buffer; address: string; port: number }> = [];
  private waiters: Array<() => void> = [];

  private constructor(
    readonly socket: dgram.Socket,
    echo: boolean,
  ) {
    socket.on('message', (data, remote) => {
      this.received.push({ data, address: remote.address, port: remote.port });
      if (echo) socket.send(data, remote.port, remote.address);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(options: { echo?: boolean; port?: number; address?: string } = {}): Promise<Peer> {
    const socket = dgram.createSocket('udp4');
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(options.port ?? 0, options.address ?? '127.0.0.1', () => {
        socket.off('error', reject);
        resolve();
      });
    });
    return new Peer(socket, options.echo ?? false);
  }

  get port(): number {
    return this.socket.address().port;
  }

  get address(): string {
    return this.socket.address().address;
  }

  send(data: Buffer, port: number, address = '127.0.0.1'): void {
    this.socket.send(data, port, address);
  }

  /** Waits until `count` datagrams arrived in total, or `timeoutMs` passed. */
  async waitFor(count: number, timeoutMs = 2000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length < count && Date.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

/** Collects what a client receives: relayed data, and any other frame. */
export function collect(client: TurnClient): {
  data: Array<{ data: Buffer; address: string; port: number; channel: number | undefined }>;
  other: Buffer[];
  waitFor(count: number, timeoutMs?: number): Promise<void>;
} {
  const data: Array<{ data: Buffer; address: string; port: number; channel: number | undefined }> = [];
  const other: Buffer[] = [];
  client.onData = (bytes, peer, channel) => data.push({ data: bytes, ...peer, channel });
  client.onOther = (frame) => other.push(frame);
  return {
    data,
    other,
    async waitFor(count, timeoutMs = 2000) {
      const deadline = Date.now() + timeoutMs;
      while (data.length < count && Date.now() < deadline) await sleep(10);
    },
  };
}

/**
 * A server that may relay to loopback, a UDP peer (echoing by default) and a client with an allocation
 * whose received data is collected. The harness closes the client; the caller closes the peer.
 */
export async function relayThroughLoopback(
  options: Partial<TurnServerOptions> = {},
  peerOptions: { echo?: boolean } = { echo: true },
): Promise<{
  turn: Harness;
  peer: Peer;
  client: TurnClient;
  got: ReturnType<typeof collect>;
  relayed: { address: string; port: number };
}> {
  const turn = await startTurn({ allowPeers: ['127.0.0.1'], ...options });
  const peer = await Peer.open(peerOptions);
  const client = await turn.client();
  const got = collect(client);
  const { relayed } = await client.allocate();
  return { turn, peer, client, got, relayed };
}

/** Every message the client writes from now on, as written (to replay them). */
export function recordWrites(client: TurnClient): Buffer[] {
  const sent: Buffer[] = [];
  const inner = client as unknown as { write(bytes: Buffer): void };
  const write = inner.write.bind(client);
  inner.write = (bytes: Buffer) => {
    sent.push(bytes);
    write(bytes);
  };
  return sent;
}

/** Waits for a condition that depends on the server's sweep or sockets, up to `timeoutMs`. */
export async function eventually(check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await sleep(10);
  expect(check()).toBe(true);
}
