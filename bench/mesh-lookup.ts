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
import { generateSigningKey, publicJwks, signAccessToken } from '../supernode/auth/signing';
import { SupernodeSession } from '../supernode/client/session';
import { type FleetNode, killAll, metric, planFleet, startFleetNode } from '../supernode/local/fleet';

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
    const askerSessions = await Promise.all(
      Array.from({ length: askers }, (_, i) => connect(i, `asker-${i}`)),
    );
    sessions.push(...askerSessions);
    await new Promise((r) => setTimeout(r, 500)); // registrations reach their owners
    const fallbacksBefore = (
      await Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_lookup_fallbacks_total')))
    ).reduce((a, b) => a + b, 0);

    log(`mesh lookup: ${perSecond} lookups/s for ${seconds} s from ${askers} sessions`);
    const latencies: number[] = [];
    let online = 0;
    const pending: Promise<void>[] = [];
    const total = perSecond * seconds;
    const started = performance.now();
    for (let i = 0; i < total; i++) {
      const due = started + (i * 1000) / perSecond;
      const wait = due - performance.now();
      if (wait > 2) await new Promise((r) => setTimeout(r, wait));
      const asker = askerSessions[i % askers];
      const sent = performance.now();
      pending.push(
        asker.lookup(`user-${Math.floor(Math.random() * users)}`).then(
          (answer) => {
            latencies.push(performance.now() - sent);
            if (answer.online) online++;
          },
          () => {},
        ),
      );
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - started) / 1000;
    const fallbacksAfter = (
      await Promise.all(fleet.map((n) => metric(n, 'supernode_mesh_lookup_fallbacks_total')))
    ).reduce((a, b) => a + b, 0);
    latencies.sort((a, b) => a - b);
    return {
      nodes: 3,
      users,
      askers,
      offeredPerSecond: perSecond,
      seconds,
      answered: latencies.length,
      achievedPerSecond: latencies.length / elapsed,
      successRate: online / total,
      p50Ms: percentile(latencies, 0.5),
      p99Ms: percentile(latencies, 0.99),
      maxMs: latencies[latencies.length - 1] ?? 0,
      ownerFallbacks: fallbacksAfter - fallbacksBefore,
    };
  } finally {
    await Promise.all(sessions.map((s) => s.close().catch(() => {})));
    killAll(fleet);
    await rm(dir, { recursive: true, force: true });
  }
}

export function formatMeshLookup(r: MeshLookupResult): string[] {
  return [
    `3-node mesh, ${r.users} users, ${r.askers} asking sessions, ${r.offeredPerSecond} lookups/s offered for ${r.seconds} s`,
    `answered ${r.answered} (${r.achievedPerSecond.toFixed(0)}/s), found online ${(r.successRate * 100).toFixed(2)}%, owner fallbacks ${r.ownerFallbacks}`,
    `latency p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms (target <= 5 ms), max ${r.maxMs.toFixed(1)} ms`,
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
