/**
 * STUN Binding answers per second: the supernode's STUN responder against coturn's
 * `turnserver --stun-only` in the same run, both loaded by the same generator processes
 * (bench/stun-gen.ts, each keeping a window of requests in flight) and counted by answers received.
 * coturn is the baseline when it is installed (Debian package `coturn`); nothing is installed here.
 */
import { spawn, spawnSync } from 'node:child_process';
import { freePortRun } from '../../supernode/local/fleet';
import type { ChildHandle } from '../lib/children';
import { ofType, readProcessTreeCpuSeconds, sleep, spawnNode } from '../lib/children';
import { type BenchKeys, int, log, percent, startSupernode } from '../lib/env';
import type { PartResult, Row } from '../lib/load';
import type { StunGenConfig, StunGenDone } from '../stun-gen';

export interface StunOptions {
  generators: number;
  window: number;
  seconds: number;
  /** --stun-processes of the measured node; coturn runs one thread per core by default. */
  processes: number;
  /** Rounds of (ours, coturn), alternated: both figures move between runs, so each is a mean of rounds. */
  rounds: number;
}

const TARGET_RATIO = 0.8;

/** One load run; the server's CPU (its process and its children) is read over the same window. */
async function load(
  port: number,
  options: StunOptions,
  serverPid: number,
): Promise<{ perSecond: number; answers: number; sent: number; serverCpuSeconds: number }> {
  const gens: ChildHandle[] = [];
  const cpuBefore = readProcessTreeCpuSeconds(serverPid);
  try {
    for (let id = 0; id < options.generators; id++) {
      const config: StunGenConfig = {
        host: '127.0.0.1',
        port,
        seconds: options.seconds,
        window: options.window,
        id: id + 1,
      };
      gens.push(
        spawnNode({
          name: `stun-gen-${id}`,
          args: ['bench/stun-gen.ts'],
          env: { BENCH_CHILD_CONFIG: JSON.stringify(config) },
          ipc: true,
        }),
      );
    }
    const results = await Promise.all(
      gens.map((gen) =>
        gen.waitFor(ofType<StunGenDone>('stun-done'), (options.seconds + 30) * 1000, 'stun-done'),
      ),
    );
    const answers = results.reduce((n, r) => n + r.answers, 0);
    const sent = results.reduce((n, r) => n + r.sent, 0);
    const seconds = Math.max(...results.map((r) => r.seconds));
    // Read before the generators stop: the servers idle after, so the few ms of the stop add nothing.
    const serverCpuSeconds = readProcessTreeCpuSeconds(serverPid) - cpuBefore;
    return { perSecond: answers / seconds, answers, sent, serverCpuSeconds };
  } finally {
    await Promise.all(gens.map((gen) => gen.stop(1000)));
  }
}

/** coturn as the baseline, if `turnserver` is on PATH. */
function hasTurnserver(): boolean {
  return spawnSync('sh', ['-c', 'command -v turnserver'], { stdio: 'ignore' }).status === 0;
}

async function startCoturn(port: number) {
  const args = [
    '--stun-only',
    '--listening-ip=127.0.0.1',
    `--listening-port=${port}`,
    '--no-cli',
    '--no-tls',
    '--no-dtls',
    '--no-stdout-log',
    '--log-file=/dev/null',
    `--pidfile=/tmp/bench-turnserver-${port}.pid`,
  ];
  const child = spawn('turnserver', args, { stdio: 'ignore' });
  await sleep(1000);
  if (child.exitCode !== null) throw new Error(`turnserver exited at start (code ${child.exitCode})`);
  return { child, command: `turnserver ${args.join(' ')}` };
}

async function measureNode(keys: BenchKeys, options: StunOptions, processes: number) {
  const stunPort = await freePortRun(1, 'udp');
  log(
    'stun',
    `supernode STUN on UDP ${stunPort}, --stun-processes ${processes}: ${options.generators} generators, window ${options.window}, ${options.seconds} s`,
  );
  const node = await startSupernode('stun-node', keys, [
    '--stun',
    '--stun-port',
    String(stunPort),
    '--stun-processes',
    String(processes),
  ]);
  try {
    const result = await load(stunPort, options, node.child.pid);
    logResult(result);
    return result;
  } finally {
    await node.child.stop(2000);
  }
}

async function measureCoturn(options: StunOptions) {
  const port = await freePortRun(1, 'udp');
  const coturn = await startCoturn(port);
  try {
    log('stun', `coturn on UDP ${port}: ${coturn.command}`);
    const result = await load(port, options, coturn.child.pid as number);
    logResult(result);
    return { ...result, command: coturn.command };
  } finally {
    coturn.child.kill('SIGTERM');
  }
}

function logResult(result: Awaited<ReturnType<typeof load>>): void {
  log(
    'stun',
    `  ${int(result.perSecond)} answers/s (${int(result.answers)} of ${int(result.sent)} sent); server CPU ${result.serverCpuSeconds.toFixed(2)} s, ${int(result.answers / result.serverCpuSeconds)} answers per CPU-second`,
  );
}

type Measured = { perSecond: number; answers: number; serverCpuSeconds: number };
const mean = (rounds: Measured[]) => rounds.reduce((sum, r) => sum + r.perSecond, 0) / rounds.length;
/** Answers per second of the server's CPU, over all rounds together. */
const perCpuSecond = (rounds: Measured[]) =>
  rounds.reduce((sum, r) => sum + r.answers, 0) / rounds.reduce((sum, r) => sum + r.serverCpuSeconds, 0);
const eachRound = (rounds: Measured[]) =>
  rounds.length > 1 ? ` (rounds ${rounds.map((r) => int(r.perSecond)).join(', ')})` : '';

export async function runStun(keys: BenchKeys, options: StunOptions): Promise<PartResult> {
  const withCoturn = hasTurnserver();
  const ours: Measured[] = [];
  const theirs: Array<Measured & { command: string }> = [];
  for (let round = 0; round < options.rounds; round++) {
    ours.push(await measureNode(keys, options, options.processes));
    if (withCoturn) theirs.push(await measureCoturn(options));
  }
  // The node process alone, for reference: what the extra processes add.
  const single = options.processes > 1 ? await measureNode(keys, options, 1) : undefined;
  const rows: Row[] = [];
  const data: Record<string, unknown> = { supernode: ours, supernodeOneProcess: single, options };
  const what = `STUN Binding answers/s (${options.processes} process${options.processes > 1 ? 'es' : ''})`;
  const measured = `${int(mean(ours))}/s${eachRound(ours)}`;
  if (!withCoturn) {
    log('stun', '  baseline skipped: turnserver is not installed (apt-get install -y coturn)');
    rows.push({
      what,
      measured,
      baseline: 'coturn: not installed',
      ratio: 'n/a',
      target: `>=${TARGET_RATIO}x coturn`,
      verdict: 'no baseline (apt-get install -y coturn)',
    });
    return { rows, data: { ...data, coturn: 'skipped: turnserver not on PATH; apt-get install -y coturn' } };
  }
  const baseline = mean(theirs);
  const ratio = mean(ours) / baseline;
  rows.push({
    what,
    measured,
    baseline: `coturn ${int(baseline)}/s${eachRound(theirs)}`,
    ratio: percent(ratio),
    target: `>=${TARGET_RATIO}x coturn`,
    verdict: ratio >= TARGET_RATIO ? 'meets' : 'misses',
  });
  // Per core of the process under test: the generators share the 2 cores with the server, so the server
  // that spends less CPU per answer also leaves them more, and answers/s alone mixes the two.
  const perCpu = perCpuSecond(ours) / perCpuSecond(theirs);
  rows.push({
    what: '  answers per second of server CPU (all its processes or threads)',
    measured: `${int(perCpuSecond(ours))}`,
    baseline: `coturn ${int(perCpuSecond(theirs))}`,
    ratio: percent(perCpu),
    target: `>=${TARGET_RATIO}x coturn`,
    verdict: perCpu >= TARGET_RATIO ? 'meets' : 'misses',
  });
  if (single)
    rows.push({
      what: 'STUN Binding answers/s (node process alone)',
      measured: `${int(single.perSecond)}/s`,
      baseline: `coturn ${int(baseline)}/s`,
      ratio: percent(single.perSecond / baseline),
      target: '-',
      verdict: 'context',
    });
  return { rows, data: { ...data, coturn: theirs } };
}
