/**
 * Login-storm benchmark: how the auth service holds up when offered 10x and 50x the password logins
 * it can hash, against the same routes with admission control turned off, in the same run.
 *
 *   npx tsx bench/login-storm.ts [--quick] [--admission-only]
 *
 * `--admission-only` leaves out the naive baseline's storms (for A/B runs of the service itself).
 *
 * 1. Capacity C: a closed loop keeps the hash pool busy (a few logins always waiting) and counts
 *    successful logins per second.
 * 2. Storms: an open loop offers k x C logins per second (requests leave on schedule whether or not
 *    earlier ones have answered, as clients after a mass reboot do) for a fixed time; each client
 *    gives up after 10 s. Goodput = logins answered 200 within that, per second of the storm.
 * Each phase gets a freshly started auth process (the naive one would otherwise still be hashing
 * the previous storm's backlog), with the same accounts from the same data directory.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePorts, waitReady } from '../supernode/local/fleet';
import { sampleOf } from '../supernode/shared/prometheus';
import { ORPHAN_GUARD } from './lib/children';
import { RawHttpClient } from './lib/raw-http';

const CLI = resolve(__dirname, '../supernode/bin/supernode.cjs');
const CLIENT_TIMEOUT_MS = 10_000;
const ACCOUNTS = 16;
/** The storm's first seconds meet a freshly started process; its shed latency is reported apart. */
const WARM_MS = 2000;
const PASSWORD = 'storm-password-1';

export interface StormPhase {
  mode: 'admission' | 'naive';
  multiple: number;
  offeredPerSecond: number;
  seconds: number;
  sent: number;
  ok: number;
  shed: number;
  timeouts: number;
  otherErrors: number;
  goodputPerSecond: number;
  goodputOfCapacity: number;
  admittedP99Ms: number;
  /** Sheds of requests sent after the storm's first WARM_MS: the steady state of a running service. */
  shedP99Ms: number;
  /** Sheds of requests sent in the first WARM_MS, by a service that has just started (cold JIT). */
  coldShedP99Ms: number;
  /**
   * The same generator at the same rate against a bare `node:http` server that answers every request
   * with the same 503 at once, beside one spinning thread (the service's hash core): the floor that
   * this machine and generator put under any shed answer. Admission phases only; after WARM_MS too.
   */
  bareShedP99Ms?: number;
  peakRssMiB: number;
  /** Mean time of the hashes this phase's service completed (admission phases): the pool's own timing. */
  meanHashMs: number;
  /** The service's event-loop delay during the storm (and the answers after it). */
  loopP99Ms: number;
  loopMaxMs: number;
}

export interface LoginStormResult {
  capacityPerSecond: number;
  capacitySeconds: number;
  /** Mean hash time while C was measured, for comparison with each storm's. */
  capacityMeanHashMs: number;
  /** Hashes the service runs at once. */
  poolSize: number;
  scrypt: string;
  phases: StormPhase[];
}

/**
 * The baseline for shed latency: node:http answering the shed's 503 (same headers and body shape)
 * without reading anything, while a worker thread spins as the service's hash thread does.
 */
const BARE_SHED_SERVER = `
const { Worker } = require('node:worker_threads');
new Worker('for (;;) {}', { eval: true }).unref();
const body = JSON.stringify({ error: 'overloaded', message: 'login capacity is full; retry later' });
const server = require('node:http').createServer((request, response) => {
  request.resume();
  response.writeHead(503, { 'content-type': 'application/json; charset=utf-8', 'retry-after': '1', 'content-length': Buffer.byteLength(body) });
  response.end(body);
});
server.listen(Number(process.env.PORT), '127.0.0.1', () => console.log('ready'));
`;

async function startBareShedServer(): Promise<{ url: string; stop(): void }> {
  const [port] = await freePorts(1);
  // The orphan guard ends it (and its spinning thread) if this runner dies first.
  const child = spawn(process.execPath, ['--require', ORPHAN_GUARD, '-e', BARE_SHED_SERVER], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, PORT: String(port) },
  });
  await new Promise<void>((resolve, reject) => {
    child.stdout?.once('data', () => resolve());
    child.once('exit', (code) => reject(new Error(`bare shed server exited with ${code}`)));
  });
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

interface AuthProcess {
  url: string;
  child: ChildProcess;
  peakRssBytes(): number;
  stop(): Promise<void>;
}

async function startAuth(dataDir: string, admission: boolean): Promise<AuthProcess> {
  const [port] = await freePorts(1);
  // BENCH_CPU_PROF=<dir>: a V8 CPU profile of each auth process, written when it exits.
  const profile = process.env.BENCH_CPU_PROF
    ? [
        '--cpu-prof',
        `--cpu-prof-dir=${process.env.BENCH_CPU_PROF}`,
        `--cpu-prof-name=auth-${admission}-${port}.cpuprofile`,
      ]
    : [];
  const child = spawn(process.execPath, [...profile, CLI, 'auth'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      AUTH_PORT: String(port),
      AUTH_DATA_DIR: dataDir,
      AUTH_LOG_LEVEL: 'warn',
      AUTH_ADMISSION_CONTROL: String(admission),
      // One client address and few accounts: per-IP and per-account limits would measure themselves.
      AUTH_IP_LOGINS_PER_MINUTE: '1000000',
      AUTH_ACCOUNT_LOGINS_PER_MINUTE: '10000',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, 30_000, child);
  let peak = 0;
  const sampler = setInterval(() => {
    peak = Math.max(peak, rssOf(child.pid as number));
  }, 200);
  return {
    url,
    child,
    peakRssBytes: () => Math.max(peak, rssOf(child.pid as number)),
    stop: async () => {
      clearInterval(sampler);
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      // The naive service may be hashing a long backlog: no graceful wait (a profiled one gets SIGTERM
      // so that it writes its profile; the storm is over by then).
      child.kill(profile.length > 0 ? 'SIGTERM' : 'SIGKILL');
      await exited;
    },
  };
}

function rssOf(pid: number): number {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

interface Outcome {
  status: number; // 0: timed out or failed
  /** The typed `error` of a refusal: `overloaded` is shedding, anything else a failure. */
  error?: string;
  ms: number;
  /** When the answer arrived, in ms (since the storm started, once the generator reports it). */
  at: number;
}

/** One client per process: its keep-alive connections and each account's login request, built once. */
class LoginClient {
  private readonly http: RawHttpClient;
  private readonly requests: Buffer[];

  constructor(url: string) {
    this.http = new RawHttpClient(url);
    this.requests = Array.from({ length: ACCOUNTS }, (_, i) =>
      this.http.request('POST', '/v1/login', { username: `storm-${i}`, password: PASSWORD }),
    );
  }

  async login(user: number): Promise<Outcome> {
    const started = performance.now();
    const { status, body } = await this.http.send(this.requests[user % ACCOUNTS], CLIENT_TIMEOUT_MS);
    const at = performance.now();
    return { status, error: status === 0 ? undefined : errorOf(body), ms: at - started, at };
  }

  close(): void {
    this.http.close();
  }
}

function errorOf(body: string): string | undefined {
  try {
    return (JSON.parse(body) as { error?: string }).error;
  } catch {
    return undefined;
  }
}

async function createAccounts(url: string): Promise<void> {
  for (let i = 0; i < ACCOUNTS; i++) {
    const response = await fetch(`${url}/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: `storm-${i}`, password: PASSWORD }),
    });
    if (response.status !== 201 && response.status !== 409)
      throw new Error(`sign-up answered ${response.status}`);
  }
}

/** Closed loop: `concurrency` clients log in back to back; the pool is never idle, never over-full. */
async function measureCapacity(url: string, seconds: number, concurrency: number): Promise<number> {
  const client = new LoginClient(url);
  const deadline = performance.now() + seconds * 1000;
  let ok = 0;
  let next = 0;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        const outcome = await client.login(next++);
        if (outcome.status === 200) ok++;
      }
    }),
  );
  client.close();
  return ok / ((performance.now() - started) / 1000);
}

/** Open loop at `perSecond` for `seconds`; waits for every request to answer or time out. */
async function storm(url: string, perSecond: number, seconds: number): Promise<Outcome[]> {
  const client = new LoginClient(url);
  const total = Math.round(perSecond * seconds);
  const started = performance.now();
  const pending: Promise<Outcome>[] = [];
  for (let i = 0; i < total; i++) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 1) await sleep(wait);
    pending.push(client.login(i));
  }
  const outcomes = await Promise.all(pending);
  client.close();
  // Answer times relative to the storm's start, so the parent can tell the storm window from after.
  return outcomes.map((o) => ({ ...o, at: o.at - started }));
}

/**
 * The storm's clients run in a process of their own: at 50x capacity the requests and their timers
 * would otherwise take CPU from the same core the measuring process and the service share.
 */
function stormInChild(url: string, perSecond: number, seconds: number): Promise<Outcome[]> {
  const child = spawn(process.execPath, ['--require', 'tsx/cjs', __filename], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [CHILD_ENV]: JSON.stringify({ url, perSecond, seconds }) },
  });
  return new Promise((resolve, reject) => {
    child.once('message', (message) => resolve(message as Outcome[]));
    child.once('exit', (code) => reject(new Error(`storm generator exited with ${code} before reporting`)));
  });
}

const CHILD_ENV = 'LOGIN_STORM_GENERATOR';

/** Mean hash time from a service's /metrics text: run seconds over runs completed since it started. */
function meanHashMs(metricsText: string): number {
  return (
    (sampleOf(metricsText, 'auth_hash_run_seconds_total') / sampleOf(metricsText, 'auth_hash_runs_total')) *
    1000
  );
}

function p99(values: number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(sorted.length * 0.99) - 1)];
}

export async function runLoginStorm(options: {
  quick: boolean;
  log: (line: string) => void;
  admissionOnly?: boolean;
}): Promise<LoginStormResult> {
  const { quick, log } = options;
  const modes = options.admissionOnly ? (['admission'] as const) : (['admission', 'naive'] as const);
  const capacitySeconds = quick ? 6 : 15;
  const stormSeconds = quick ? 5 : 20;
  const dataDir = await mkdtemp(join(tmpdir(), 'login-storm-'));
  const phases: StormPhase[] = [];
  try {
    let auth = await startAuth(dataDir, true);
    log(`login storm: creating ${ACCOUNTS} accounts (scrypt at the service defaults)`);
    await createAccounts(auth.url);
    // The service's pool size (AUTH_HASH_CONCURRENCY, else its default): twice that many clients keep it busy.
    const poolSize = Number(process.env.AUTH_HASH_CONCURRENCY) || Math.max(1, availableParallelism() - 1);
    const capacityPerSecond = await measureCapacity(auth.url, capacitySeconds, poolSize * 2);
    const capacityMeanHashMs = meanHashMs(await (await fetch(`${auth.url}/metrics`)).text());
    log(
      `login storm: capacity C = ${capacityPerSecond.toFixed(2)} logins/s (closed loop, ${capacitySeconds} s; mean hash ${capacityMeanHashMs.toFixed(0)} ms)`,
    );
    await auth.stop();
    for (const mode of modes) {
      for (const multiple of [10, 50]) {
        auth = await startAuth(dataDir, mode === 'admission');
        const offered = capacityPerSecond * multiple;
        log(`login storm: ${mode}, ${multiple}x C = ${offered.toFixed(0)} logins/s for ${stormSeconds} s`);
        await fetch(`${auth.url}/metrics`).then((r) => r.text()); // restarts the loop-lag histogram
        const outcomes = await stormInChild(auth.url, offered, stormSeconds);
        const metricsText = await (await fetch(`${auth.url}/metrics`)).text();
        const lag = (name: string) => sampleOf(metricsText, name) * 1000;
        const ok = outcomes.filter((o) => o.status === 200);
        const shed = outcomes.filter((o) => o.error === 'overloaded' || o.error === 'too_many_requests');
        const timeouts = outcomes.filter((o) => o.status === 0).length;
        // Goodput counts logins completed during the storm, not the backlog answered after it.
        const goodput = ok.filter((o) => o.at <= stormSeconds * 1000).length / stormSeconds;
        phases.push({
          mode,
          multiple,
          offeredPerSecond: offered,
          seconds: stormSeconds,
          sent: outcomes.length,
          ok: ok.length,
          shed: shed.length,
          timeouts,
          otherErrors: outcomes.length - ok.length - shed.length - timeouts,
          goodputPerSecond: goodput,
          goodputOfCapacity: goodput / capacityPerSecond,
          admittedP99Ms: p99(ok.map((o) => o.ms)),
          shedP99Ms: p99(shed.filter((o) => o.at - o.ms >= WARM_MS).map((o) => o.ms)),
          coldShedP99Ms: p99(shed.filter((o) => o.at - o.ms < WARM_MS).map((o) => o.ms)),
          peakRssMiB: auth.peakRssBytes() / 1024 / 1024,
          meanHashMs: meanHashMs(metricsText),
          loopP99Ms: lag('nodejs_eventloop_lag_p99_seconds'),
          loopMaxMs: lag('nodejs_eventloop_lag_max_seconds'),
        });
        await auth.stop();
        if (mode === 'admission') {
          const bare = await startBareShedServer();
          const baseline = await stormInChild(bare.url, offered, stormSeconds);
          bare.stop();
          const phase = phases[phases.length - 1];
          phase.bareShedP99Ms = p99(baseline.filter((o) => o.at - o.ms >= WARM_MS).map((o) => o.ms));
          log(`login storm: bare 503 server at the same rate, shed p99 ${phase.bareShedP99Ms.toFixed(1)} ms`);
        }
      }
    }
    return {
      capacityPerSecond,
      capacitySeconds,
      capacityMeanHashMs,
      poolSize,
      scrypt: 'N=2^17, r=8, p=1 (service default)',
      phases,
    };
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export function formatLoginStorm(result: LoginStormResult): string[] {
  const lines = [
    `capacity C: ${result.capacityPerSecond.toFixed(2)} password logins/s (scrypt ${result.scrypt}, closed loop ${result.capacitySeconds} s, mean hash ${result.capacityMeanHashMs.toFixed(0)} ms)`,
    `mode       offered        goodput    of C   admitted p99   shed p99 (first ${WARM_MS / 1000} s)   bare 503 p99   ok/shed/timeout/other   peak RSS   loop p99/max   mean hash`,
  ];
  for (const p of result.phases) {
    lines.push(
      [
        p.mode.padEnd(10),
        `${p.multiple}x ${p.offeredPerSecond.toFixed(0)}/s`.padEnd(14),
        `${p.goodputPerSecond.toFixed(2)}/s`.padStart(8),
        `${(p.goodputOfCapacity * 100).toFixed(0)}%`.padStart(6),
        `${p.admittedP99Ms.toFixed(0)} ms`.padStart(14),
        `${p.shedP99Ms.toFixed(1)} ms (${p.coldShedP99Ms.toFixed(1)} ms)`.padStart(21),
        (p.bareShedP99Ms === undefined ? '-' : `${p.bareShedP99Ms.toFixed(1)} ms`).padStart(14),
        `${p.ok}/${p.shed}/${p.timeouts}/${p.otherErrors}`.padStart(23),
        `${p.peakRssMiB.toFixed(0)} MiB`.padStart(10),
        `${p.loopP99Ms.toFixed(1)}/${p.loopMaxMs.toFixed(1)} ms`.padStart(15),
        (Number.isFinite(p.meanHashMs) ? `${p.meanHashMs.toFixed(0)} ms` : '-').padStart(11),
      ].join(' '),
    );
  }
  return lines;
}

if (require.main === module && process.env[CHILD_ENV]) {
  const { url, perSecond, seconds } = JSON.parse(process.env[CHILD_ENV] as string);
  storm(url, perSecond, seconds).then((outcomes) => {
    process.send?.(outcomes, () => process.exit(0));
  });
} else if (require.main === module) {
  const quick = process.argv.includes('--quick');
  const admissionOnly = process.argv.includes('--admission-only');
  runLoginStorm({ quick, admissionOnly, log: (line) => console.log(line) })
    .then((result) => {
      console.log(formatLoginStorm(result).join('\n'));
      const flags = `${quick ? ' --quick' : ''}${admissionOnly ? ' --admission-only' : ''}`;
      console.log(`command: npx tsx bench/login-storm.ts${flags}`);
    })
    .catch((err: unknown) => {
      console.error(err);
      process.exit(1);
    });
}
