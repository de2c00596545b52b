/**
 * What the session heartbeat costs the event loop: one supernode holding `sessions` idle sessions
 * (generator processes answer its pings), pinging them every `--period-ms`; the node's event-loop delay
 * (max and p99, from its /metrics) over a few periods, against the same node and sessions with the
 * heartbeat out of the way (a period longer than the run) in the same run.
 *
 *   npx tsx bench/heartbeat.ts [--sessions 18000] [--period-ms 2000] [--periods 4]
 *
 * The node process may hold 20,000 files here, so 18,000 sessions is about the most one node can hold.
 */

import { SESSION_PATH } from '../supernode/protocol/messages';
import { sampleOf } from '../supernode/shared/prometheus';
import { sleep } from './lib/children';
import { type BenchKeys, int, makeBenchKeys, type NodeHandle, readyz, startSupernode } from './lib/env';
import {
  type GenSpec,
  generatorsFor,
  splitCount,
  startSessionGen,
  stopAll,
  waitDone,
  waitReady,
} from './lib/load';

function option(name: string, fallback: number): number {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
}

const SESSIONS = option('--sessions', 18_000);
const PERIOD_MS = option('--period-ms', 2000);
const PERIODS = option('--periods', 4);

interface LoopFigures {
  maxMs: number;
  p99Ms: number;
  /** Sessions the node ended, by reason (`heartbeat`: a ping not answered by the next). */
  disconnects: string;
}

async function loopDelay(node: NodeHandle): Promise<LoopFigures> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const read = (name: string) => sampleOf(text, name) * 1000;
  const disconnects = [...text.matchAll(/^supernode_disconnects_total\{reason="(\w+)"\} (\d+)$/gm)]
    .map(([, reason, n]) => `${reason} ${n}`)
    .join(', ');
  return {
    maxMs: read('nodejs_eventloop_lag_max_seconds'),
    p99Ms: read('nodejs_eventloop_lag_p99_seconds'),
    disconnects: disconnects || 'none',
  };
}

/**
 * One /metrics scrape, with /healthz asked back to back meanwhile: the slowest /healthz answer is about
 * how long the scrape held the event loop (a scrape that yields lets them through).
 */
async function timedScrape(node: NodeHandle): Promise<{ ms: number; healthzMaxMs: number }> {
  let scraping = true;
  let healthzMaxMs = 0;
  const probe = (async () => {
    while (scraping) {
      const at = performance.now();
      await fetch(`http://127.0.0.1:${node.port}/healthz`).then((r) => r.arrayBuffer());
      healthzMaxMs = Math.max(healthzMaxMs, performance.now() - at);
    }
  })();
  await sleep(20);
  const started = performance.now();
  await loopDelay(node);
  const ms = performance.now() - started;
  scraping = false;
  await probe;
  return { ms, healthzMaxMs };
}

async function measure(
  keys: BenchKeys,
  periodMs: number,
): Promise<LoopFigures & { sessions: number; scrape: { ms: number; healthzMaxMs: number } }> {
  const node = await startSupernode('heartbeat-node', keys, [
    '--max-sessions',
    '1000000',
    '--heartbeat-ms',
    String(periodMs),
    '--auth-timeout-ms',
    '60000',
  ]);
  const specs: GenSpec[] = splitCount(SESSIONS, generatorsFor(SESSIONS)).map((count, i) => ({
    name: `heartbeat-gen${i}`,
    mode: 'supernode',
    client: 'raw',
    url: `${node.url}${SESSION_PATH}`,
    count,
    concurrency: 128,
    keyFile: keys.keyFile,
    userPrefix: `hb-g${i}`,
    attempts: 3,
    timeoutMs: 30_000,
    waitForGo: true,
    deadlineMs: 240_000,
  }));
  const gens = specs.map(startSessionGen);
  try {
    await waitReady(gens, 180_000);
    for (const gen of gens) gen.send({ type: 'go' });
    await waitDone('heartbeat', gens, SESSIONS, 300_000);
    await sleep(1000);
    const scrape = await timedScrape(node); // each scrape restarts the histogram: the next one covers the periods below
    await sleep(PERIODS * PERIOD_MS);
    const figures = await loopDelay(node);
    return { ...figures, scrape, sessions: (await readyz(node.port)).sessions };
  } finally {
    await stopAll(gens);
    await node.child.stop(2000);
  }
}

async function main(): Promise<void> {
  const keys = await makeBenchKeys();
  try {
    const pinged = await measure(keys, PERIOD_MS);
    // The same, with a period longer than the run: what the held sessions cost without any ping.
    const quiet = await measure(keys, 300_000);
    const line = (what: string, r: typeof pinged) =>
      `${what.padEnd(34)} ${int(r.sessions).padStart(7)} sessions   loop delay max ${r.maxMs.toFixed(1).padStart(7)} ms   p99 ${r.p99Ms.toFixed(1).padStart(6)} ms   ended by the node: ${r.disconnects}   a /metrics scrape took ${r.scrape.ms.toFixed(1)} ms, /healthz meanwhile at most ${r.scrape.healthzMaxMs.toFixed(1)} ms`;
    console.log(`\nsupernode event-loop delay over ${PERIODS} x ${PERIOD_MS} ms, idle sessions`);
    console.log(line(`heartbeat every ${PERIOD_MS} ms`, pinged));
    console.log(line('no heartbeat during the run', quiet));
    console.log(
      `command: npx tsx bench/heartbeat.ts --sessions ${SESSIONS} --period-ms ${PERIOD_MS} --periods ${PERIODS}`,
    );
  } finally {
    keys.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
