/**
 * Extra STUN responder processes on the StunServer's own socket. Node 20's dgram has no SO_REUSEPORT,
 * but a bound socket's handle can be passed to a child process over IPC: every process holding it reads
 * the same kernel queue and each datagram goes to one of them. Binding is stateless, so any process may
 * answer any request, and one socket keeps one port, one firewall rule and one NLB target.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type dgram from 'node:dgram';
import type { StunOutcome, StunServerDropReason, StunServerLog } from './server';

const RESPONDER_ENV = 'SUPERNODE_STUN_RESPONDER';
/** How often a responder sends its counts to the parent: the lag of the parent's stats and metrics. */
const REPORT_MS = 500;
const STOP_TIMEOUT_MS = 2000;

export interface ResponderSettings {
  software?: string;
  maxQueuedSends?: number;
}

/** Outcome counts since the last report, keyed `outcome` or `outcome:reason`. */
type Counts = Record<string, number>;

type ToResponder = { type: 'serve'; settings: ResponderSettings } | { type: 'stop' };
type FromResponder = { type: 'serving' } | { type: 'counts'; counts: Counts };

export interface StunRespondersOptions {
  socket: dgram.Socket;
  count: number;
  settings: ResponderSettings;
  log?: StunServerLog;
  /** Outcomes the responders counted, in batches. */
  onCounts: (outcome: StunOutcome, reason: StunServerDropReason | undefined, count: number) => void;
}

/**
 * The parent side: `count` child processes answering on `socket`. A responder that dies is logged and
 * not replaced; the parent process keeps answering on the socket itself.
 */
export class StunResponders {
  private readonly children = new Set<ChildProcess>();

  private constructor(private readonly options: StunRespondersOptions) {}

  /** Resolves once every responder holds the socket; rejects (after stopping them) if one fails to start. */
  static async start(options: StunRespondersOptions): Promise<StunResponders> {
    const responders = new StunResponders(options);
    try {
      await Promise.all(Array.from({ length: options.count }, () => responders.startOne()));
    } catch (err) {
      await responders.stop();
      throw err;
    }
    return responders;
  }

  /** Responder processes running now. */
  get running(): number {
    return this.children.size;
  }

  get pids(): number[] {
    return [...this.children].map((child) => child.pid as number);
  }

  /** Asks each responder to stop reading and send its last counts; kills one that has not exited in time. */
  async stop(): Promise<void> {
    await Promise.all(
      [...this.children].map(async (child) => {
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        if (child.connected) child.send({ type: 'stop' } satisfies ToResponder);
        const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exited;
        clearTimeout(timer);
      }),
    );
  }

  private startOne(): Promise<void> {
    const child = spawnResponder();
    this.children.add(child);
    return new Promise<void>((resolve, reject) => {
      let serving = false;
      child.on('message', (message: FromResponder) => {
        if (message.type === 'serving') {
          serving = true;
          resolve();
        } else if (message.type === 'counts') this.addCounts(message.counts);
      });
      child.on('error', (err) => {
        if (!serving) reject(err);
        else this.options.log?.warn({ err }, 'stun responder error');
      });
      child.once('exit', (code, signal) => {
        this.children.delete(child);
        if (!serving) reject(new Error(`stun responder exited at start (code ${code}, signal ${signal})`));
        else if (code !== 0)
          this.options.log?.warn({ pid: child.pid, code, signal }, 'stun responder exited; not replaced');
      });
      child.send(
        { type: 'serve', settings: this.options.settings } satisfies ToResponder,
        this.options.socket,
      );
    });
  }

  private addCounts(counts: Counts): void {
    for (const [key, count] of Object.entries(counts)) {
      if (!Number.isSafeInteger(count) || count <= 0) continue;
      const [outcome, reason] = key.split(':') as [StunOutcome, StunServerDropReason | undefined];
      this.options.onCounts(outcome, reason, count);
    }
  }
}

/**
 * From a checkout the responder loads this file through tsx; in the one-file EC2 bundle it runs the
 * bundle itself, whose entry point (cli.ts) hands a process with the responder variable to serveStunResponder.
 */
function spawnResponder(): ChildProcess {
  const env = { ...process.env, [RESPONDER_ENV]: '1' };
  const stdio: ['ignore', 'inherit', 'inherit', 'ipc'] = ['ignore', 'inherit', 'inherit', 'ipc'];
  // Not the parent's --require preloads (the local tier's parent guard watches stdin, ignored here).
  if (__filename.endsWith('.ts')) {
    const loader = 'tsx/cjs'; // a name, not a literal: the bundle must not try to resolve it
    const code = `require(${JSON.stringify(require.resolve(loader))}); require(${JSON.stringify(__filename)}).serveStunResponder();`;
    return spawn(process.execPath, ['-e', code], { env, stdio });
  }
  return spawn(process.execPath, [__filename], { env, stdio });
}

/** True in a process started as a STUN responder. */
export function isStunResponderProcess(): boolean {
  return process.env[RESPONDER_ENV] === '1' && typeof process.send === 'function';
}

/** The responder side: answers on the socket it is handed until told to stop or the parent goes. */
export function serveStunResponder(): void {
  if (!isStunResponderProcess()) throw new Error('serveStunResponder runs only in a STUN responder process');
  // Loaded here so the parent's import of this module stays light.
  const { StunServer } = require('./server') as typeof import('./server');
  const send = (message: FromResponder): void => {
    if (process.connected) process.send?.(message);
  };
  let counts: Counts = {};
  const flush = (): void => {
    if (Object.keys(counts).length === 0) return;
    send({ type: 'counts', counts });
    counts = {};
  };
  let server: InstanceType<typeof StunServer> | undefined;
  const timer = setInterval(flush, REPORT_MS);
  const stop = (): void => {
    clearInterval(timer);
    void (server?.close() ?? Promise.resolve()).then(() => {
      flush();
      process.disconnect?.();
    });
  };
  process.on('disconnect', () => process.exit(0));
  // A signal to the whole process group (systemd's stop, Ctrl-C) also reaches the responders: they keep
  // answering while the node drains, and leave when it closes them or goes (the IPC channel closes).
  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => {});
  process.on('message', (message: ToResponder, handle: unknown) => {
    if (message?.type === 'stop') return stop();
    if (message?.type !== 'serve' || server || !handle) return;
    server = new StunServer({
      host: '',
      port: 0,
      ...message.settings,
      log: {
        warn: (fields, msg) =>
          process.stderr.write(`stun responder ${process.pid}: ${msg}: ${describe(fields)}\n`),
      },
      onOutcome: (outcome, reason) => {
        const key = reason ? `${outcome}:${reason}` : outcome;
        counts[key] = (counts[key] ?? 0) + 1;
      },
    });
    server.adopt(handle as dgram.Socket);
    send({ type: 'serving' });
  });
}

function describe(fields: unknown): string {
  const err = (fields as { err?: unknown } | undefined)?.err;
  return err instanceof Error ? err.message : JSON.stringify(fields);
}
