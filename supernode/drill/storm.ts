/**
 * The 2007 drill: every supernode restarts at once while the auth service is down. Clients holding a
 * valid token must all come back without a single password login. Then the same event with the
 * credentials lost: logins must proceed at the hash capacity, the service must not collapse, and no
 * client may give up.
 */

import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { stormOptionTable } from '../config/drill-options';
import { parseOptions } from '../config/options';
import { sampleOf } from '../shared/prometheus';
import { type CpuShares, measureCpu } from './cpu';
import { lineChartSvg, ProgressBar, table } from './report';
import { DrillTier, seedDrillAccounts, sleep } from './tier';
import { ClientFleet, type Report } from './workers';

/** The auth service's hash totals (`auth_hash_runs_total`, `auth_hash_run_seconds_total`) from /metrics. */
async function hashTotals(authUrl: string): Promise<{ runs: number; seconds: number }> {
  const text = await fetch(`${authUrl}/metrics`)
    .then((response) => response.text())
    .catch(() => '');
  return {
    runs: sampleOf(text, 'auth_hash_runs_total'),
    seconds: sampleOf(text, 'auth_hash_run_seconds_total'),
  };
}

export interface StormPhase {
  /** Seconds after the restart. */
  timeline: [number, number][];
  t50Sec: number | null;
  t99Sec: number | null;
  t100Sec: number | null;
  reconnected: number;
  passwordLogins: number;
  refreshes: number;
  refusals: Record<string, number>;
  gaveUp: number;
}

export interface StormResult {
  command: string;
  clients: number;
  cached: StormPhase & { nodePeakRssBytes: number[] };
  lost: StormPhase & {
    windowSec: number;
    hashCapacityPerSec: number;
    loginsPerSec: number;
    /** Measured t100, or clients / login rate when the window ended first. */
    projectedT100Sec: number;
    authHealthChecks: number;
    authHealthFailures: number;
    authPeakRssBytes: number;
    /** Hash threads over the mean hash time during the storm (CPU shared with the load generator). */
    hashCapacityUnderLoadPerSec: number;
    /** Share of the storm the hash threads spent hashing (below 100%: the pool sat idle). */
    hashPoolBusy: number;
    /** Cores each part used during the storm: on one machine the clients' CPU is the tier's loss. */
    cpu: CpuShares;
  };
  speedup: number;
  files: { json: string; svg: string };
}

const CALIBRATION_ACCOUNTS = 16;

export async function runStormDrill(options: ReturnType<typeof parseStormOptions>): Promise<StormResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'drill-storm-'));
  const password = 'drill-password-correct-horse';
  const usernames = Array.from({ length: options.clients }, (_, i) => `drill-u${i}`);
  const calibration = Array.from({ length: CALIBRATION_ACCOUNTS }, (_, i) => `drill-cal${i}`);
  const bar = new ProgressBar();
  const tier = new DrillTier({ dataDir });
  let clients: ClientFleet | undefined;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    log(`storm: seeding ${options.clients} accounts (one OWASP-cost hash, written to the embedded store)`);
    await seedDrillAccounts(dataDir, [...usernames, ...calibration], password);
    await tier.start();
    log(`storm: tier up (auth ${tier.authUrl}, nodes ${tier.nodes.map((n) => n.port).join(', ')})`);
    clients = await ClientFleet.start(
      {
        nodes: tier.nodes.map((node) => node.url),
        authUrl: tier.authUrl,
        password,
        signingKeysFile: tier.signingKeysFile,
        startJitterMs: options.startJitterMs,
      },
      usernames,
    );
    const fleet = clients;
    await waitFor(
      async () => {
        const report = await fleet.report();
        bar.update('connecting   ', report.connected, options.clients);
        return report.connected >= options.clients;
      },
      options.startJitterMs + 120_000,
      'every client connected at set-up',
    );
    bar.done();

    // Phase 1: auth down, every node restarted at once; clients resume with cached tokens.
    await tier.stopAuth();
    const before = await fleet.report();
    log('storm: auth service stopped; restarting every supernode at once (kill -9, start)');
    const cached = await measurePhase(
      fleet,
      bar,
      options.clients,
      before,
      options.reconnectTimeoutSec,
      'cached creds ',
      () => tier.restartAllNodes(),
    );
    const nodePeakRssBytes = tier.nodes.map((node) => tier.peakRss(node.child));

    // Phase 2: auth back, hash capacity measured, credentials wiped, the same restart.
    await tier.startAuth();
    const hashCapacityPerSec = await measureHashCapacity(
      tier.authUrl,
      calibration,
      password,
      options.calibrateSec,
    );
    log(
      `storm: hash capacity C = ${hashCapacityPerSec.toFixed(2)} logins/s (closed loop, ${options.calibrateSec} s)`,
    );
    fleet.send({ type: 'wipe' });
    const beforeLost = await fleet.report();
    let healthChecks = 0;
    let healthFailures = 0;
    let probing = true;
    const prober = (async () => {
      while (probing) {
        healthChecks++;
        if (!(await tier.authHealthy(2000))) healthFailures++;
        await sleep(1000);
      }
    })();
    const hashesBefore = await hashTotals(tier.authUrl);
    const hashesSince = performance.now();
    log('storm: credentials wiped; restarting every supernode at once');
    const cpu = measureCpu(
      () => ({
        clients: fleet.pids(),
        nodes: tier.nodes.flatMap((node) => (node.child?.pid ? [node.child.pid] : [])),
        auth: tier.authProcess?.pid ? [tier.authProcess.pid] : [],
        drill: [process.pid],
      }),
      () => tier.authProcess?.pid,
    );
    const lost = await measurePhase(
      fleet,
      bar,
      options.clients,
      beforeLost,
      options.lostWindowSec,
      'creds lost   ',
      () => tier.restartAllNodes(),
    );
    const cpuShares = cpu.finish();
    probing = false;
    await prober;
    // What the hashes took during the storm (the machine's two cores also run the load generator), from
    // the pool's own totals. The auth service's default pool: one hash thread per core less one.
    const hashesAfter = await hashTotals(tier.authUrl);
    const hashesOverSec = (performance.now() - hashesSince) / 1000;
    const hashThreads = Math.max(1, availableParallelism() - 1);
    const hashSeconds = hashesAfter.seconds - hashesBefore.seconds;
    const hashRunSec = hashSeconds / (hashesAfter.runs - hashesBefore.runs);
    const hashCapacityUnderLoadPerSec = hashThreads / hashRunSec;
    const authPeakRssBytes = tier.peakRss(tier.authProcess);
    const windowSec = lost.timeline.at(-1)?.[0] ?? options.lostWindowSec;
    // Over the time between the two readings; a hash running at the first counts whole, so up to one
    // hash per thread over 100%.
    const hashPoolBusy = hashSeconds / (hashesOverSec * hashThreads);
    const loginsPerSec = lost.passwordLogins / windowSec;
    const projectedT100Sec =
      lost.t100Sec ?? (loginsPerSec > 0 ? options.clients / loginsPerSec : Number.POSITIVE_INFINITY);

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await mkdir(options.out, { recursive: true });
    const files = {
      json: join(options.out, `storm-${stamp}.json`),
      svg: join(options.out, `storm-${stamp}.svg`),
    };
    const result: StormResult = {
      command: `supernode drill storm --clients ${options.clients} --lost-window-sec ${options.lostWindowSec}`,
      clients: options.clients,
      cached: { ...cached, nodePeakRssBytes },
      lost: {
        ...lost,
        windowSec,
        hashCapacityPerSec,
        loginsPerSec,
        projectedT100Sec,
        authHealthChecks: healthChecks,
        authHealthFailures: healthFailures,
        authPeakRssBytes,
        hashCapacityUnderLoadPerSec,
        hashPoolBusy,
        cpu: cpuShares,
      },
      speedup: cached.t100Sec ? projectedT100Sec / cached.t100Sec : 0,
      files,
    };
    await writeFile(files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(files.svg, stormChart(result));
    return result;
  } finally {
    await clients?.stop();
    await tier.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Runs `event` and samples reconnected clients every 250 ms until all are back or `limitSec` passes. */
async function measurePhase(
  fleet: ClientFleet,
  bar: ProgressBar,
  total: number,
  before: Report,
  limitSec: number,
  label: string,
  event: () => Promise<void>,
): Promise<StormPhase> {
  const started = Date.now();
  const timeline: [number, number][] = [[0, before.connected]];
  const eventDone = event();
  const at: Record<'t50Sec' | 't99Sec' | 't100Sec', number | null> = {
    t50Sec: null,
    t99Sec: null,
    t100Sec: null,
  };
  let last: Report & { fresh?: boolean } = before;
  // Until the restart is over, "connected" still counts sessions on the old processes.
  let restarted = false;
  eventDone.then(() => {
    restarted = true;
  });
  while ((Date.now() - started) / 1000 < limitSec) {
    await sleep(250);
    last = await fleet.report();
    const t = (Date.now() - started) / 1000;
    const connected = restarted ? last.connected : 0;
    timeline.push([t, connected]);
    bar.update(
      label,
      connected,
      total,
      `${t.toFixed(1)} s, password logins ${last.passwordLogins - before.passwordLogins}`,
    );
    // Thresholds only from reports every worker answered in time (a late one repeats its last count).
    if (!restarted || !last.fresh) continue;
    if (at.t50Sec === null && connected >= total * 0.5) at.t50Sec = t;
    if (at.t99Sec === null && connected >= total * 0.99) at.t99Sec = t;
    if (connected >= total) {
      at.t100Sec = t;
      break;
    }
  }
  await eventDone;
  bar.done();
  const refusals: Record<string, number> = {};
  for (const [reason, n] of Object.entries(last.refusals)) {
    const delta = n - (before.refusals[reason] ?? 0);
    if (delta > 0) refusals[reason] = delta;
  }
  return {
    timeline,
    ...at,
    reconnected: last.connected,
    passwordLogins: last.passwordLogins - before.passwordLogins,
    refreshes: last.refreshes - before.refreshes,
    refusals,
    gaveUp: last.gaveUp - before.gaveUp,
  };
}

/** Logins per second the service completes when kept busy (closed loop, two per hash thread). */
async function measureHashCapacity(
  authUrl: string,
  users: string[],
  password: string,
  seconds: number,
): Promise<number> {
  const started = performance.now();
  const deadline = Date.now() + seconds * 1000;
  let done = 0;
  const loop = async (user: string) => {
    while (Date.now() < deadline) {
      const response = await fetch(`${authUrl}/v1/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: user, password }),
      }).catch(() => undefined);
      if (response?.ok) done++;
      else if (response) await sleep(Number(response.headers.get('retry-after') ?? 0) * 100);
      await response?.arrayBuffer();
    }
  };
  await Promise.all(users.slice(0, 4).map(loop));
  // Over the time until the last counted login answered: the logins still in flight at the deadline
  // are counted, so dividing by `seconds` alone overstated C (by up to 4 logins per window: 2.70/s
  // against 2.2-2.4/s from the hash time, 2026-12-03).
  return done / ((performance.now() - started) / 1000);
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function stormChart(result: StormResult): string {
  return lineChartSvg({
    title: `Storm drill: ${result.clients} clients reconnecting after every supernode restarts at once`,
    xLabel: 'seconds after the restart',
    yLabel: 'clients reconnected',
    series: [
      { label: 'cached credentials, auth down', color: '#1a7f37', points: result.cached.timeline },
      { label: 'credentials lost, auth up', color: '#cf222e', points: result.lost.timeline },
    ],
  });
}

function cpuLine(cpu: CpuShares): string {
  const { clients, nodes, auth, drill } = cpu.groups;
  const f = (cores: number) => cores.toFixed(2);
  return `machine ${f(cpu.machine)}: clients ${f(clients)}, nodes ${f(nodes)}, auth ${f(auth)} (main thread ${f(cpu.mainThread)}, hashing and store on the others), drill ${f(drill)}`;
}

export function formatStorm(result: StormResult): string {
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
  const sec = (value: number | null) => (value === null ? 'not reached' : `${value.toFixed(1)} s`);
  const reasons = (map: Record<string, number>) =>
    Object.entries(map)
      .map(([reason, n]) => `${reason} ${n}`)
      .join(', ') || 'none';
  return [
    `storm drill: ${result.clients} clients, 3 supernodes, auth service; command: ${result.command}`,
    '',
    table(
      ['', 'cached credentials (auth down)', 'credentials lost (auth up)'],
      [
        ['50% reconnected', sec(result.cached.t50Sec), sec(result.lost.t50Sec)],
        ['99% reconnected', sec(result.cached.t99Sec), sec(result.lost.t99Sec)],
        [
          '100% reconnected',
          sec(result.cached.t100Sec),
          `${sec(result.lost.t100Sec)} (projected ${result.lost.projectedT100Sec.toFixed(0)} s)`,
        ],
        [
          'reconnected at the end',
          `${result.cached.reconnected}`,
          `${result.lost.reconnected} after ${result.lost.windowSec.toFixed(0)} s`,
        ],
        [
          'password logins',
          `${result.cached.passwordLogins}`,
          `${result.lost.passwordLogins} (${result.lost.loginsPerSec.toFixed(2)}/s; C = ${result.lost.hashCapacityPerSec.toFixed(2)}/s idle, ${result.lost.hashCapacityUnderLoadPerSec.toFixed(2)}/s under the storm; hash pool busy ${(result.lost.hashPoolBusy * 100).toFixed(0)}%)`,
        ],
        ['CPU during the storm (cores)', '', `${cpuLine(result.lost.cpu)}`],
        ['token refreshes', `${result.cached.refreshes}`, `${result.lost.refreshes}`],
        ['clients that gave up', `${result.cached.gaveUp}`, `${result.lost.gaveUp}`],
        ['retries by reason', reasons(result.cached.refusals), reasons(result.lost.refusals)],
        [
          'peak RSS',
          `nodes ${result.cached.nodePeakRssBytes.map(mib).join(' / ')}`,
          `auth ${mib(result.lost.authPeakRssBytes)}`,
        ],
        [
          'auth /healthz failures',
          '(auth down)',
          `${result.lost.authHealthFailures} of ${result.lost.authHealthChecks}`,
        ],
      ],
    ),
    '',
    `cached-credentials storm is ${result.speedup.toFixed(0)}x faster to 100% than the credentials-lost storm (target >= 100x)`,
    `timeline: ${result.files.json}; chart: ${result.files.svg}`,
  ].join('\n');
}

export function parseStormOptions(argv: string[]) {
  return parseOptions(stormOptionTable, argv);
}
