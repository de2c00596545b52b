/** Parameters and IPC messages shared by the runner and its child processes. */

/** Environment variable carrying a child's JSON configuration. */
export const CONFIG_ENV = 'BENCH_CHILD_CONFIG';

export type SessionMode = 'supernode' | 'bare' | 'bare-echo';
export type GeneratorClient = 'raw' | 'ws';

export interface SessionGenConfig {
  /**
   * supernode: hello with a token, established on `welcome`; bare: established on open;
   * bare-echo: one text message, established when it comes back.
   */
  mode: SessionMode;
  /** raw: the minimal client in lib/raw-ws.ts; ws: the `ws` package. */
  client: GeneratorClient;
  /** Full WebSocket URL (path included). */
  url: string;
  count: number;
  concurrency: number;
  /** This generator's own source addresses (127.R.B.1-200); socket i binds address i % length. */
  localAddresses: string[];
  /** File with the private signing key (supernode mode). */
  keyFile?: string;
  userPrefix: string;
  /** Tries per session (1 = no retry). */
  attempts: number;
  /** Per attempt: connect + welcome. */
  timeoutMs: number;
  /** Mint, report `ready`, and connect only on `go` (set-up rate); otherwise connect at once. */
  waitForGo: boolean;
  /** Hard bound on the whole connect phase. */
  deadlineMs: number;
}

export interface GenReady {
  type: 'ready';
  minted: number;
  mintMs: number;
}

export interface GenProgress {
  type: 'progress';
  established: number;
  failed: number;
}

export interface GenDone {
  type: 'done';
  established: number;
  failed: number;
  retries: number;
  /** Wall clock (ms, fractional) of the first connect and of the last established session. */
  startedAt: number;
  lastEstablishedAt: number;
  failures: Record<string, number>;
  rssKiB: number;
}

export interface GenStats {
  type: 'stats';
  open: number;
  lost: number;
}

export type RelayMode = 'supernode' | 'bare';

export interface RelayGenConfig {
  mode: RelayMode;
  /** Base URL: ws://127.0.0.1:port */
  url: string;
  /** Where receivers connect, when not `url` (cross-node relay: senders on one node, receivers on another). */
  receiverUrl?: string;
  pairs: number;
  /** Unacknowledged (not yet received) messages each sender may have in flight. */
  window: number;
  payloadBytes: number;
  warmupMs: number;
  measureMs: number;
  keyFile?: string;
  userPrefix: string;
  localAddresses: string[];
}

export interface RelayReady {
  type: 'ready';
}

export interface RelayMark {
  type: 'measure-start' | 'measure-end';
}

export interface RelayDone {
  type: 'done';
  /** Messages received by all receivers inside the measured window. */
  received: number;
  elapsedMs: number;
  sent: number;
  receivedTotal: number;
  /** Errors the node sent back to senders, by code (recipient_busy and the like). */
  senderErrors: Record<string, number>;
  unexpectedFrames: number;
  /** Sent but not received once sending stopped and the wait for stragglers ended. */
  missing: number;
}

export interface BareServerConfig {
  mode: 'idle' | 'echo' | 'relay';
  port: number;
}

export interface BareListening {
  type: 'listening';
  port: number;
}

export interface BareStats {
  type: 'stats';
  clients: number;
}

export function readChildConfig<T>(): T {
  const text = process.env[CONFIG_ENV];
  if (!text) throw new Error(`${CONFIG_ENV} is not set; this script is started by bench/run.ts`);
  return JSON.parse(text) as T;
}

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across local processes. */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

/** Sends to the parent if the IPC channel is up; a child without a parent has nothing to report to. */
export function report(message: object): void {
  if (process.send && process.connected) process.send(message);
}

/** Children end when the runner goes away (IPC closed), so nothing outlives it. */
export function exitWithParent(): void {
  process.on('disconnect', () => process.exit(0));
}

/** bench/turn.ts prints its figures as JSON on a last line starting with this (read by parts/turn.ts). */
export const TURN_RESULT_PREFIX = 'turn-result: ';
