/**
 * Lookup latency on a 3-node mesh at a fixed offered rate (design target: p99 at most 5 ms at
 * 10,000 lookups/s).
 *
 *   npx tsx bench/mesh-lookup.ts [--quick]
 *
 * Three node processes (real mesh links on loopback), `users` sessions registered across them, then
 * `askers` sessions (spread over the nodes) send lookups of random registered users, open loop: the
 * schedule does not wait for answers. Latency is measured at the client, from send to answer: client
 * -> node -> owner (for the third of users this node does not own) -> node -> client. The askers
 * run in a generator process of their own (gen-lookup.ts), the registered users' idle sessions in
 * this one; everything shares the machine's 2 cores with the nodes.
 */

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, publicJwks, signAccessToken } from '../supernode/auth/signing';
import { SupernodeSession } from '../supernode/client/session';
import { type FleetNode, killAll, metric, planFleet, startFleetNode } from '../supernode/local/fleet';
import { sampleOf } from '../supernode/shared/prometheus';
import type { LookupGenConfig, LookupGenDone } from './gen-lookup';
import {
  machineBusyPercent,
  ofType,
  readCpuSeconds,
  readCpuSplit,
  readMachineTicks,
  readRunQueueSeconds,
  spawnNode,
} from './lib/children';
import { nextSourceBlock, startBareServer } from './lib/env';
import { CONFIG_ENV } from './lib/messages';

export interface MeshLookupResult {
  nodes: number;
  users: number;
  askers: number;
  offeredPerSecond: number;
  seconds: number;
  answered: number;
  achievedPerSecond: number;
  successRate: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  ownerFallbacks: number;
  /** The same generator against a bare ws echo server at the same rate. */
  baseline: { answered: number; p50Ms: number; p99Ms: number; maxMs: number };
  /** CPU seconds each node used during the run, and per lookup answered (all nodes together). */
  nodeCpuSeconds: number[];
  nodeCpuMsPerLookup: number;
  /** Share of the nodes' CPU spent in the kernel (system time): sockets, on loopback both ends' stacks. */
  nodeSystemShare: number;
  generatorCpuSeconds: number;
  /** Milliseconds per second of the run each node's event loop (then the generator's) waited for a CPU. */
  runQueueWaitMsPerSecond: { nodes: number[]; generator: number };
  /** Share of the machine's cores busy during the run (everything, not only this benchmark). */
  machineBusyPercent: number;
  /** Event-loop delay during the run: where lookups waited (queueing) rather than worked. */
  eventLoop: { generator: { p99Ms: number; maxMs: number }; nodes: Array<{ p99Ms: number; maxMs: number }> };
}

/** One scrape (each resets the node's loop-lag histogram): p99 and max of the delay since the last. */
async function loopLag(node: FleetNode): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const read = (name: string) => sampleOf(text, name) * 1000;
  return { p99Ms: read('nodejs_eventloop_lag_p99_seconds'), maxMs: read('nodejs_eventloop_lag_max_seconds') };
}

/** Runs the lookup generator in its own process against `urls` until it reports. */
async function generate(
  mode: LookupGenConfig['mode'],
  urls: string[],
  options: {
    sockets: number;
    perSecond: number;
    seconds: number;
    warmupSeconds: number;
    users: number;
    keyFile?: string;
  },
  /** Runs when the warm-up is over and the measured seconds begin. */
  onMeasuring: () => Promise<void> = async () => {},
): Promise<LookupGenDone & { generatorCpuSeconds: number; generatorRunQueueSeconds: number }> {
  const child = spawnNode({
    name: `lookup-gen-${mode}`,
    args: ['bench/gen-lookup.ts'],
    env: {
      [CONFIG_ENV]: JSON.stringify({
        mode,
        urls,
        localAddresses: nextSourceBlock(),
        ...options,
      } satisfies LookupGenConfig),
    },
    ipc: true,
  });
  try {
    await child.waitFor(ofType('ready'), 60_000, 'ready');
    child.send({ type: 'go' });
    await child.waitFor(ofType('measuring'), (options.warmupSeconds + 30) * 1000, 'measuring');
    const cpuBefore = readCpuSeconds(child.pid);
    const waitBefore = readRunQueueSeconds(child.pid);
    await onMeasuring();
    const done = await child.waitFor(
      ofType<LookupGenDone>('done'),
      (options.warmupSeconds + options.seconds + 30) * 1000,
      'done',
    );
    return {
      ...done,
      generatorCpuSeconds: readCpuSeconds(child.pid) - cpuBefore,
      generatorRunQueueSeconds: readRunQueueSeconds(child.pid) - waitBefore,
    };
  } finally {
    await child.stop(2000);
  }
}

export async function runMeshLookup(options: {
  quick: boolean;
  log: (line: string) => void;
}): Promise<MeshLookupResult> {
  const { quick, log } = options;
  const users = quick ? 600 : 3000;
  const askers = quick ? 12 : 30;
  const perSecond = quick ? 3000 : 10_000;
  const seconds = quick ? 3 : 10;
  const warmupSeconds = quick ? 1 : 2;
  const dir = await mkdtemp(join(tmpdir(), 'mesh-lookup-'));
  let fleet: FleetNode[] = [];
  const sessions: SupernodeSession[] = [];
  try {
    const key = await generateSigningKey();
    const jwksFile = join(dir, 'jwks.json');
    const keyFile = join(dir, 'signing-key.json');
    await writeFile(jwksFile, JSON.stringify(publicJwks([key])));
    await writeFile(keyFile, JSON.stringify(key), { mode: 0o600 });
    fleet = await planFleet(3, 'bench-');
    const limits = {
      SUPERNODE_LOOKUPS_PER_SECOND: '100000',
      SUPERNODE_LOOKUP_BURST: '100000',
      SUPERNODE_MESSAGES_PER_SECOND: '1000000',
      SUPERNODE_MESSAGE_BURST: '1000000',
      SUPERNODE_MESH_HEARTBEAT_MS: '1000',
      SUPERNODE_MESH_DEAD_AFTER: '3',
    };
    await Promise.all(
      fleet.map((n) =>
        startFleetNode(n, {
          jwksFile,
          secret: 'bench-mesh-secret-0123456789abcdef',
          peers: fleet,
          extraEnv: limits,
          // BENCH_CPU_PROF=<dir>: a V8 CPU profile of each node, written when it exits.
          execArgv: process.env.BENCH_CPU_PROF
            ? [
                '--cpu-prof',
                `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`,
                `--cpu-prof-name=${n.id}.cpuprofile`,
              ]
            : [],
        }),
      ),
    );
    for (let i = 0; i < 100 && (await metric(fleet[0], 'supernode_mesh_members')) < 3; i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    log(`mesh lookup: registering ${users} users over 3 nodes`);
    const connect = async (i: number, user: string) =>
      SupernodeSession.connect({
        url: fleet[i % 3].url,
        token: await signAccessToken(key, { sub: user, aud: 'supernode', ttlSec: 3600 }),
      });
    for (let i = 0; i < users; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, users - i) }, (_, j) => connect(i + j, `user-${i + j}`)),
      );
      sessions.push(...batch);
    }
    await new Promise((r) => setTimeout(r, 500)); // registrations reach their owners
    // A node's first scrapes run cold code (22 ms, then 10 ms, then 3-4 ms here): a long-running node
    // has been scraped many times, and the scrape at the start of the measured seconds must not be one.
    for (let i = 0; i < 3; i++) await Promise.all(fleet.map((n) => loopLag(n)));
    const fallbacksBefore = (
      await Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_lookup_fallbacks_total')))
    ).reduce((a, b) => a + b, 0);

    log(`mesh lookup: ${perSecond} lookups/s for ${seconds} s from ${askers} sessions (own process)`);
    const load = { sockets: askers, perSecond, seconds, warmupSeconds, users };
    let nodeCpuBefore: number[] = [];
    let nodeSysBefore: number[] = [];
    let nodeWaitBefore: number[] = [];
    let machineBefore = readMachineTicks();
    const run = await generate(
      'supernode',
      fleet.map((n) => n.url),
      { ...load, keyFile },
      async () => {
        nodeCpuBefore = fleet.map((n) => readCpuSeconds(n.child?.pid ?? 0));
        nodeSysBefore = fleet.map((n) => readCpuSplit(n.child?.pid ?? 0).system);
        nodeWaitBefore = fleet.map((n) => readRunQueueSeconds(n.child?.pid ?? 0));
        machineBefore = readMachineTicks();
        // prom-client's loop-lag histogram restarts at each scrape: scraped now, the next covers the run.
        await Promise.all(fleet.map((n) => loopLag(n)));
      },
    );
    const machineBusy = machineBusyPercent(machineBefore, readMachineTicks());
    const nodeCpu = fleet.map((n, i) => readCpuSeconds(n.child?.pid ?? 0) - nodeCpuBefore[i]);
    const nodeSys = fleet.map((n, i) => readCpuSplit(n.child?.pid ?? 0).system - nodeSysBefore[i]);
    const nodeWait = fleet.map((n, i) => readRunQueueSeconds(n.child?.pid ?? 0) - nodeWaitBefore[i]);
    const nodeLoops = await Promise.all(fleet.map((n) => loopLag(n)));
    log(
      `mesh lookup: p99 by second of the run: ${run.perSecondP99Ms.map((v) => v.toFixed(1)).join(', ')} ms`,
    );

    // The baseline: the same generator process, rate and message against a bare ws echo server (one
    // process, one hop), so what the machine and the generator cost themselves is measured in the same run.
    log(`mesh lookup: the same ${perSecond}/s against a bare ws echo server`);
    const bare = await startBareServer('mesh-bare-echo', 'echo');
    let baseline: LookupGenDone;
    try {
      baseline = await generate('echo', [bare.url], load);
    } finally {
      await bare.child.stop(2000);
    }
    const fallbacksAfter = (
      await Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_lookup_fallbacks_total')))
    ).reduce((a, b) => a + b, 0);
    return {
      nodes: 3,
      users,
      askers,
      offeredPerSecond: perSecond,
      seconds,
      answered: run.answered,
      achievedPerSecond: run.answered / run.seconds,
      successRate: run.found / run.sent,
      p50Ms: run.p50Ms,
      p99Ms: run.p99Ms,
      maxMs: run.maxMs,
      baseline: {
        answered: baseline.answered,
        p50Ms: baseline.p50Ms,
        p99Ms: baseline.p99Ms,
        maxMs: baseline.maxMs,
      },
      ownerFallbacks: fallbacksAfter - fallbacksBefore,
      nodeCpuSeconds: nodeCpu,
      nodeSystemShare:
        nodeSys.reduce((a, b) => a + b, 0) /
        Math.max(
          1e-9,
          nodeCpu.reduce((a, b) => a + b, 0),
        ),
      nodeCpuMsPerLookup: (nodeCpu.reduce((a, b) => a + b, 0) * 1000) / Math.max(1, run.answered),
      generatorCpuSeconds: run.generatorCpuSeconds,
      runQueueWaitMsPerSecond: {
        nodes: nodeWait.map((w) => (w * 1000) / run.seconds),
        generator: (run.generatorRunQueueSeconds * 1000) / run.seconds,
      },
      machineBusyPercent: machineBusy,
      eventLoop: {
        generator: { p99Ms: run.loopP99Ms, maxMs: run.loopMaxMs },
        nodes: nodeLoops,
      },
    };
  } finally {
    await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    // SIGTERM first (the sessions are gone, so the drain is quick) so that profiles get written.
    await Promise.all(
      fleet.map(
        (n) =>
          new Promise<void>((resolve) => {
            const child = n.child;
            if (!child || child.exitCode !== null) return resolve();
            const force = setTimeout(() => child.kill('SIGKILL'), 5000);
            child.once('exit', () => {
              clearTimeout(force);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    killAll(fleet);
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatMeshLookup(r: MeshLookupResult): string[] {
  return [
    `3-node mesh, ${r.users} users, ${r.askers} asking sessions, ${r.offeredPerSecond} lookups/s offered for ${r.seconds} s`,
    `answered ${r.answered} (${r.achievedPerSecond.toFixed(0)}/s), found online ${(r.successRate * 100).toFixed(2)}%, owner fallbacks ${r.ownerFallbacks}`,
    `latency p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (target <= 5 ms), max ${r.maxMs.toFixed(1)} ms`,
    `baseline, bare ws echo at the same rate: p50 ${r.baseline.p50Ms.toFixed(2)} ms, p99 ${r.baseline.p99Ms.toFixed(2)} ms, max ${r.baseline.maxMs.toFixed(1)} ms (${r.baseline.answered} answered)`,
    `CPU during the run: nodes ${r.nodeCpuSeconds.map((c) => c.toFixed(2)).join(', ')} s (${r.nodeCpuMsPerLookup.toFixed(3)} ms of node CPU per lookup, ${(r.nodeSystemShare * 100).toFixed(0)}% in the kernel), generator ${r.generatorCpuSeconds.toFixed(2)} s, machine ${r.machineBusyPercent.toFixed(0)}% busy`,
    `waited for a CPU (run queue, main thread): nodes ${r.runQueueWaitMsPerSecond.nodes.map((w) => w.toFixed(0)).join(', ')} ms per second, generator ${r.runQueueWaitMsPerSecond.generator.toFixed(0)} ms per second`,
    `event-loop delay p99/max: generator ${r.eventLoop.generator.p99Ms.toFixed(1)}/${r.eventLoop.generator.maxMs.toFixed(1)} ms, nodes ${r.eventLoop.nodes.map((n) => `${n.p99Ms.toFixed(1)}/${n.maxMs.toFixed(1)}`).join(', ')} ms`,
  ];
}

if (require.main === module) {
  const quick = process.argv.includes('--quick');
  runMeshLookup({ quick, log: (line) => console.log(line) })
    .then((result) => {
      console.log(formatMeshLookup(result).join('\n'));
      console.log(`command: npx tsx bench/mesh-lookup.ts${quick ? ' --quick' : ''}`);
      process.exit(0);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
