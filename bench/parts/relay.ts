import { freePortRun } from '../../supernode/local/fleet';
import { type ChildHandle, ofType, readCpuSeconds, sleep, spawnNode } from '../lib/children';
import {
  type BenchKeys,
  fixed,
  int,
  log,
  nextSourceBlock,
  percent,
  startBareServer,
  startSupernode,
} from '../lib/env';
import { type PartResult, type Row, stopAll } from '../lib/load';
import {
  CONFIG_ENV,
  type RelayDone,
  type RelayGenConfig,
  type RelayMark,
  type RelayMode,
  type RelayReady,
  wallMs,
} from '../lib/messages';

export interface RelayOptions {
  pairs: number;
  window: number;
  payloadBytes: number;
  warmupMs: number;
  measureMs: number;
  /** Rounds of (bare, supernode), interleaved; the best round of each counts. */
  rounds: number;
  quick: boolean;
}

const TARGET_RATIO = 0.5;
const CROSS_TARGET_RATIO = 0.3;
const RATE_LIMIT = '1000000';

interface RelayRun {
  mode: RelayMode;
  msgsPerSecond: number;
  received: number;
  elapsedMs: number;
  /** CPU used during the measured window, in percent of one core. */
  serverCpuPercent: number;
  generatorCpuPercent: number;
  senderErrors: Record<string, number>;
  unexpectedFrames: number;
  missing: number;
}

async function runOnce(
  keys: BenchKeys,
  mode: RelayMode,
  round: number,
  options: RelayOptions,
): Promise<RelayRun & { command: string }> {
  let server: { child: ChildHandle; pid: number; url: string } | undefined;
  let gen: ChildHandle | undefined;
  try {
    server =
      mode === 'bare'
        ? await startBareServer(`relay-bare-${round}`, 'relay')
        : await startSupernode(`relay-node-${round}`, keys, [
            '--messages-per-second',
            RATE_LIMIT,
            '--message-burst',
            RATE_LIMIT,
          ]);
    const config: RelayGenConfig = {
      mode,
      url: server.url,
      pairs: options.pairs,
      window: options.window,
      payloadBytes: options.payloadBytes,
      warmupMs: options.warmupMs,
      measureMs: options.measureMs,
      keyFile: mode === 'supernode' ? keys.keyFile : undefined,
      userPrefix: `relay-${round}`,
      localAddresses: nextSourceBlock(),
    };
    gen = spawnNode({
      name: `relay-gen-${mode}-${round}`,
      args: ['bench/gen-relay.ts'],
      env: { [CONFIG_ENV]: JSON.stringify(config) },
      ipc: true,
    });
    await gen.waitFor(ofType<RelayReady>('ready'), 60_000, 'ready');
    gen.send({ type: 'go' });
    const isStart = (m: unknown): m is RelayMark => ofType<RelayMark>('measure-start')(m);
    const isEnd = (m: unknown): m is RelayMark => ofType<RelayMark>('measure-end')(m);
    await gen.waitFor(isStart, options.warmupMs + 30_000, 'measure-start');
    const cpu0 = readCpuSeconds(server.pid);
    const genCpu0 = readCpuSeconds(gen.pid);
    const t0 = wallMs();
    await gen.waitFor(isEnd, options.measureMs + 30_000, 'measure-end');
    const cpu1 = readCpuSeconds(server.pid);
    const genCpu1 = readCpuSeconds(gen.pid);
    const t1 = wallMs();
    const done = await gen.waitFor(ofType<RelayDone>('done'), 30_000, 'done');
    const run: RelayRun = {
      mode,
      msgsPerSecond: (done.received / done.elapsedMs) * 1000,
      received: done.received,
      elapsedMs: done.elapsedMs,
      serverCpuPercent: ((cpu1 - cpu0) / ((t1 - t0) / 1000)) * 100,
      generatorCpuPercent: ((genCpu1 - genCpu0) / ((t1 - t0) / 1000)) * 100,
      senderErrors: done.senderErrors,
      unexpectedFrames: done.unexpectedFrames,
      missing: done.missing,
    };
    log(
      'relay',
      `  ${mode.padEnd(9)} round ${round + 1}: ${int(run.msgsPerSecond)} msgs/s (CPU: server ${fixed(run.serverCpuPercent, 0)}%, generator ${fixed(run.generatorCpuPercent, 0)}%)` +
        (Object.keys(done.senderErrors).length ? `, errors ${JSON.stringify(done.senderErrors)}` : '') +
        (done.missing ? `, ${done.missing} missing` : ''),
    );
    return { ...run, command: server.child.commandLine };
  } finally {
    await stopAll([gen, server?.child]);
  }
}

/**
 * Cross-node relay: two meshed nodes, every sender on the first and every receiver on the second,
 * so each frame takes client -> node A -> mesh link -> node B -> client. Same generator, pairs,
 * window and bytes as the single-node runs.
 */
async function runCrossNode(keys: BenchKeys, options: RelayOptions): Promise<RelayRun & { command: string }> {
  const meshPorts = [await freePortRun(1), await freePortRun(1)];
  const peers = meshPorts.map((port, i) => `relay-mesh-${i}@ws://127.0.0.1:${port}`).join(',');
  const nodes: Array<{ child: ChildHandle; pid: number; url: string }> = [];
  let gen: ChildHandle | undefined;
  try {
    for (const [i, port] of meshPorts.entries()) {
      nodes.push(
        await startSupernode(`relay-mesh-${i}`, keys, [
          ...['--messages-per-second', RATE_LIMIT, '--message-burst', RATE_LIMIT],
          ...['--mesh', '--mesh-port', String(port), '--mesh-peers', peers],
          ...['--mesh-secret', 'bench-mesh-secret-0123456789abcdefghij'],
        ]),
      );
    }
    // Both nodes see each other before any session registers.
    for (let i = 0; i < 100; i++) {
      const text = await (await fetch(`${nodes[0].url.replace('ws', 'http')}/metrics`)).text();
      if (/^supernode_mesh_members 2$/m.test(text)) break;
      await sleep(100);
    }
    const config: RelayGenConfig = {
      mode: 'supernode',
      url: nodes[0].url,
      receiverUrl: nodes[1].url,
      pairs: options.pairs,
      window: options.window,
      payloadBytes: options.payloadBytes,
      warmupMs: options.warmupMs,
      measureMs: options.measureMs,
      keyFile: keys.keyFile,
      userPrefix: 'relay-x',
      localAddresses: nextSourceBlock(),
    };
    gen = spawnNode({
      name: 'relay-gen-cross',
      args: ['bench/gen-relay.ts'],
      env: { [CONFIG_ENV]: JSON.stringify(config) },
      ipc: true,
    });
    await gen.waitFor(ofType<RelayReady>('ready'), 60_000, 'ready');
    await sleep(500); // receivers' registrations reach the directory
    gen.send({ type: 'go' });
    await gen.waitFor(
      (m: unknown): m is RelayMark => ofType<RelayMark>('measure-start')(m),
      options.warmupMs + 30_000,
      'measure-start',
    );
    const cpu0 = nodes.map((n) => readCpuSeconds(n.pid));
    const t0 = wallMs();
    await gen.waitFor(
      (m: unknown): m is RelayMark => ofType<RelayMark>('measure-end')(m),
      options.measureMs + 30_000,
      'measure-end',
    );
    const cpu1 = nodes.map((n) => readCpuSeconds(n.pid));
    const t1 = wallMs();
    const done = await gen.waitFor(ofType<RelayDone>('done'), 30_000, 'done');
    const run: RelayRun = {
      mode: 'supernode',
      msgsPerSecond: (done.received / done.elapsedMs) * 1000,
      received: done.received,
      elapsedMs: done.elapsedMs,
      serverCpuPercent: ((cpu1[0] - cpu0[0] + cpu1[1] - cpu0[1]) / ((t1 - t0) / 1000)) * 100,
      generatorCpuPercent: 0,
      senderErrors: done.senderErrors,
      unexpectedFrames: done.unexpectedFrames,
      missing: done.missing,
    };
    log(
      'relay',
      `  cross-node: ${int(run.msgsPerSecond)} msgs/s (CPU of both nodes: ${fixed(run.serverCpuPercent, 0)}%)`,
    );
    return { ...run, command: nodes[0].child.commandLine };
  } finally {
    await stopAll([gen, ...nodes.map((n) => n.child)]);
  }
}

export async function runRelay(keys: BenchKeys, options: RelayOptions): Promise<PartResult> {
  log(
    'relay',
    `${options.pairs} sender->receiver pairs, ${options.payloadBytes}-byte payloads, window ${options.window}, ` +
      `${options.measureMs / 1000} s measured after ${options.warmupMs / 1000} s warm-up, ${options.rounds} round(s)`,
  );
  log(
    'relay',
    `supernode rate limits raised to ${RATE_LIMIT}/s and burst ${RATE_LIMIT} so they do not throttle`,
  );
  const runs: Array<RelayRun & { command: string }> = [];
  for (let round = 0; round < options.rounds; round++) {
    runs.push(await runOnce(keys, 'bare', round, options));
    runs.push(await runOnce(keys, 'supernode', round, options));
  }
  const best = (mode: RelayMode): RelayRun & { command: string } =>
    runs.filter((r) => r.mode === mode).reduce((a, b) => (b.msgsPerSecond > a.msgsPerSecond ? b : a));
  const bare = best('bare');
  const node = best('supernode');
  const ratio = node.msgsPerSecond / bare.msgsPerSecond;
  const crossRuns: Array<RelayRun & { command: string }> = [];
  for (let round = 0; round < options.rounds; round++) crossRuns.push(await runCrossNode(keys, options));
  const cross = crossRuns.reduce((a, b) => (b.msgsPerSecond > a.msgsPerSecond ? b : a));
  const crossRatio = cross.msgsPerSecond / bare.msgsPerSecond;
  const crossErrors = crossRuns.reduce(
    (s, r) => s + Object.values(r.senderErrors).reduce((x, y) => x + y, 0),
    0,
  );
  const errors = runs
    .filter((r) => r.mode === 'supernode')
    .reduce((s, r) => s + Object.values(r.senderErrors).reduce((x, y) => x + y, 0), 0);
  const rows: Row[] = [
    {
      what: `relayed ${options.payloadBytes} B msgs, ${options.pairs} pairs`,
      measured: `${int(node.msgsPerSecond)}/s`,
      baseline: `bare ws ${int(bare.msgsPerSecond)}/s`,
      ratio: percent(ratio),
      target: `>=${percent(TARGET_RATIO)}`,
      verdict: errors > 0 ? `${errors} relay errors` : ratio >= TARGET_RATIO ? 'meets' : 'misses',
    },
    {
      what: `relayed ${options.payloadBytes} B msgs across 2 meshed nodes`,
      measured: `${int(cross.msgsPerSecond)}/s`,
      baseline: `bare ws ${int(bare.msgsPerSecond)}/s`,
      ratio: percent(crossRatio),
      target: `>=${percent(CROSS_TARGET_RATIO)}`,
      verdict:
        crossErrors > 0
          ? `${crossErrors} relay errors`
          : crossRatio >= CROSS_TARGET_RATIO
            ? 'meets'
            : 'misses',
    },
    {
      what: '  server CPU during the best runs',
      measured: `${fixed(node.serverCpuPercent, 0)}%`,
      baseline: `bare ws ${fixed(bare.serverCpuPercent, 0)}%`,
      ratio: '',
      target: 'context',
      verdict: '',
    },
  ];
  return {
    rows,
    data: {
      note: `supernode started with --messages-per-second ${RATE_LIMIT} --message-burst ${RATE_LIMIT} so its rate limits do not throttle the benchmark; best of ${options.rounds} interleaved round(s) per side`,
      supernode: node,
      crossNode: cross,
      crossNodeRatio: crossRatio,
      bareWs: bare,
      ratio,
      runs,
      options,
    },
  };
}
