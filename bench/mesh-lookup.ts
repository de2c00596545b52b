/**
 * Lookup latency on a 3-node mesh at a fixed offered rate (design target: p99 at most 5 ms at
 * 10,000 lookups/s).
 *
 *   npx tsx bench/mesh-lookup.ts [--quick]
 *
 * Three node processes (real mesh links on loopback), `users` sessions registered across them, then
 * `askers` sessions (spread over the nodes) send lookups of random registered users, open loop: the
 * schedule does not wait for answers. Latency is measured at the client, from send to answer: client
 * -> node -> owner (for the third of users this node does not own) -> node -> client. The client
 * side runs in this process, on the same 2 cores as the nodes.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import WebSocket from 'ws';
import { generateSigningKey, publicJwks, signAccessToken } from '../supernode/auth/signing';
import { SupernodeSession } from '../supernode/client/session';
import { type FleetNode, killAll, metric, planFleet, startFleetNode } from '../supernode/local/fleet';
import { SESSION_PATH } from '../supernode/protocol/messages';
import { startBareServer } from './lib/env';

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
  /** Event-loop delay during the run: where lookups waited (queueing) rather than worked. */
  eventLoop: { generator: { p99Ms: number; maxMs: number }; nodes: Array<{ p99Ms: number; maxMs: number }> };
}

/** One scrape (each resets the node's loop-lag histogram): p99 and max of the delay since the last. */
async function loopLag(node: FleetNode): Promise<{ p99Ms: number; maxMs: number }> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const read = (name: string) =>
    Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) * 1000;
  return { p99Ms: read('nodejs_eventloop_lag_p99_seconds'), maxMs: read('nodejs_eventloop_lag_max_seconds') };
}

interface OpenLoopResult {
  sent: number;
  answered: number;
  found: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

/** A bare WebSocket, open. */
function rawSocket(url: string): Promise<WebSocket> {
  const socket = new WebSocket(url);
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** A raw session: the socket once the node has answered the hello with a welcome. */
async function rawSession(url: string, token: string): Promise<WebSocket> {
  const socket = await rawSocket(`${url}${SESSION_PATH}`);
  socket.send(JSON.stringify({ type: 'hello', token }));
  await new Promise<void>((resolve, reject) =>
    socket.once('message', (data) => {
      const message = JSON.parse(String(data)) as { type: string };
      if (message.type === 'welcome') resolve();
      else reject(new Error(`no welcome: ${String(data)}`));
    }),
  );
  return socket;
}

/**
 * The load: `perSecond` lookups, open loop (the schedule never waits for answers), round-robin over
 * the sockets, latency from send to the answer carrying the same id. Deliberately cheap (ids index a
 * typed array, no promise per request), so the generator is not what is measured. An echo server's
 * answer is the request itself, which carries the id too.
 */
async function openLoop(
  sockets: WebSocket[],
  perSecond: number,
  seconds: number,
  userOf: (id: number) => string,
): Promise<OpenLoopResult> {
  const total = perSecond * seconds;
  const sentAt = new Float64Array(total + 1);
  const latencies = new Float64Array(total);
  let answered = 0;
  let found = 0;
  let done: () => void = () => {};
  const allAnswered = new Promise<void>((resolve) => {
    done = resolve;
  });
  const onMessage = (data: unknown) => {
    const message = JSON.parse(String(data)) as { id?: number; online?: boolean; type: string };
    const id = message.id;
    if (typeof id !== 'number' || id < 1 || id > total || sentAt[id] === 0) return;
    latencies[answered++] = performance.now() - sentAt[id];
    sentAt[id] = 0;
    if (message.online || message.type === 'lookup') found++;
    if (answered === total) done();
  };
  for (const socket of sockets) socket.on('message', onMessage);
  const started = performance.now();
  for (let id = 1; id <= total; id++) {
    const due = started + ((id - 1) * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    sentAt[id] = performance.now();
    sockets[id % sockets.length].send(`{"type":"lookup","id":${id},"user":"${userOf(id)}"}`);
  }
  await Promise.race([allAnswered, new Promise((r) => setTimeout(r, 5000))]);
  const elapsed = (performance.now() - started) / 1000;
  for (const socket of sockets) socket.off('message', onMessage);
  const sorted = Array.from(latencies.subarray(0, answered)).sort((a, b) => a - b);
  return {
    sent: total,
    answered,
    found,
    seconds: elapsed,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    maxMs: sorted[sorted.length - 1] ?? 0,
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(sorted.length * p) - 1))];
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
  const dir = await mkdtemp(join(tmpdir(), 'mesh-lookup-'));
  let fleet: FleetNode[] = [];
  const sessions: SupernodeSession[] = [];
  try {
    const key = await generateSigningKey();
    const jwksFile = join(dir, 'jwks.json');
    await writeFile(jwksFile, JSON.stringify(publicJwks([key])));
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
    const askerSockets = await Promise.all(
      Array.from({ length: askers }, async (_, i) =>
        rawSession(
          fleet[i % 3].url,
          await signAccessToken(key, { sub: `asker-${i}`, aud: 'supernode', ttlSec: 3600 }),
        ),
      ),
    );
    await new Promise((r) => setTimeout(r, 500)); // registrations reach their owners
    const fallbacksBefore = (
      await Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_lookup_fallbacks_total')))
    ).reduce((a, b) => a + b, 0);

    // prom-client's loop-lag histogram restarts at each scrape: scraped now, the next scrape covers the run.
    await Promise.all(fleet.map((n) => loopLag(n)));
    const generatorLoop = monitorEventLoopDelay({ resolution: 1 });
    generatorLoop.enable();
    log(`mesh lookup: ${perSecond} lookups/s for ${seconds} s from ${askers} sessions`);
    const run = await openLoop(askerSockets, perSecond, seconds, (id) => `user-${id % users}`);
    for (const socket of askerSockets) socket.close();
    generatorLoop.disable();
    const nodeLoops = await Promise.all(fleet.map((n) => loopLag(n)));

    // The baseline: the same generator, rate and message against a bare ws echo server (one process,
    // one hop), so what the machine and the generator cost themselves is measured in the same run.
    log(`mesh lookup: the same ${perSecond}/s against a bare ws echo server`);
    const bare = await startBareServer('mesh-bare-echo', 'echo');
    let baseline: OpenLoopResult;
    try {
      const bareSockets = await Promise.all(Array.from({ length: askers }, () => rawSocket(bare.url)));
      baseline = await openLoop(bareSockets, perSecond, seconds, (id) => `user-${id % users}`);
      for (const socket of bareSockets) socket.close();
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
      eventLoop: {
        generator: { p99Ms: generatorLoop.percentile(99) / 1e6, maxMs: generatorLoop.max / 1e6 },
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
