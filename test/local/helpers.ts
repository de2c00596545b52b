/**
 * Runs `supernode local` as a real process for the tests in test/local: free ports, its output, and
 * every process it started, so a test can check that none is left and clean up even after a failure.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePortRun } from '../../supernode/local/fleet';

const cli = join(__dirname, '../../supernode/bin/supernode.cjs');
const run = promisify(execFile);
export const BANNER = 'Supernode Tier is running locally';

export interface TierPorts {
  auth: number;
  base: number;
  meshBase: number;
  stun: number;
  /** The operator console (and the demo app). */
  console: number;
}

export async function tierPorts(nodes: number): Promise<TierPorts> {
  return {
    auth: await freePortRun(1),
    base: await freePortRun(nodes),
    meshBase: await freePortRun(nodes),
    stun: await freePortRun(1, 'udp'),
    console: await freePortRun(1),
  };
}

export interface Tier {
  child: ChildProcess;
  /** stdout and stderr of the tier and of every component (they inherit the tier's). */
  output(): string;
  exited: Promise<number | null>;
  /** Every process seen below the tier while it ran: its components. */
  seen: Set<number>;
}

export function startTier(ports: TierPorts, dataDir: string, env: Record<string, string> = {}): Tier {
  const child = spawn(process.execPath, [cli, 'local'], {
    env: {
      ...process.env,
      SUPERNODE_DATA_DIR: dataDir,
      AUTH_PORT: String(ports.auth),
      SUPERNODE_LOCAL_BASE_PORT: String(ports.base),
      SUPERNODE_LOCAL_MESH_BASE_PORT: String(ports.meshBase),
      SUPERNODE_STUN_PORT: String(ports.stun),
      CONSOLE_PORT: String(ports.console),
      // Cheap hashes keep the test fast; the tier passes the environment on to the auth service.
      AUTH_SCRYPT_N: '1024',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group, as a shell runs `npm start`: a test can signal the group as Ctrl-C does.
    detached: true,
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    output += chunk.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const seen = new Set<number>();
  // Components run in their own process groups (and would be re-parented if the tier died): note
  // them while the tier runs, so they can be checked and killed afterwards.
  const watch = async (): Promise<void> => {
    while (child.exitCode === null && child.signalCode === null) {
      for (const pid of await descendants(child.pid as number)) seen.add(pid);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  void watch();
  return { child, output: () => output, exited, seen };
}

async function descendants(root: number): Promise<number[]> {
  const { stdout } = await run('ps', ['-A', '-o', 'pid=,ppid=']).catch(() => ({ stdout: '' }));
  const children = new Map<number, number[]>();
  for (const line of stdout.split('\n')) {
    const [pid, ppid] = line.trim().split(/\s+/).map(Number);
    if (!pid) continue;
    children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  }
  const found: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    for (const pid of children.get(queue.shift() as number) ?? []) {
      found.push(pid);
      queue.push(pid);
    }
  }
  return found;
}

/** Alive and not a zombie (a re-parented process may wait for a reaper that never comes). */
export async function isRunning(pid: number): Promise<boolean> {
  try {
    const { stdout } = await run('ps', ['-o', 'stat=', '-p', String(pid)]);
    return stdout.trim() !== '' && !stdout.trim().startsWith('Z');
  } catch {
    return false; // ps exits 1 when there is no such process
  }
}

/** Of `pids`, those still running after up to `timeoutMs`. */
export async function stillRunning(pids: Iterable<number>, timeoutMs: number): Promise<number[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left: number[] = [];
    for (const pid of pids) if (await isRunning(pid)) left.push(pid);
    if (left.length === 0 || Date.now() > deadline) return left;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Resolves when the output contains `text`; fails if the tier exits first or `timeoutMs` passes. */
export function waitForOutput(tier: Tier, text: string, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(() => {
      if (tier.output().includes(text)) done();
      else if (tier.child.exitCode !== null || tier.child.signalCode !== null)
        done(
          new Error(`local tier exited (${tier.child.exitCode ?? tier.child.signalCode}): ${tier.output()}`),
        );
      else if (Date.now() > deadline)
        done(new Error(`no "${text}" within ${timeoutMs} ms: ${tier.output()}`));
    }, 50);
    const deadline = Date.now() + timeoutMs;
    const done = (err?: Error): void => {
      clearInterval(timer);
      if (err) reject(err);
      else resolve();
    };
  });
}

/** The tier's exit code, or a failure naming what it printed if it is still running after `timeoutMs`. */
export function exitWithin(tier: Tier, timeoutMs: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    tier.exited,
    new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`local tier still running after ${timeoutMs} ms: ${tier.output()}`)),
        timeoutMs,
      );
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Kills the tier and everything it started, whatever state a failed test left them in. */
export async function killTier(tier: Tier | undefined): Promise<void> {
  if (!tier) return;
  const kill = (pid: number): void => {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  };
  if (tier.child.exitCode === null && tier.child.signalCode === null) {
    for (const pid of await descendants(tier.child.pid as number)) tier.seen.add(pid);
    kill(-(tier.child.pid as number));
  }
  for (const pid of tier.seen) if (await isRunning(pid)) kill(pid);
}

/** The tiers and data directories of one test file, all ended and removed by `cleanup` (its afterAll). */
export class TierFixtures {
  private readonly tiers: Tier[] = [];
  private readonly dirs: string[] = [];

  async dataDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'local-tier-'));
    this.dirs.push(dir);
    return dir;
  }

  start(ports: TierPorts, dataDir: string, env: Record<string, string> = {}): Tier {
    const tier = startTier(ports, dataDir, env);
    this.tiers.push(tier);
    return tier;
  }

  async cleanup(): Promise<void> {
    for (const tier of this.tiers) await killTier(tier);
    for (const dir of this.dirs) await rm(dir, { recursive: true, force: true });
  }
}
