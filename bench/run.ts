/**
 * `npm run bench [-- --quick] [-- --only idle,setup,relay,login,mesh,stun,turn,directory]`: idle sessions and
 * their memory, session set-up rate against raw Ed25519 verification, relay throughput (one node and
 * across two meshed nodes) against a bare `ws` relay, the login storm against a naive baseline,
 * mesh lookup latency, STUN and TURN against coturn, and the directory simulation; prints a table and writes
 * bench/results/latest.json. See bench/README.md.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  clockTicksPerSecond,
  installCleanup,
  killAllChildren,
  REPO_ROOT,
  readMachineTicks,
  readOwnTreeCpuSeconds,
} from './lib/children';
import { type BenchKeys, machineFacts, makeBenchKeys } from './lib/env';
import type { PartResult, Row } from './lib/load';
import type { GeneratorClient } from './lib/messages';
import { runDirectoryPart, runLoginPart, runMeshPart } from './parts/extra';
import { type IdleOptions, runIdle } from './parts/idle';
import { type RelayOptions, runRelay } from './parts/relay';
import { runSetup, type SetupOptions } from './parts/setup';
import { runStun } from './parts/stun';
import { runTurnPart } from './parts/turn';

const PARTS = ['idle', 'setup', 'relay', 'login', 'mesh', 'stun', 'turn', 'directory'] as const;
type Part = (typeof PARTS)[number];

const USAGE = `Usage: npm run bench -- [--quick] [--only idle,setup,relay]

  --quick        smaller sizes (the whole run takes well under a minute)
  --only LIST    comma-separated parts to run: ${PARTS.join(', ')} (default: all)
  --ws-client    session generators use the \`ws\` client instead of the minimal one (costs the
                 generators several times more CPU per connection; set-up rates then measure them)
  --help         this text`;

interface Args {
  quick: boolean;
  client: GeneratorClient;
  only: Part[];
}

function parseArgs(argv: string[]): Args {
  const args: Args = { quick: false, client: 'raw', only: [...PARTS] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') args.quick = true;
    else if (arg === '--ws-client') args.client = 'ws';
    else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg === '--only' || arg.startsWith('--only=')) {
      const value = arg === '--only' ? argv[++i] : arg.slice('--only='.length);
      const list = (value ?? '')
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
      const unknown = list.filter((p) => !(PARTS as readonly string[]).includes(p));
      if (list.length === 0 || unknown.length > 0) {
        console.error(`bench: --only takes a list of ${PARTS.join(', ')}; got "${value ?? ''}"`);
        process.exit(2);
      }
      args.only = PARTS.filter((p) => list.includes(p));
    } else {
      console.error(`bench: unknown argument "${arg.slice(0, 40)}"\n\n${USAGE}`);
      process.exit(2);
    }
  }
  return args;
}

function sizes(
  quick: boolean,
  client: GeneratorClient,
): { idle: IdleOptions; setup: SetupOptions; relay: RelayOptions } {
  return {
    idle: quick
      ? {
          oneProcess: 2500,
          nodes: 2,
          perNode: 2500,
          concurrency: 200,
          client,
          settleMs: 1000,
          sampleGapMs: 250,
          fillTogether: 2,
          targetSessions: 100_000,
          quick,
        }
      : {
          oneProcess: 19_000,
          nodes: 6,
          perNode: 16_667,
          concurrency: 200,
          client,
          settleMs: 5000,
          sampleGapMs: 1000,
          fillTogether: 2,
          targetSessions: 100_000,
          quick,
        },
    setup: quick
      ? { sessions: 2500, generators: 2, concurrency: 128, client, rawMs: 1000, quick }
      : { sessions: 16_000, generators: 2, concurrency: 128, client, rawMs: 3000, quick },
    relay: quick
      ? { pairs: 4, window: 1000, payloadBytes: 64, warmupMs: 300, measureMs: 1500, rounds: 1, quick }
      : { pairs: 4, window: 1000, payloadBytes: 64, warmupMs: 1000, measureMs: 4000, rounds: 3, quick },
  };
}

function commandLine(argv: string[]): string {
  const rest = argv.length ? ` -- ${argv.join(' ')}` : '';
  return process.env.npm_lifecycle_event === 'bench'
    ? `npm run bench${rest}`
    : `tsx bench/run.ts${argv.length ? ` ${argv.join(' ')}` : ''}`;
}

function renderTable(rows: Row[]): string {
  const header: Row = {
    what: 'what',
    measured: 'measured',
    baseline: 'baseline',
    ratio: 'ratio',
    target: 'target',
    verdict: '',
  };
  const columns: Array<keyof Row> = ['what', 'measured', 'baseline', 'ratio', 'target', 'verdict'];
  const all = [header, ...rows];
  const width = (c: keyof Row): number => Math.max(...all.map((r) => r[c].length));
  const line = (r: Row): string =>
    columns
      .map((c, i) => (i === 0 || c === 'verdict' ? r[c].padEnd(width(c)) : r[c].padStart(width(c))))
      .join('  ')
      .trimEnd();
  return all.map(line).join('\n');
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  const command = commandLine(argv);
  const started = Date.now();
  const machine = machineFacts();
  let keys: BenchKeys | undefined;
  installCleanup(() => keys?.cleanup());
  keys = await makeBenchKeys();
  const plan = sizes(args.quick, args.client);

  process.stderr.write(
    `bench: ${command}\nbench: node ${machine.node}, ${machine.cpus} CPUs (${machine.cpuModel}), fd limit ${machine.fdLimit}\n`,
  );
  const rows: Row[] = [];
  const parts: Record<string, unknown> = {};
  let failed = 0;
  const otherLoad: string[] = [];
  for (const part of args.only) {
    const partStarted = Date.now();
    const machineBefore = readMachineTicks();
    const ownBefore = readOwnTreeCpuSeconds();
    try {
      let result: PartResult;
      if (part === 'idle') result = await runIdle(keys, plan.idle);
      else if (part === 'setup') result = await runSetup(keys, plan.setup);
      else if (part === 'relay') result = await runRelay(keys, plan.relay);
      else if (part === 'login') result = await runLoginPart(args.quick);
      else if (part === 'mesh') result = await runMeshPart(args.quick);
      else if (part === 'stun')
        result = await runStun(keys, {
          generators: 3,
          window: 64,
          seconds: args.quick ? 3 : 8,
          processes: 2,
          rounds: args.quick ? 1 : 2,
        });
      else if (part === 'turn') result = await runTurnPart(args.quick);
      else result = await runDirectoryPart(args.quick);
      rows.push(...result.rows);
      const elapsed = (Date.now() - partStarted) / 1000;
      const machineAfter = readMachineTicks();
      const machineCpu = (machineAfter.busy - machineBefore.busy) / clockTicksPerSecond();
      const ownCpu = readOwnTreeCpuSeconds() - ownBefore;
      // CPU the rest of the machine used meanwhile (other users' tests, builds): noise in the figures.
      const otherCores = Math.max(0, (machineCpu - ownCpu) / elapsed);
      otherLoad.push(`${part} ${otherCores.toFixed(2)}`);
      process.stderr.write(
        `[${part}] took ${elapsed.toFixed(1)} s; other processes used ${otherCores.toFixed(2)} cores meanwhile\n`,
      );
      parts[part] = {
        ...result.data,
        seconds: Math.round(elapsed * 10) / 10,
        benchCpuSeconds: Math.round(ownCpu * 10) / 10,
        otherProcessesCores: Math.round(otherCores * 100) / 100,
      };
    } catch (err) {
      failed++;
      const message = (err as Error).message ?? String(err);
      process.stderr.write(`[${part}] FAILED: ${(err as Error).stack ?? message}\n`);
      rows.push({
        what: part,
        measured: 'FAILED',
        baseline: '',
        ratio: '',
        target: '',
        verdict: message.split('\n')[0].slice(0, 80),
      });
      parts[part] = { error: message };
      killAllChildren();
    }
  }
  const seconds = Math.round((Date.now() - started) / 100) / 10;

  const notes = [
    args.only.includes('idle')
      ? 'idle: one process may hold at most 20,000 fds, so the 100,000-session target is measured across several node processes (fd-limit workaround); KiB = RSS delta / sessions held'
      : '',
    args.only.includes('setup')
      ? 'setup: ratio = session set-ups/s (connect, token check, register, welcome) / raw Ed25519 verifications/s on one thread'
      : '',
    args.only.includes('relay')
      ? 'relay: supernode run with --messages-per-second and --message-burst 1000000 so rate limits do not throttle; same pairs, window and bytes as the bare ws relay'
      : '',
    args.quick ? 'quick run: reduced sizes, figures are indicative only' : '',
    otherLoad.length
      ? `CPU used by other processes on this machine meanwhile (cores, average): ${otherLoad.join(', ')}`
      : '',
  ].filter(Boolean);
  const table = renderTable(rows);
  const out = [
    '',
    table,
    '',
    ...notes.map((n) => `note: ${n}`),
    `machine: node ${machine.node}, os.cpus().length ${machine.cpus}, CPU ${machine.cpuModel}, ${machine.totalMemGiB} GiB RAM, fd limit ${machine.fdLimit}`,
    `took: ${seconds} s`,
    `command: ${command}`,
    '',
  ].join('\n');
  process.stdout.write(out);

  const resultsDir = join(REPO_ROOT, 'bench', 'results');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, 'latest.json');
  writeFileSync(
    file,
    `${JSON.stringify({ command, startedAt: new Date(started).toISOString(), seconds, quick: args.quick, parts: args.only, machine, table: rows, notes, results: parts }, null, 2)}\n`,
  );
  process.stdout.write(`results: ${file.replace(`${REPO_ROOT}/`, '')}\n`);
  keys.cleanup();
  if (failed > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).stack ?? String(err)}\n`);
  killAllChildren();
  process.exit(1);
});
