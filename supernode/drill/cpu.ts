import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/**
 * Where the machine's CPU went during a drill phase, by group of processes (clients, nodes, auth), from
 * /proc: the drills run every part on one machine, so a figure like "logins per second" depends on
 * what the other parts took. Linux only; elsewhere every figure reads 0.
 */
const TICKS_PER_SEC = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of /proc/<pid>/stat or /proc/<pid>/task/<tid>/stat, in seconds; 0 if unreadable. */
function statCpuSec(path: string): number {
  try {
    const text = readFileSync(path, 'utf8');
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

function threadCpuSec(pid: number): Map<number, number> {
  const threads = new Map<number, number>();
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`))
      threads.set(Number(tid), statCpuSec(`/proc/${pid}/task/${tid}/stat`));
  } catch {
    // gone
  }
  return threads;
}

/** Busy (not idle, not iowait) seconds of all CPUs together, from the first line of /proc/stat. */
function machineBusySec(): number {
  try {
    const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const ticks = values.map(Number);
    const total = ticks.slice(0, 8).reduce((a, b) => a + b, 0);
    return (total - ticks[3] - ticks[4]) / TICKS_PER_SEC;
  } catch {
    return 0;
  }
}

export interface CpuShares {
  seconds: number;
  /** Cores in use on average over the window, all processes. */
  machine: number;
  /** Cores per group (processes alive at the end; one started during the window counts from its start). */
  groups: Record<string, number>;
  /** The main thread of `threadsOf`'s process (the auth service's event loop); the rest is its other threads. */
  mainThread: number;
}

/** Samples now; `finish()` returns the shares since. */
export function measureCpu(groups: () => Record<string, number[]>, threadsOf: () => number | undefined) {
  const startedAt = performance.now();
  const machineStart = machineBusySec();
  const start = new Map<number, number>();
  for (const pids of Object.values(groups()))
    for (const pid of pids) start.set(pid, statCpuSec(`/proc/${pid}/stat`));
  const threadPid = threadsOf();
  const threadsStart = threadPid ? threadCpuSec(threadPid) : new Map<number, number>();
  return {
    finish(): CpuShares {
      const seconds = (performance.now() - startedAt) / 1000;
      const shares: Record<string, number> = {};
      for (const [group, pids] of Object.entries(groups())) {
        let used = 0;
        for (const pid of pids) used += statCpuSec(`/proc/${pid}/stat`) - (start.get(pid) ?? 0);
        shares[group] = used / seconds;
      }
      let main = 0;
      const endPid = threadsOf();
      // The main thread's id is the process id.
      if (endPid && endPid === threadPid)
        main = (threadCpuSec(endPid).get(endPid) ?? 0) - (threadsStart.get(endPid) ?? 0);
      return {
        seconds,
        machine: (machineBusySec() - machineStart) / seconds,
        groups: shares,
        mainThread: main / seconds,
      };
    },
  };
}
