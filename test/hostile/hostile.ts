/**
 * Shared pieces of the hostile-client suite: the well-behaved control clients every case keeps
 * checking while it attacks, raw TCP clients, and the scale of the floods.
 */
import { connect, type Socket } from 'node:net';
import { type DeliveredMessage, SupernodeSession } from '../../supernode/client/session';

/** Floods stay small in `npm test`; `npm run fuzz` (FUZZ_RUNS set) makes them five times bigger. */
export const scale = process.env.FUZZ_RUNS ? 5 : 1;

/**
 * Two well-behaved users connected before an attack starts. `check()` is what a good client does:
 * a ping, a lookup of the other one, and a relay with an ack that must arrive. It throws if any of it
 * fails, and returns how long the round took.
 */
export interface ControlPair {
  a: SupernodeSession;
  b: SupernodeSession;
  check(): Promise<number>;
  close(): Promise<void>;
}

export async function controlPair(
  nodes: { a: { url: string }; b?: { url: string } },
  /** The access token of a user: minted by test keys (`keys.mint`), or issued by a real auth service. */
  tokenFor: (user: string) => Promise<string>,
  names: [string, string] = ['control-a', 'control-b'],
): Promise<ControlPair> {
  const a = await SupernodeSession.connect({ url: nodes.a.url, token: await tokenFor(names[0]) });
  const b = await SupernodeSession.connect({
    url: (nodes.b ?? nodes.a).url,
    token: await tokenFor(names[1]),
  });
  let round = 0;
  const check = async (): Promise<number> => {
    const started = Date.now();
    const marker = `round-${++round}`;
    const received = new Promise<void>((resolve) => {
      const onMessage = (m: DeliveredMessage): void => {
        if (m.from === names[0] && m.payload.toString() === marker) {
          b.off('message', onMessage);
          resolve();
        }
      };
      b.on('message', onMessage);
    });
    await a.ping();
    const found = await a.lookup(names[1]);
    if (!found.online) throw new Error(`control lookup of ${names[1]} says offline`);
    const ack = await a.sendWithAck(names[1], Buffer.from(marker));
    if (ack.delivered !== 1) throw new Error(`control relay delivered to ${ack.delivered} sessions`);
    await received;
    await b.ping();
    return Date.now() - started;
  };
  return {
    a,
    b,
    check,
    close: async () => {
      await Promise.all([a.close(), b.close()]);
    },
  };
}

const checking = new Set<() => Promise<unknown>>();

/**
 * Runs `control.check()` over and over while an attack goes on. `stop()` waits for the round in
 * progress and reports how many rounds passed and the slowest; the first failure rejects `stop()`.
 */
export function keepChecking(control: ControlPair): {
  stop(): Promise<{ rounds: number; worstMs: number }>;
} {
  let running = true;
  let rounds = 0;
  let worstMs = 0;
  const loop = (async () => {
    while (running) {
      worstMs = Math.max(worstMs, await control.check());
      rounds++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  const stop = async () => {
    running = false;
    checking.delete(stop);
    await loop;
    return { rounds, worstMs };
  };
  checking.add(stop);
  return { stop };
}

/** Stops the checks a failed test left running (call from afterEach), so no request outlives its test. */
export async function stopChecking(): Promise<void> {
  await Promise.all([...checking].map((stop) => stop().catch(() => {})));
}

/** What a raw TCP client saw: every byte the server sent, and when the server ended the connection. */
export interface RawTcp {
  socket: Socket;
  received(): Buffer;
  /** Resolves with the ms from connect to close. */
  closed: Promise<number>;
}

export function rawTcp(port: number, host = '127.0.0.1'): Promise<RawTcp> {
  const socket = connect(port, host);
  const chunks: Buffer[] = [];
  const started = Date.now();
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('error', () => {});
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  return new Promise((resolve, reject) => {
    socket.once('connect', () => resolve({ socket, received: () => Buffer.concat(chunks), closed }));
    socket.once('error', reject);
  });
}

/** A complete WebSocket upgrade request for `path`. */
export function upgradeRequest(path: string, host = '127.0.0.1'): string {
  return [
    `GET ${path} HTTP/1.1`,
    `Host: ${host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
    'Sec-WebSocket-Version: 13',
    '',
    '',
  ].join('\r\n');
}

/**
 * One client-to-server WebSocket frame, masked as RFC 6455 requires. `length` may claim more payload
 * than is given, to test refusals made on the header alone.
 */
export function wsFrame(
  opcode: number,
  payload: Buffer,
  options: { fin?: boolean; length?: number } = {},
): Buffer {
  const fin = options.fin ?? true;
  const length = options.length ?? payload.length;
  const header: number[] = [(fin ? 0x80 : 0) | opcode];
  if (length < 126) header.push(0x80 | length);
  else if (length < 65_536) header.push(0x80 | 126, length >> 8, length & 0xff);
  else {
    header.push(0x80 | 127);
    const big = Buffer.alloc(8);
    big.writeBigUInt64BE(BigInt(length));
    header.push(...big);
  }
  const mask = [0x12, 0x34, 0x56, 0x78];
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([...header, ...mask]), masked]);
}

/** The close code in the first close frame (opcode 8) the server sent, if any. */
export function closeCodeIn(bytes: Buffer): number | undefined {
  let offset = bytes.indexOf('\r\n\r\n');
  if (offset < 0) return undefined;
  offset += 4;
  while (offset + 2 <= bytes.length) {
    const opcode = bytes[offset] & 0x0f;
    let length = bytes[offset + 1] & 0x7f;
    let start = offset + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(start);
      start += 2;
    } else if (length === 127) {
      length = Number(bytes.readBigUInt64BE(start));
      start += 8;
    }
    if (opcode === 8) return length >= 2 ? bytes.readUInt16BE(start) : 1005;
    offset = start + length;
  }
  return undefined;
}

/** Text frames the server sent after the upgrade, parsed as JSON. */
export function textMessagesIn(bytes: Buffer): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  let offset = bytes.indexOf('\r\n\r\n');
  if (offset < 0) return out;
  offset += 4;
  while (offset + 2 <= bytes.length) {
    const opcode = bytes[offset] & 0x0f;
    let length = bytes[offset + 1] & 0x7f;
    let start = offset + 2;
    if (length === 126) {
      length = bytes.readUInt16BE(start);
      start += 2;
    }
    if (opcode === 1 && start + length <= bytes.length)
      out.push(JSON.parse(bytes.toString('utf8', start, start + length)) as Record<string, unknown>);
    offset = start + length;
  }
  return out;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
