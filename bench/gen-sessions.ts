/**
 * Load generator (child process of bench/run.ts): opens `count` WebSocket sessions with at most
 * `concurrency` in flight, all from one source address, and holds them until told to exit.
 * Client: the minimal one in lib/raw-ws.ts (default; cheap enough that the server, not the generator,
 * is measured) or the `ws` package. A SupernodeSession per socket would cost memory for nothing.
 */
import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import WebSocket from 'ws';
import { type SigningKey, signAccessToken } from '../supernode/auth/signing';
import {
  exitWithParent,
  type GenDone,
  type GenProgress,
  type GenReady,
  type GenStats,
  readChildConfig,
  report,
  type SessionGenConfig,
  wallMs,
} from './lib/messages';
import { clientFrame, openRawSession, type RawTarget } from './lib/raw-ws';

const TOKEN_TTL_SEC = 3600;
const RETRY_DELAY_MS = 250;
const ECHO_TEXT = 'hello';

/** What the first server message says: ok, or a failure code. */
function judgeFirst(mode: SessionGenConfig['mode'], data: Buffer | undefined, isBinary: boolean): string {
  if (mode !== 'supernode') return 'ok';
  if (!data || isBinary) return 'unexpected_first_message';
  try {
    const message = JSON.parse(data.toString('utf8')) as { type?: string; code?: string };
    if (message.type === 'welcome') return 'ok';
    return message.type === 'error' ? `error_${String(message.code)}` : String(message.type);
  } catch {
    return 'unexpected_first_message';
  }
}

async function main(): Promise<void> {
  exitWithParent();
  process.on('message', (message: { type?: string }) => {
    if (message?.type === 'exit') process.exit(0);
  });
  const config = readChildConfig<SessionGenConfig>();
  const { count, mode } = config;
  const url = new URL(config.url);
  const target: RawTarget = {
    host: url.hostname,
    port: Number(url.port),
    path: `${url.pathname}${url.search}`,
  };
  const addresses = config.localAddresses;
  const sourceOf = (index: number): string => addresses[index % addresses.length];

  // Hello messages are prepared before `go`: token signing is the auth service's work, not the node's.
  const mintStarted = wallMs();
  const hellos: Array<string | undefined> = new Array(count).fill(undefined);
  if (mode === 'supernode') {
    const key = JSON.parse(readFileSync(config.keyFile as string, 'utf8')) as SigningKey;
    for (let i = 0; i < count; i++) {
      const token = await signAccessToken(key, {
        sub: `${config.userPrefix}-${i}`,
        aud: 'supernode',
        ttlSec: TOKEN_TTL_SEC,
      });
      hellos[i] = JSON.stringify({ type: 'hello', token });
    }
  } else if (mode === 'bare-echo') hellos.fill(ECHO_TEXT);
  report({
    type: 'ready',
    minted: mode === 'supernode' ? count : 0,
    mintMs: wallMs() - mintStarted,
  } satisfies GenReady);

  const held: Array<Socket | WebSocket> = [];
  const failures: Record<string, number> = {};
  const retryQueue: Array<[number, number]> = [];
  let next = 0;
  /** Sessions this stage goes up to (a `go` may ask for part of `count` first). */
  let limit = 0;
  let inFlight = 0;
  let waitingRetry = 0;
  let established = 0;
  let failed = 0;
  let retries = 0;
  let lost = 0;
  let lastEstablishedAt = 0;
  let stageReported = true;
  let finished = false;
  let startedAt = 0;
  let progress: NodeJS.Timeout | undefined;
  let deadline: NodeJS.Timeout | undefined;

  const reportDone = (): void => {
    report({
      type: 'done',
      established,
      failed,
      retries,
      startedAt,
      lastEstablishedAt: lastEstablishedAt || startedAt,
      failures,
      rssKiB: Math.round(process.memoryUsage().rss / 1024),
    } satisfies GenDone);
  };

  const finish = (): void => {
    if (finished) return;
    finished = true;
    clearInterval(progress);
    clearTimeout(deadline);
    if (!stageReported) {
      stageReported = true;
      reportDone();
    }
  };

  const checkDone = (): void => {
    if (stageReported || established + failed < limit || inFlight > 0 || waitingRetry > 0) return;
    if (limit >= count) finish();
    else {
      stageReported = true;
      reportDone();
    }
  };

  const pump = (): void => {
    while (!finished && inFlight < config.concurrency) {
      const retry = retryQueue.shift();
      if (retry) open(retry[0], retry[1]);
      else if (next < limit) open(next++, 1);
      else break;
    }
    checkDone();
  };

  /** Starts (or continues) connecting, up to `upTo` sessions in all; reports `done` when there. */
  const go = (upTo: number | undefined): void => {
    if (finished) return;
    if (startedAt === 0) {
      startedAt = wallMs();
      progress = setInterval(
        () => report({ type: 'progress', established, failed } satisfies GenProgress),
        1000,
      );
      deadline = setTimeout(() => {
        const missing = count - established - failed;
        if (missing > 0) {
          failures.deadline = (failures.deadline ?? 0) + missing;
          failed += missing;
        }
        next = count;
        retryQueue.length = 0;
        finish();
      }, config.deadlineMs);
    }
    limit = Math.max(limit, Math.min(count, upTo ?? count));
    stageReported = false;
    pump();
  };

  /** One attempt ended: keep the socket (ok) or count/retry the failure; then refill the window. */
  const settled = (
    index: number,
    attempt: number,
    code: string,
    socket: Socket | WebSocket | undefined,
  ): void => {
    inFlight--;
    if (finished) {
      if (socket instanceof WebSocket) socket.terminate();
      else socket?.destroy();
    } else if (code === 'ok' && socket) {
      established++;
      lastEstablishedAt = wallMs();
      hellos[index] = undefined;
      held.push(socket);
    } else if (attempt < config.attempts) {
      retries++;
      waitingRetry++;
      setTimeout(() => {
        waitingRetry--;
        retryQueue.push([index, attempt + 1]);
        pump();
      }, RETRY_DELAY_MS * attempt);
    } else {
      failed++;
      failures[code] = (failures[code] ?? 0) + 1;
    }
    pump();
  };

  const openRaw = (index: number, attempt: number): void => {
    const text = hellos[index];
    openRawSession(
      { ...target, localAddress: sourceOf(index) },
      text === undefined ? undefined : clientFrame(Buffer.from(text, 'utf8')),
      mode !== 'bare',
      config.timeoutMs,
      (socket, first) => {
        const code = judgeFirst(mode, first, false);
        if (code !== 'ok') socket.destroy();
        settled(index, attempt, code, code === 'ok' ? socket : undefined);
      },
      (code) => settled(index, attempt, code, undefined),
      () => {
        lost++;
      },
    );
  };

  const openWs = (index: number, attempt: number): void => {
    let done = false;
    const socket = new WebSocket(config.url, {
      localAddress: sourceOf(index),
      perMessageDeflate: false,
      handshakeTimeout: config.timeoutMs,
    });
    const end = (code: string): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.removeAllListeners();
      socket.on('error', () => {});
      if (code === 'ok') {
        socket.on('close', () => {
          lost++;
        });
        settled(index, attempt, code, socket);
      } else {
        socket.terminate();
        settled(index, attempt, code, undefined);
      }
    };
    const timer = setTimeout(() => end('timeout'), config.timeoutMs);
    socket.on('open', () => {
      const text = hellos[index];
      if (text === undefined) end('ok');
      else socket.send(text);
    });
    socket.on('message', (data, isBinary) => end(judgeFirst(mode, data as Buffer, isBinary)));
    socket.on('error', (err: NodeJS.ErrnoException) => end(err.code ?? 'socket_error'));
    socket.on('close', (closeCode) => end(`closed_${closeCode}`));
  };

  const open = (index: number, attempt: number): void => {
    inFlight++;
    if (config.client === 'ws') openWs(index, attempt);
    else openRaw(index, attempt);
  };

  process.on('message', (message: { type?: string; upTo?: number }) => {
    if (message?.type === 'stats')
      report({ type: 'stats', open: held.length - lost, lost } satisfies GenStats);
    else if (message?.type === 'go') go(message.upTo);
  });
  if (!config.waitForGo) go(count);
}

main().catch((err: unknown) => {
  process.stderr.write(`gen-sessions: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
