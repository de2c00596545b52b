import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

/** Repository root: children run with it as their working directory. */
export const REPO_ROOT = resolve(__dirname, '..', '..');
export const ORPHAN_GUARD = join(REPO_ROOT, 'bench', 'lib', 'orphan-guard.cjs');
const OUTPUT_TAIL_CHARS = 8192;
const MAX_STORED_MESSAGES = 1000;

/** Every child still running; killed on exit, error and signals (see installCleanup). */
const live = new Set<ChildProcess>();

export function killAllChildren(): void {
  for (const child of live) {
    try {
      child.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
}

let cleanupInstalled = false;

/** Kills every child on exit, on SIGINT/SIGTERM/SIGHUP and on an uncaught error; runs `extra` too. */
export function installCleanup(extra: () => void): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  const cleanup = (): void => {
    killAllChildren();
    try {
      extra();
    } catch {
      // best effort on the way out
    }
  };
  process.on('exit', cleanup);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping all child processes\n`);
      cleanup();
      process.exit(130);
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: uncaught error: ${err.stack ?? String(err)}\n`);
    cleanup();
    process.exit(1);
  });
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A started child: its recent output, its IPC messages (if any) and a bounded way to stop it. */
export class ChildHandle {
  readonly pid: number;
  private tail = '';
  private readonly messages: unknown[] = [];
  private readonly waiters = new Set<() => void>();
  exitInfo: ExitInfo | undefined;
  readonly exited: Promise<ExitInfo>;
  lastProgress: unknown;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    readonly commandLine: string,
  ) {
    if (proc.pid === undefined) throw new Error(`${name}: could not start ${commandLine}`);
    this.pid = proc.pid;
    live.add(proc);
    const keep = (chunk: Buffer): void => {
      this.tail = (this.tail + chunk.toString('utf8')).slice(-OUTPUT_TAIL_CHARS);
    };
    proc.stdout?.on('data', keep);
    proc.stderr?.on('data', keep);
    proc.on('message', (message: unknown) => {
      if (isObject(message) && message.type === 'progress') this.lastProgress = message;
      else if (this.messages.length < MAX_STORED_MESSAGES) this.messages.push(message);
      this.wake();
    });
    this.exited = new Promise((resolveExit) => {
      proc.on('exit', (code, signal) => {
        live.delete(proc);
        this.exitInfo = { code, signal };
        this.wake();
        resolveExit(this.exitInfo);
      });
    });
    proc.on('error', (err) => {
      this.tail += `\nspawn error: ${err.message}`;
    });
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  output(): string {
    return this.tail.trim();
  }

  send(message: unknown): void {
    if (this.proc.connected) this.proc.send(message as object);
  }

  /**
   * Resolves with the first stored IPC message `match` accepts (and removes it); rejects when the child
   * exits first or after `timeoutMs`.
   */
  waitFor<T>(match: (message: unknown) => message is T, timeoutMs: number, what: string): Promise<T> {
    return new Promise<T>((resolveWait, reject) => {
      const check = (): boolean => {
        const index = this.messages.findIndex((m) => match(m));
        if (index >= 0) {
          const [found] = this.messages.splice(index, 1);
          done();
          resolveWait(found as T);
          return true;
        }
        if (this.exitInfo) {
          done();
          reject(
            new Error(
              `${this.name} exited (code ${this.exitInfo.code}, signal ${this.exitInfo.signal}) before ${what}\n${this.output()}`,
            ),
          );
          return true;
        }
        return false;
      };
      const waiter = (): void => {
        check();
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no ${what} within ${timeoutMs} ms\n${this.output()}`));
      }, timeoutMs);
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      if (!check()) this.waiters.add(waiter);
    });
  }

  /** SIGTERM (or an IPC `exit` message), then SIGKILL after `graceMs`. */
  async stop(graceMs = 3000, viaIpc = false): Promise<void> {
    if (this.exitInfo) return;
    if (viaIpc && this.proc.connected) this.send({ type: 'exit' });
    else this.proc.kill('SIGTERM');
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}

/** A type guard for IPC messages by their `type` field. */
export function ofType<T>(type: string): (message: unknown) => message is T {
  return (message: unknown): message is T => isObject(message) && message.type === type;
}

export interface SpawnOptions {
  name: string;
  /** Node arguments after the common preloads (script and its arguments). */
  args: string[];
  env?: Record<string, string>;
  ipc?: boolean;
}

/**
 * Starts `node --require orphan-guard <args>` from the repository root. TypeScript scripts get
 * `--require tsx/cjs` (the same loader the supernode CLI uses).
 */
/**
 * Profiling the processes of a part: `BENCH_CPU_PROF=<dir>` writes a V8 CPU profile of every child on
 * exit, `BENCH_CPU_PROF_ONLY=<name prefix>` limits it to some (e.g. `supernode`). NODE_OPTIONS cannot
 * carry --cpu-prof.
 */
function profileFlags(name: string): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  if (!dir) return [];
  const only = process.env.BENCH_CPU_PROF_ONLY;
  if (only && !name.startsWith(only)) return [];
  return ['--cpu-prof', `--cpu-prof-dir=${dir}`, `--cpu-prof-name=${name}-${Date.now()}.cpuprofile`];
}

export function spawnNode(options: SpawnOptions): ChildHandle {
  const tsLoader = options.args[0]?.endsWith('.ts') ? ['--require', 'tsx/cjs'] : [];
  const args = ['--require', ORPHAN_GUARD, ...profileFlags(options.name), ...tsLoader, ...options.args];
  const proc = spawn(process.execPath, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: options.ipc ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
  });
  const shown = ['node', ...args].map((a) => a.replace(`${REPO_ROOT}/`, '')).join(' ');
  return new ChildHandle(options.name, proc, shown);
}

/** Resident set size of a process in KiB, from /proc/<pid>/status (VmRSS). */
export function readRssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!match) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(match[1]);
}

let clockTicks: number | undefined;

function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** User and system CPU time a process has used so far, in seconds (/proc/<pid>/stat). */
export function readCpuSplit(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { user: Number(fields[11]) / ticksPerSecond(), system: Number(fields[12]) / ticksPerSecond() };
  } catch {
    return { user: Number.NaN, system: Number.NaN };
  }
}

/**
 * Seconds the process's main thread (its event loop) has spent runnable but waiting for a CPU so far
 * (/proc/<pid>/schedstat, second field): time the scheduler, not the process's own work, added to
 * whatever it was handling.
 */
export function readRunQueueSeconds(pid: number): number {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[1]) / 1e9;
  } catch {
    return Number.NaN;
  }
}

/** User + system CPU time a process has used so far, in seconds. */
export function readCpuSeconds(pid: number): number {
  const { user, system } = readCpuSplit(pid);
  return user + system;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Busy and total CPU time of the whole machine so far, in clock ticks (/proc/stat). */
export function readMachineTicks(): { busy: number; total: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
    const values = line.trim().split(/\s+/).slice(1).map(Number);
    const total = values.reduce((s, v) => s + v, 0);
    const idle = (values[3] ?? 0) + (values[4] ?? 0);
    return { busy: total - idle, total };
  } catch {
    return { busy: Number.NaN, total: Number.NaN };
  }
}

/** Share of all cores that were busy between two readings, in percent of one core x cores. */
export function machineBusyPercent(
  before: { busy: number; total: number },
  after: { busy: number; total: number },
): number {
  return ((after.busy - before.busy) / (after.total - before.total)) * 100;
}

/**
 * CPU time of this process plus its children that have exited (cutime/cstime of /proc/self/stat), in
 * seconds. Between two readings with no child running, that is all the CPU the benchmark used.
 */
export function readOwnTreeCpuSeconds(): number {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (
      (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / ticksPerSecond()
    );
  } catch {
    return Number.NaN;
  }
}

/**
 * User + system CPU seconds of a process and every live descendant (a node and its STUN responders), from
 * /proc. Threads are included in their process's figure (coturn's relay threads).
 */
export function readProcessTreeCpuSeconds(rootPid: number): number {
  const children = new Map<number, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      // exited meanwhile
    }
  }
  let total = 0;
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    const cpu = readCpuSeconds(pid);
    if (Number.isFinite(cpu)) total += cpu;
    pending.push(...(children.get(pid) ?? []));
  }
  return total;
}

/** Clock ticks per second, for /proc/stat figures. */
export function clockTicksPerSecond(): number {
  return ticksPerSecond();
}
