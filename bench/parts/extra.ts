import { formatDirectorySim, runDirectorySimulation } from '../directory-sim';
import type { PartResult } from '../lib/load';
import { formatLoginStorm, runLoginStorm } from '../login-storm';
import { formatMeshLookup, runMeshLookup } from '../mesh-lookup';

const say = (part: string) => (line: string) => process.stderr.write(`[${part}] ${line}\n`);

/** Password-login goodput and shed latency at 10x and 50x measured capacity, against the naive baseline. */
export async function runLoginPart(quick: boolean): Promise<PartResult> {
  const result = await runLoginStorm({ quick, log: say('login') });
  for (const line of formatLoginStorm(result)) say('login')(line);
  const phase = (mode: string, multiple: number) =>
    result.phases.find((p) => p.mode === mode && p.multiple === multiple) as (typeof result.phases)[number];
  const rows = [10, 50].flatMap((multiple) => {
    const guarded = phase('admission', multiple);
    const naive = phase('naive', multiple);
    const target = multiple === 10 ? 0.95 : 0.9;
    const bare = guarded.bareShedP99Ms ?? Number.NaN;
    return [
      {
        what: `login goodput at ${multiple}x capacity (C ${result.capacityPerSecond.toFixed(2)}/s)`,
        measured: `${guarded.goodputPerSecond.toFixed(2)}/s`,
        baseline: `naive ${naive.goodputPerSecond.toFixed(2)}/s`,
        ratio: `${(guarded.goodputOfCapacity * 100).toFixed(0)}% of C`,
        target: `>=${target * 100}% of C`,
        verdict: guarded.goodputOfCapacity >= target ? 'meets' : 'misses',
      },
      {
        // The per-core view: the pool's own hash time during the storm says what it could have done.
        what: `  hash pool during the ${multiple}x storm`,
        measured: `mean hash ${guarded.meanHashMs.toFixed(0)} ms`,
        baseline: `${result.capacityMeanHashMs.toFixed(0)} ms while C was measured`,
        ratio: `${((guarded.goodputPerSecond * guarded.meanHashMs) / 10 / result.poolSize).toFixed(0)}% busy`,
        target: '',
        verdict: 'context',
      },
      {
        what: `  shed p99 (first 2 s) / admitted p99 at ${multiple}x`,
        measured: `${guarded.shedP99Ms.toFixed(1)} (${guarded.coldShedP99Ms.toFixed(0)}) / ${guarded.admittedP99Ms.toFixed(0)} ms`,
        baseline: `bare node:http 503 p99 ${bare.toFixed(1)} ms`,
        ratio: `loop p99 ${guarded.loopP99Ms.toFixed(1)} ms`,
        // Issue 13's floor (the design brief said 10 ms). Where this machine and generator cannot give
        // even a bare server's 503 within it, the verdict says so instead of "misses".
        target: 'shed p99 <=2 ms',
        verdict:
          guarded.shedP99Ms <= 2 ? 'meets' : guarded.shedP99Ms <= bare ? 'at the bare floor' : 'misses',
      },
    ];
  });
  return { rows, data: { ...result } };
}

/** Lookup latency at 10,000 lookups/s on a 3-node mesh. */
export async function runMeshPart(quick: boolean): Promise<PartResult> {
  const result = await runMeshLookup({ quick, log: say('mesh') });
  for (const line of formatMeshLookup(result)) say('mesh')(line);
  return {
    rows: [
      {
        what: `lookup latency, 3-node mesh, ${result.offeredPerSecond}/s offered`,
        measured: `p99 ${result.p99Ms.toFixed(2)} ms`,
        baseline: `bare ws echo p99 ${result.baseline.p99Ms.toFixed(2)} ms`,
        ratio: `${(result.successRate * 100).toFixed(2)}% found`,
        target: 'p99 <=5 ms, 100% found',
        verdict: result.p99Ms <= 5 && result.successRate === 1 ? 'meets' : 'misses',
      },
      {
        what: '  p50 / max; node CPU per lookup; machine busy',
        measured: `${result.p50Ms.toFixed(2)} / ${result.maxMs.toFixed(0)} ms`,
        baseline: `echo p50 ${result.baseline.p50Ms.toFixed(2)} ms`,
        ratio: `${result.nodeCpuMsPerLookup.toFixed(3)} ms; ${result.machineBusyPercent.toFixed(0)}%`,
        target: '',
        verdict: 'context',
      },
      {
        // Queueing the nodes did not cause: runnable, but another process (or thread) had the core.
        what: '  event loops waiting for a CPU (run queue)',
        measured: `nodes ${result.runQueueWaitMsPerSecond.nodes.map((w) => w.toFixed(0)).join(', ')} ms/s`,
        baseline: `generator ${result.runQueueWaitMsPerSecond.generator.toFixed(0)} ms/s`,
        ratio: '',
        target: '',
        verdict: 'context',
      },
    ],
    data: { ...result },
  };
}

/** The rendezvous directory simulated in-process at 100 nodes and 1,000,000 users. */
export async function runDirectoryPart(quick: boolean): Promise<PartResult> {
  const options = quick
    ? { nodes: 100, users: 100_000, replicas: 2 }
    : { nodes: 100, users: 1_000_000, replicas: 2 };
  const result = runDirectorySimulation(options);
  for (const line of formatDirectorySim(result, 'npm run bench -- --only directory').split('\n'))
    say('directory')(line);
  return {
    rows: [
      {
        what: `directory sim, ${options.nodes} nodes, ${options.users} users`,
        measured: `${result.register.mean.toFixed(2)} msgs/register`,
        baseline: `R = ${options.replicas}`,
        ratio: `join moves ${((result.join.recordsMoved / result.records) * 100).toFixed(2)}% of records`,
        target: 'O(R)',
        verdict: result.register.mean <= options.replicas ? 'meets' : 'misses',
      },
    ],
    data: { ...result },
  };
}
