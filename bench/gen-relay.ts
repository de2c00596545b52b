/**
 * Relay load generator (child process of bench/run.ts): `pairs` sender/receiver pairs on the minimal
 * client of lib/raw-ws.ts. Each sender keeps at most `window` messages in flight (sent, not yet
 * received), writing half a window at a time (one prebuilt buffer of frames) whenever half of them
 * have arrived. The bare relay and the supernode get the very same bytes: relay `send` frames with a
 * 64-byte payload. The generator's own cost per message is kept small so that the server is what is
 * measured.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { type SigningKey, signAccessToken } from '../supernode/auth/signing';
import { encodeRelayFrame, FRAME_SEND } from '../supernode/protocol/frames';
import { SESSION_PATH } from '../supernode/protocol/messages';
import {
  exitWithParent,
  type RelayDone,
  type RelayGenConfig,
  type RelayMark,
  type RelayReady,
  readChildConfig,
  report,
  wallMs,
} from './lib/messages';
import { clientFrame, openGeneratorSocket, parseServerFrames } from './lib/raw-ws';

const CONNECT_TIMEOUT_MS = 15_000;
const STRAGGLER_WAIT_MS = 5000;
const OPCODE_BINARY = 0x2;

interface Pair {
  sender: Socket;
  receiver: Socket;
  batch: Buffer;
  sent: number;
  received: number;
  /** Messages the node answered with an error instead of relaying them. */
  dropped: number;
}

const config = readChildConfig<RelayGenConfig>();

let connections = 0;

function connect(path: string, hello: string | undefined, base = config.url): Promise<Socket> {
  const localAddress = config.localAddresses[connections++ % config.localAddresses.length];
  return openGeneratorSocket(base, path, hello, localAddress, CONNECT_TIMEOUT_MS);
}

/**
 * Counts binary frames in a stream of server frames without copying payloads: a frame counts as
 * soon as its header has arrived. Other opcodes are counted apart.
 */
function frameCounter(onBinary: () => void, onOther: () => void): (chunk: Buffer) => void {
  let carry: Buffer | undefined;
  let skip = 0;
  return (chunk: Buffer): void => {
    let data = chunk;
    let offset = 0;
    if (skip > 0) {
      offset = Math.min(skip, data.length);
      skip -= offset;
    }
    if (carry) {
      data = Buffer.concat([carry, data.subarray(offset)]);
      offset = 0;
      carry = undefined;
    }
    while (offset < data.length) {
      const available = data.length - offset;
      if (available < 2) {
        carry = Buffer.from(data.subarray(offset));
        return;
      }
      let length = data[offset + 1] & 0x7f;
      let header = 2;
      if (length === 126) {
        if (available < 4) {
          carry = Buffer.from(data.subarray(offset));
          return;
        }
        length = data.readUInt16BE(offset + 2);
        header = 4;
      } else if (length === 127) {
        if (available < 10) {
          carry = Buffer.from(data.subarray(offset));
          return;
        }
        length = Number(data.readBigUInt64BE(offset + 2));
        header = 10;
      }
      if ((data[offset] & 0x0f) === OPCODE_BINARY) onBinary();
      else onOther();
      if (available - header >= length) offset += header + length;
      else {
        skip = length - (available - header);
        return;
      }
    }
  };
}

async function main(): Promise<void> {
  exitWithParent();
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'exit') process.exit(0);
  });
  const key =
    config.mode === 'supernode'
      ? (JSON.parse(readFileSync(config.keyFile as string, 'utf8')) as SigningKey)
      : undefined;
  const hello = async (user: string): Promise<string | undefined> =>
    key
      ? JSON.stringify({
          type: 'hello',
          token: await signAccessToken(key, { sub: user, aud: 'supernode', ttlSec: 3600 }),
        })
      : undefined;
  const payload = Buffer.alloc(config.payloadBytes, 0x61);
  const half = Math.max(1, Math.floor(config.window / 2));
  const pairs: Pair[] = [];
  for (let i = 0; i < config.pairs; i++) {
    const receiverUser = `${config.userPrefix}-r${i}`;
    const senderUser = `${config.userPrefix}-s${i}`;
    const path = (role: string): string =>
      config.mode === 'supernode' ? SESSION_PATH : `/?pair=${i}&role=${role}`;
    const receiver = await connect(path('b'), await hello(receiverUser), config.receiverUrl);
    const sender = await connect(path('a'), await hello(senderUser));
    const frame = clientFrame(encodeRelayFrame(FRAME_SEND, 0, 0, receiverUser, payload), OPCODE_BINARY);
    const batch = Buffer.concat(Array.from({ length: half }, () => frame));
    pairs.push({ sender, receiver, batch, sent: 0, received: 0, dropped: 0 });
  }

  let sending = false;
  let unexpectedFrames = 0;
  const senderErrors: Record<string, number> = {};
  const topUp = (pair: Pair): void => {
    while (sending && pair.sent - pair.received - pair.dropped + half <= config.window) {
      pair.sender.write(pair.batch);
      pair.sent += half;
    }
  };
  for (const pair of pairs) {
    pair.receiver.on(
      'data',
      frameCounter(
        () => {
          pair.received++;
          if (pair.sent - pair.received - pair.dropped <= half) topUp(pair);
        },
        () => {
          unexpectedFrames++;
        },
      ),
    );
    let pending: Buffer = Buffer.alloc(0);
    pair.sender.on('data', (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      const { frames, rest } = parseServerFrames(pending);
      pending = Buffer.from(rest);
      for (const frame of frames) {
        if (frame.opcode !== 0x1) {
          unexpectedFrames++;
          continue;
        }
        let code = 'unknown';
        try {
          const message = JSON.parse(frame.payload.toString('utf8')) as { type?: string; code?: string };
          code = message.type === 'error' ? String(message.code) : String(message.type);
        } catch {
          // counted as unknown
        }
        senderErrors[code] = (senderErrors[code] ?? 0) + 1;
        pair.dropped++;
      }
      if (pair.sent - pair.received - pair.dropped <= half) topUp(pair);
    });
    for (const socket of [pair.sender, pair.receiver]) {
      socket.on('error', () => {});
      socket.on('close', () => {
        if (sending) process.stderr.write('gen-relay: a socket closed during the run\n');
      });
    }
  }

  report({ type: 'ready' } satisfies RelayReady);
  await new Promise<void>((resolve) => {
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'go') resolve();
    });
  });

  const totalReceived = (): number => pairs.reduce((sum, p) => sum + p.received, 0);
  const totalSent = (): number => pairs.reduce((sum, p) => sum + p.sent, 0);
  const totalDropped = (): number => pairs.reduce((sum, p) => sum + p.dropped, 0);
  sending = true;
  for (const pair of pairs) topUp(pair);

  await new Promise((r) => setTimeout(r, config.warmupMs));
  const startCount = totalReceived();
  const startAt = wallMs();
  report({ type: 'measure-start' } satisfies RelayMark);
  await new Promise((r) => setTimeout(r, config.measureMs));
  const endCount = totalReceived();
  const endAt = wallMs();
  sending = false;
  report({ type: 'measure-end' } satisfies RelayMark);

  const waitUntil = wallMs() + STRAGGLER_WAIT_MS;
  while (totalReceived() + totalDropped() < totalSent() && wallMs() < waitUntil) {
    await new Promise((r) => setTimeout(r, 20));
  }
  report({
    type: 'done',
    received: endCount - startCount,
    elapsedMs: endAt - startAt,
    sent: totalSent(),
    receivedTotal: totalReceived(),
    senderErrors,
    unexpectedFrames,
    missing: totalSent() - totalReceived() - totalDropped(),
  } satisfies RelayDone);
}

main().catch((err: unknown) => {
  process.stderr.write(`gen-relay: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
