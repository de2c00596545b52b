/**
 * TURN benchmark: our TurnServer against coturn's turnserver, side by side in one run, both driven by
 * the same load generator, coturn's turnutils_uclient, with coturn's turnutils_peer as the UDP echo
 * peer. Prints what it measured and every command it ran; asserts nothing.
 *
 *   npx tsx bench/turn.ts            # about 2 minutes on 2 cores
 *   npx tsx bench/turn.ts --quick    # smaller, under a minute; indicative only
 *
 * Figures:
 * - set-up rate: uclient sessions set up per second by several uclient processes at once, each session
 *   two Allocates (its "probe" and its real one), each answered by a 401 challenge first, a Refresh and
 *   four ChannelBinds; reported as Allocates per second.
 * - relay: many allocations, each sending 100-byte ChannelData at a fixed rate to the echo peer and
 *   back. Reported: packets delivered and lost (as uclient counts them), relayed packets per second
 *   (both directions), the server's CPU, and relayed packets per CPU-second of the server process, the
 *   figure that says how much one core relays.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { accessSync, constants, readFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { stunBinding } from '../supernode/stun/client';
import { TurnServer, type TurnServerOptions, type TurnServerStats } from '../supernode/turn/server';
import { type ChildHandle, installCleanup, ofType, readCpuSeconds, sleep, spawnNode } from './lib/children';
import { fixed, int, log, machineFacts } from './lib/env';
import { TURN_RESULT_PREFIX } from './lib/messages';

const SECRET = 'bench-secret';
const REALM = 'bench';
const HOST = '127.0.0.1';
const quick = process.argv.includes('--quick');
/** `--engine dgram` measures the JavaScript relay instead of the native fast path (docs/turn.md). */
const engineArg = process.argv.indexOf('--engine');
const engine = (engineArg > 0 ? process.argv[engineArg + 1] : 'native') as 'native' | 'dgram';
if (engine !== 'native' && engine !== 'dgram') throw new Error('--engine takes native or dgram');

interface Load {
  sessions: number;
  intervalMs: number;
  messages: number;
}

interface Plan {
  setupProcesses: number;
  setupSessionsEach: number;
  /** Steady load well within both servers: the CPU each spends per relayed packet. */
  steady: Load;
  /** As much as uclient can offer: the most each relays per second, and what it loses. */
  saturate: Load;
}

const PLAN: Plan = quick
  ? {
      setupProcesses: 8,
      setupSessionsEach: 25,
      steady: { sessions: 50, intervalMs: 20, messages: 150 },
      saturate: { sessions: 50, intervalMs: 1, messages: 2000 },
    }
  : {
      setupProcesses: 16,
      setupSessionsEach: 60,
      steady: { sessions: 200, intervalMs: 20, messages: 500 },
      saturate: { sessions: 100, intervalMs: 1, messages: 5000 },
    };

// ---- tools and processes ----------------------------------------------------------------------

function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    try {
      accessSync(join(dir, name), constants.X_OK);
      return join(dir, name);
    } catch {
      // not here
    }
  }
  return undefined;
}

const commands: string[] = [];
const running = new Set<ChildProcess>();
installCleanup(() => {
  for (const child of running) child.kill('SIGKILL');
});

/** A process of coturn's, its output kept, killed on exit and after `timeoutMs`. */
function start(tool: string, args: string[], timeoutMs: number) {
  const child = spawn(tool, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  commands.push([tool, ...args].join(' '));
  let output = '';
  const lines: Array<(line: string) => void> = [];
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    for (const line of chunk.toString().split('\n')) for (const listener of lines) listener(line);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<number | null>((resolve) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      running.delete(child);
      resolve(code);
    }),
  );
  return {
    child,
    exited,
    output: () => output,
    onLine: (listener: (line: string) => void) => lines.push(listener),
    exitCode: () => child.exitCode,
    kill: () => child.kill('SIGKILL'),
  };
}

interface Server {
  name: string;
  port: number;
  pid: number;
  relayPorts: [number, number];
  /** Our server's own counters (coturn has none to read here). */
  stats?: () => Promise<TurnServerStats>;
  stop(): Promise<void>;
}

async function waitForStun(port: number): Promise<void> {
  for (let attempt = 0; attempt < 50; attempt++) {
    try {
      await stunBinding(HOST, port, { timeoutMs: 200, retries: 1 });
      return;
    } catch {
      await sleep(100);
    }
  }
  throw new Error(`no STUN answer on ${HOST}:${port}`);
}

let nextPort = 19_000;
const portBase = () => {
  nextPort += 10;
  return nextPort;
};

async function startOurs(): Promise<Server> {
  const port = portBase();
  const options: TurnServerOptions = {
    host: HOST,
    port,
    realm: REALM,
    secrets: [SECRET],
    allowPeers: [HOST],
    minPort: 20_000,
    maxPort: 25_999,
    maxAllocations: 100_000,
    maxAllocationsPerUser: 100_000,
    // Limits high enough never to bite, so the token buckets still run as they would in production.
    allocationBandwidth: 1e9,
    userBandwidth: 1e9,
    relayEngine: engine,
  };
  const child: ChildHandle = spawnNode({
    name: 'turnserver-ours',
    args: ['bench/turn.ts', '--serve', JSON.stringify(options)],
    ipc: true,
  });
  commands.push(child.commandLine);
  await child.waitFor(ofType<{ port: number }>('listening'), 10_000, 'listening');
  return {
    name: `TurnServer (ours, ${engine})`,
    port,
    relayPorts: [20_000, 25_999],
    pid: child.pid,
    stats: async () => {
      child.send({ type: 'stats' });
      return (await child.waitFor(ofType<{ stats: TurnServerStats }>('stats'), 5000, 'stats')).stats;
    },
    stop: () => child.stop(3000, true),
  };
}

async function startCoturn(turnserver: string): Promise<Server> {
  const port = portBase();
  const proc = start(
    turnserver,
    [
      '-n',
      `--listening-ip=${HOST}`,
      `--listening-port=${port}`,
      `--relay-ip=${HOST}`,
      '--min-port=26000',
      '--max-port=31999',
      '--use-auth-secret',
      `--static-auth-secret=${SECRET}`,
      `--realm=${REALM}`,
      '--allow-loopback-peers',
      '--no-tls',
      '--no-dtls',
      '--no-cli',
      '--no-tcp-relay',
      '--log-file=/dev/null',
      '--no-stdout-log',
      `--pidfile=/tmp/turnbench-${process.pid}.pid`,
    ],
    30 * 60_000,
  );
  await waitForStun(port);
  return {
    name: 'coturn turnserver',
    port,
    relayPorts: [26_000, 31_999],
    pid: proc.child.pid as number,
    stop: async () => {
      proc.child.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill(), 3000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}

// ---- the measurements -------------------------------------------------------------------------

/** UDP sockets bound on 127.0.0.1 with a port in [min, max]: a server's relay sockets, one per allocation. */
function relaySockets([min, max]: [number, number]): number {
  let count = 0;
  for (const file of ['/proc/net/udp', '/proc/net/udp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const local = line.trim().split(/\s+/)[1];
      const port = local ? Number.parseInt(local.slice(local.lastIndexOf(':') + 1), 16) : Number.NaN;
      if (port >= min && port <= max) count++;
    }
  }
  return count;
}

/** One uclient run against `server`: no RTCP pairs (-c), the echo peer, credentials from the secret. */
function uclientArgs(server: Server, peerPort: number, user: string, more: string[]): string[] {
  const target = ['-e', HOST, '-r', String(peerPort), '-p', String(server.port)];
  return ['-c', ...target, ...more, '-W', SECRET, '-u', user, HOST];
}

export interface SetupResult {
  allocates: number;
  seconds: number;
  perSecond: number;
}

/**
 * Several uclients at once, each setting up its sessions one after another (uclient's own pacing sleeps
 * 0.7 ms per session); timed until the server holds all the relay sockets.
 */
async function measureSetup(uclient: string, server: Server, peerPort: number): Promise<SetupResult> {
  const before = relaySockets(server.relayPorts);
  const started = Date.now();
  const procs = Array.from({ length: PLAN.setupProcesses }, (_, i) =>
    start(
      uclient,
      // Its own source address per uclient: each closes its "probe" socket but the probe's allocation
      // stays; a later socket given the same port then gets 437 and uclient sleeps a second to retry.
      uclientArgs(server, peerPort, `setup${i}`, [
        '-L',
        `127.1.${i}.1`,
        '-n',
        '1',
        '-m',
        String(PLAN.setupSessionsEach),
      ]),
      120_000,
    ),
  );
  // Done when every uclient has set up all its sessions, or given up: uclient exits when two of its
  // random channel numbers collide (a correct 400 from either server). What the server holds is counted.
  const settled = procs.map(() => false);
  procs.forEach((proc, i) => {
    proc.onLine((line) => {
      if (line.includes('Total connect time')) settled[i] = true;
    });
    proc.exited.then(() => {
      settled[i] = true;
    });
  });
  let count = 0;
  let lastGrowth = started;
  while (Date.now() - started < 120_000 && !settled.every(Boolean)) {
    // Reading /proc/net/udp walks every UDP socket of the machine: not too often, or it competes.
    await sleep(100);
    const now = relaySockets(server.relayPorts) - before;
    if (now > count) lastGrowth = Date.now();
    count = Math.max(count, now);
  }
  for (const proc of procs) proc.kill();
  const seconds = (lastGrowth - started) / 1000;
  return { allocates: count, seconds, perSecond: count / seconds };
}

export interface RelayResult {
  load: Load;
  sent: number;
  received: number;
  lossPercent: number;
  /** Delivered messages per second in uclient's best one-second interval, times two (both ways relayed). */
  peakRelayedPerSecond: number;
  serverCpuPercent: number;
  relayedPerCpuSecond: number;
  /** Our server's drops by reason (nonzero only), where it can tell. */
  drops?: Record<string, number>;
}

async function measureRelay(
  uclient: string,
  server: Server,
  peerPort: number,
  load: Load,
): Promise<RelayResult> {
  const cpuBefore = readCpuSeconds(server.pid);
  const started = Date.now();
  const loadArgs = [
    '-n',
    String(load.messages),
    '-m',
    String(load.sessions),
    '-z',
    String(load.intervalMs),
    '-l',
    '100',
  ];
  const proc = start(uclient, uclientArgs(server, peerPort, 'relay', loadArgs), 300_000);
  // uclient prints its running totals about once a second; the best interval is the peak rate.
  const samples: Array<{ at: number; received: number }> = [];
  proc.onLine((line) => {
    const match = /msz=\d+, tot_send_msgs=\d+, tot_recv_msgs=(\d+)/.exec(line);
    if (match) samples.push({ at: Date.now(), received: Number(match[1]) });
  });
  const code = await proc.exited;
  const seconds = (Date.now() - started) / 1000;
  const cpu = readCpuSeconds(server.pid) - cpuBefore;
  const output = proc.output();
  const totals = /start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)/.exec(output);
  if (code !== 0 || !totals) throw new Error(`uclient failed (exit ${code}):\n${output.slice(-2000)}`);
  const sent = Number(totals[1]);
  const received = Number(totals[2]);
  const stats = await server.stats?.();
  const drops = stats && Object.fromEntries(Object.entries(stats.dropped).filter(([, n]) => n > 0));
  let peak = 0;
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].at - samples[i - 1].at) / 1000;
    if (dt > 0.5) peak = Math.max(peak, (samples[i].received - samples[i - 1].received) / dt);
  }
  // Each delivered message was relayed twice: client -> peer and peer -> client.
  return {
    load,
    sent,
    received,
    lossPercent: sent > 0 ? ((sent - received) / sent) * 100 : 0,
    peakRelayedPerSecond: 2 * peak,
    serverCpuPercent: (cpu / seconds) * 100,
    relayedPerCpuSecond: (2 * received) / cpu,
    drops,
  };
}

export interface ServerResult {
  name: string;
  setup: SetupResult;
  steady: RelayResult;
  saturate: RelayResult;
}

/** Each phase on a fresh server, so one phase's leftovers (uclient's probe allocations) do not weigh on the next. */
async function runServer(
  name: string,
  make: () => Promise<Server>,
  uclient: string,
  peerPort: number,
): Promise<ServerResult> {
  const phase = async <T>(what: string, measure: (server: Server) => Promise<T>): Promise<T> => {
    const server = await make();
    log('turn', `${name}: ${what}`);
    try {
      return await measure(server);
    } finally {
      await server.stop();
    }
  };
  const setup = await phase('set-up rate', (server) => measureSetup(uclient, server, peerPort));
  const steady = await phase('steady relay', (server) =>
    measureRelay(uclient, server, peerPort, PLAN.steady),
  );
  const saturate = await phase('saturating relay', (server) =>
    measureRelay(uclient, server, peerPort, PLAN.saturate),
  );
  return { name, setup, steady, saturate };
}

// ---- main -----------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const uclient = which('turnutils_uclient');
  const peerTool = which('turnutils_peer');
  const turnserver = which('turnserver');
  if (!uclient || !peerTool) {
    process.stdout.write(
      'bench/turn: the load generator (turnutils_uclient, turnutils_peer) is missing: apt-get install -y coturn\n',
    );
    process.exit(1);
  }
  const began = Date.now();
  const peerPort = 18_990;
  const peer = start(peerTool, ['-L', HOST, '-p', String(peerPort)], 30 * 60_000);
  await sleep(300);

  const ours = await runServer(`TurnServer (ours, ${engine})`, startOurs, uclient, peerPort);
  const coturn = turnserver
    ? await runServer('coturn turnserver', () => startCoturn(turnserver), uclient, peerPort)
    : undefined;
  peer.kill();

  const ratio = (a: number, b: number | undefined) => (b ? `${fixed(a / b, 2)}x` : '');
  const pair = (f: (r: ServerResult) => string): [string, string] => [f(ours), coturn ? f(coturn) : ''];
  const rows: string[][] = [['what', ours.name, coturn?.name ?? 'coturn (skipped)', 'ours / coturn']];
  rows.push([
    `set-up: Allocates/s (${PLAN.setupProcesses} uclients x ${PLAN.setupSessionsEach} sessions, 2 each)`,
    ...pair((r) => `${int(r.setup.perSecond)}/s (${int(r.setup.allocates)} in ${fixed(r.setup.seconds)} s)`),
    ratio(ours.setup.perSecond, coturn?.setup.perSecond),
  ]);
  for (const key of ['steady', 'saturate'] as const) {
    const { load } = ours[key];
    const rate = int(1000 / load.intervalMs);
    rows.push([
      `relay ${key === 'steady' ? 'steady' : 'flat out'}: ${load.sessions} allocations x ${rate} pkt/s offered, 100 B ChannelData`,
      '',
      '',
      '',
    ]);
    rows.push([
      '  delivered / sent (loss)',
      ...pair((r) => `${int(r[key].received)} / ${int(r[key].sent)} (${fixed(r[key].lossPercent, 2)}%)`),
      '',
    ]);
    rows.push([
      '  relayed packets/s, best second, both ways',
      ...pair((r) => int(r[key].peakRelayedPerSecond)),
      ratio(ours[key].peakRelayedPerSecond, coturn?.[key].peakRelayedPerSecond),
    ]);
    rows.push(['  server CPU, % of one core', ...pair((r) => `${fixed(r[key].serverCpuPercent)}%`), '']);
    rows.push(['  dropped by our server', JSON.stringify(ours[key].drops ?? {}), '', '']);
    rows.push([
      '  relayed packets per server CPU-second',
      ...pair((r) => int(r[key].relayedPerCpuSecond)),
      ratio(ours[key].relayedPerCpuSecond, coturn?.[key].relayedPerCpuSecond),
    ]);
  }
  const widths = rows[0].map((_, c) => Math.max(...rows.map((row) => row[c].length)));
  const table = rows.map((row) =>
    row.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]) : cell.padStart(widths[c]))).join('   '),
  );
  const out = [
    ...table,
    '',
    ...(turnserver
      ? []
      : ['baseline skipped: coturn turnserver is not on PATH. Install it with `apt-get install -y coturn`.']),
    `machine: ${JSON.stringify(machineFacts())}`,
    `took: ${Math.round((Date.now() - began) / 1000)} s`,
    `command: npx tsx bench/turn.ts${quick ? ' --quick' : ''}${engine === 'dgram' ? ' --engine dgram' : ''}`,
    'processes run:',
    ...[
      ...new Set(
        commands.map((c) =>
          c.replace(/"port":\d+|--listening-port=\d+|-p \d+ /g, (m) => m.replace(/\d+/, 'P')),
        ),
      ),
    ].map((c) => `  ${c}`),
  ];
  process.stdout.write(`${out.join('\n')}\n`);
  // For `npm run bench -- --only turn` (bench/parts/turn.ts), which reads the last line.
  process.stdout.write(`${TURN_RESULT_PREFIX}${JSON.stringify({ ours, coturn: coturn ?? null })}\n`);
  process.exit(0);
}

/** The TurnServer of a run, in its own process (as coturn's is), told what to do over IPC. */
function serve(): void {
  const options = JSON.parse(process.argv[3]) as TurnServerOptions;
  const server = new TurnServer(options);
  server.start().then(
    ({ port }) => process.send?.({ type: 'listening', port }),
    (err) => {
      process.stderr.write(`${err}\n`);
      process.exit(1);
    },
  );
  process.on('message', (message: { type: string }) => {
    if (message.type === 'stats') process.send?.({ type: 'stats', stats: server.stats });
    if (message.type === 'exit') server.close().then(() => process.exit(0));
  });
  process.on('disconnect', () => process.exit(0));
}

if (process.argv[2] === '--serve') serve();
else {
  main().catch((err) => {
    process.stderr.write(`bench/turn: ${err instanceof Error ? err.stack : err}\n`);
    process.exit(1);
  });
}
