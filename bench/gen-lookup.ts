/**
 * Lookup load generator (child process of bench/mesh-lookup.ts): `sockets` sessions on the minimal
 * client of lib/raw-ws.ts, round-robin over `urls`, sending `perSecond` lookups open loop (the
 * schedule never waits for answers). Latency runs from the write to the answer with the same id. In a
 * process of its own so the generator shares a core with nothing but the kernel, and cheap per
 * message (ids index typed arrays, answers are matched by scanning for the id, no promise per
 * request), so the servers are what is measured. An echo server's answer is the request itself.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type SigningKey, signAccessToken } from '../supernode/auth/signing';
import { SESSION_PATH } from '../supernode/protocol/messages';
import { exitWithParent, readChildConfig, report } from './lib/messages';
import { clientFrame, openGeneratorSocket, parseServerFrames } from './lib/raw-ws';

export interface LookupGenConfig {
  /** supernode: hello with a token, ready on welcome; echo: ready on open. */
  mode: 'supernode' | 'echo';
  urls: string[];
  sockets: number;
  perSecond: number;
  seconds: number;
  /** Sent at the same rate before the measured seconds and not counted: JIT, buffers and caches warm up. */
  warmupSeconds: number;
  /** Lookups name `user-<id % users>`. */
  users: number;
  keyFile?: string;
  localAddresses: string[];
}

export interface LookupGenDone {
  type: 'done';
  sent: number;
  answered: number;
  found: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The generator's own event-loop delay while sending: if high, the generator was the bottleneck. */
  loopP99Ms: number;
  loopMaxMs: number;
  /** p99 of the lookups sent in each second of the run (a lookup never answered counts as 0). */
  perSecondP99Ms: number[];
}

const CONNECT_TIMEOUT_MS = 15_000;
const STRAGGLER_WAIT_MS = 5000;

const config = readChildConfig<LookupGenConfig>();
exitWithParent();

function open(index: number, hello: string | undefined): Promise<Socket> {
  return openGeneratorSocket(
    config.urls[index % config.urls.length],
    config.mode === 'supernode' ? SESSION_PATH : '/',
    hello,
    config.localAddresses[index % config.localAddresses.length],
    CONNECT_TIMEOUT_MS,
  );
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))];
}

const ID_PREFIX = Buffer.from('"id":');

async function main(): Promise<void> {
  const key =
    config.mode === 'supernode'
      ? (JSON.parse(readFileSync(config.keyFile as string, 'utf8')) as SigningKey)
      : undefined;
  const sockets = await Promise.all(
    Array.from({ length: config.sockets }, async (_, i) =>
      open(
        i,
        key
          ? JSON.stringify({
              type: 'hello',
              token: await signAccessToken(key, {
                sub: `asker-${process.pid}-${i}`,
                aud: 'supernode',
                ttlSec: 3600,
              }),
            })
          : undefined,
      ),
    ),
  );
  const total = config.perSecond * config.seconds;
  const warmup = config.perSecond * config.warmupSeconds;
  const sentAt = new Float64Array(total + 1);
  const latencies = new Float64Array(total);
  /** Latency by the lookup's id, to see when in the run the slow ones were sent. */
  const latencyById = new Float64Array(total + 1);
  let answered = 0;
  let found = 0;
  let allAnswered: () => void = () => {};
  const done = new Promise<void>((resolve) => {
    allAnswered = resolve;
  });
  const onFrame = (payload: Buffer): void => {
    const at = payload.indexOf(ID_PREFIX);
    if (at < 0) return;
    let id = 0;
    for (let i = at + ID_PREFIX.length; i < payload.length; i++) {
      const digit = payload[i] - 48;
      if (digit < 0 || digit > 9) break;
      id = id * 10 + digit;
    }
    if (id > warmup) id -= warmup;
    else return;
    if (id < 1 || id > total || sentAt[id] === 0) return;
    latencies[answered++] = latencyById[id] = performance.now() - sentAt[id];
    sentAt[id] = 0;
    // A node answers `{"type":"lookup",...,"online":true}`; an echo returns the request, which is a lookup.
    if (payload.includes('"online":true') || config.mode === 'echo') found++;
    if (answered === total) allAnswered();
  };
  for (const socket of sockets) {
    let rest: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      rest = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      const parsed = parseServerFrames(rest);
      rest = parsed.rest.length ? Buffer.from(parsed.rest) : Buffer.alloc(0);
      for (const frame of parsed.frames) if (frame.opcode === 0x1) onFrame(frame.payload);
    });
  }
  report({ type: 'ready' });
  await new Promise<void>((resolve) =>
    process.on('message', (message: { type?: string }) => {
      if (message?.type === 'go') resolve();
    }),
  );
  const loop = monitorEventLoopDelay({ resolution: 1 });
  loop.enable();
  const started = performance.now();
  const intervalMs = 1000 / config.perSecond;
  let next = 1;
  // Every tick sends what is due; a tick is about 1 ms, so a lookup leaves at most ~1 ms late. Warm-up
  // lookups carry ids 1..warmup, measured ones warmup+1.., so answers to either are told apart.
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const due = Math.min(warmup + total, Math.floor((performance.now() - started) / intervalMs) + 1);
      for (; next <= due; next++) {
        if (next === warmup + 1) {
          loop.reset();
          report({ type: 'measuring' });
        }
        if (next > warmup) sentAt[next - warmup] = performance.now();
        sockets[next % sockets.length].write(
          clientFrame(Buffer.from(`{"type":"lookup","id":${next},"user":"user-${next % config.users}"}`)),
        );
      }
      if (next > warmup + total) resolve();
      else setTimeout(tick, 1);
    };
    tick();
  });
  const measuredFrom = started + config.warmupSeconds * 1000;
  loop.disable();
  await Promise.race([done, new Promise((r) => setTimeout(r, STRAGGLER_WAIT_MS))]);
  const seconds = (performance.now() - measuredFrom) / 1000;
  const sorted = latencies.subarray(0, answered).sort();
  const perSecondP99Ms = Array.from({ length: config.seconds }, (_, second) =>
    percentile(
      latencyById.slice(1 + second * config.perSecond, 1 + (second + 1) * config.perSecond).sort(),
      0.99,
    ),
  );
  const result: LookupGenDone = {
    type: 'done',
    sent: total,
    answered,
    found,
    seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? 0,
    loopP99Ms: loop.percentile(99) / 1e6,
    loopMaxMs: loop.max / 1e6,
    perSecondP99Ms,
  };
  for (const socket of sockets) socket.destroy();
  report(result);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
