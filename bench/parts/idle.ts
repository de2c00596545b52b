import { SESSION_PATH } from '../../supernode/protocol/messages';
import { type ChildHandle, ofType, readRssKiB, sleep } from '../lib/children';
import {
  type BareHandle,
  type BenchKeys,
  fixed,
  int,
  log,
  median,
  type NodeHandle,
  readyz,
  startBareServer,
  startSupernode,
} from '../lib/env';
import {
  type GenSpec,
  generatorsFor,
  type PartResult,
  type Row,
  splitCount,
  startSessionGen,
  stopAll,
  sumFailures,
  waitDone,
  waitReady,
} from '../lib/load';
import type { BareStats, GenDone, GeneratorClient } from '../lib/messages';

export interface IdleOptions {
  /** (a) sessions on one supernode process (and on the bare ws server). */
  oneProcess: number;
  /** (b) nodes and sessions per node for the multi-process total. */
  nodes: number;
  perNode: number;
  /** Connections in flight per generator. */
  concurrency: number;
  client: GeneratorClient;
  /** Wait after the last session before reading RSS, then 3 samples this far apart (median). */
  settleMs: number;
  sampleGapMs: number;
  /** Nodes filled at the same time in (b). */
  fillTogether: number;
  /** The design target (sessions per node at <= 16 KiB each). */
  targetSessions: number;
  quick: boolean;
}

const TARGET_KIB = 16;
const NODE_ARGS = ['--max-sessions', '1000000', '--heartbeat-ms', '300000', '--auth-timeout-ms', '60000'];

interface HeldResult {
  sessions: number;
  established: number;
  failed: number;
  failures: Record<string, number>;
  retries: number;
  rssBeforeKiB: number;
  rssAfterKiB: number;
  rssDeltaKiB: number;
  kibPerSession: number;
  /** With a halfway stop: RSS there, and KiB per session added between halfway and full. */
  halfway?: { sessions: number; rssKiB: number };
  marginalKiBPerSession?: number;
  fillSeconds: number;
  generatorRssKiB: number[];
}

/** Reads RSS a few times a second apart after the settle time; the median of the samples. */
async function settledRss(pid: number, settleMs: number, gapMs: number): Promise<number> {
  await sleep(settleMs);
  const samples: number[] = [];
  for (let i = 0; i < 3; i++) {
    if (i > 0) await sleep(gapMs);
    samples.push(readRssKiB(pid));
  }
  return median(samples);
}

function generatorSpecs(
  prefix: string,
  mode: GenSpec['mode'],
  url: string,
  count: number,
  keys: BenchKeys | undefined,
  concurrency: number,
  waitForGo: boolean,
  client: GeneratorClient,
): GenSpec[] {
  return splitCount(count, generatorsFor(count)).map((n, i) => ({
    name: `${prefix}-gen${i}`,
    mode,
    client,
    url,
    count: n,
    concurrency,
    keyFile: keys?.keyFile,
    userPrefix: `${prefix}-g${i}`,
    attempts: 3,
    timeoutMs: 30_000,
    waitForGo,
    deadlineMs: 240_000,
  }));
}

function summarize(
  done: GenDone[],
): Pick<HeldResult, 'established' | 'failed' | 'failures' | 'retries' | 'fillSeconds' | 'generatorRssKiB'> {
  const started = Math.min(...done.map((d) => d.startedAt));
  const last = Math.max(...done.map((d) => d.lastEstablishedAt));
  return {
    established: done.reduce((s, d) => s + d.established, 0),
    failed: done.reduce((s, d) => s + d.failed, 0),
    failures: sumFailures(done),
    retries: done.reduce((s, d) => s + d.retries, 0),
    fillSeconds: (last - started) / 1000,
    generatorRssKiB: done.map((d) => d.rssKiB),
  };
}

/** Supernodes that each get `perNode` sessions from their own generators (see fillTogether). */
async function holdOnSupernodes(
  part: string,
  keys: BenchKeys,
  nodeCount: number,
  perNode: number,
  options: IdleOptions,
): Promise<{ total: HeldResult; perNodeResults: HeldResult[]; command: string }> {
  const nodes: NodeHandle[] = [];
  const gens: ChildHandle[] = [];
  try {
    for (let i = 0; i < nodeCount; i++) nodes.push(await startSupernode(`${part}-node${i}`, keys, NODE_ARGS));
    await sleep(Math.min(1000, options.settleMs));
    const before = nodes.map((n) => readRssKiB(n.pid));
    log(
      part,
      `${nodeCount} node(s) up, RSS before any session: ${before.map((b) => `${int(b)} KiB`).join(', ')}`,
    );
    const gensByNode = nodes.map((node, i) =>
      generatorSpecs(
        `${part}-n${i}`,
        'supernode',
        `${node.url}${SESSION_PATH}`,
        perNode,
        keys,
        options.concurrency,
        true,
        options.client,
      ).map(startSessionGen),
    );
    for (const list of gensByNode) gens.push(...list);
    log(part, `${gens.length} generator process(es) minting ${int(nodeCount * perNode)} tokens`);
    await waitReady(gens, 180_000);
    let halfway: HeldResult['halfway'];
    if (nodeCount === 1) {
      // Stop halfway too: the slope between half and full is free of start-up and heap-slack effects.
      const halves = splitCount(perNode, gens.length).map((n) => Math.floor(n / 2));
      for (let i = 0; i < gens.length; i++) gens[i].send({ type: 'go', upTo: halves[i] });
      await waitDone(part, gens, perNode, 300_000);
      const rssKiB = await settledRss(nodes[0].pid, options.settleMs, options.sampleGapMs);
      halfway = { sessions: (await readyz(nodes[0].port)).sessions, rssKiB };
      log(part, `halfway: ${int(halfway.sessions)} sessions, RSS ${int(rssKiB)} KiB`);
    }
    // A few nodes at a time: 2 cores fill one or two nodes (and their generators) far better than
    // 18 busy processes at once.
    const done: GenDone[][] = [];
    for (let first = 0; first < nodes.length; first += options.fillTogether) {
      const wave = gensByNode.slice(first, first + options.fillTogether);
      if (nodes.length > 1) {
        const last = first + wave.length;
        log(
          part,
          `filling node${wave.length > 1 ? 's' : ''} ${first + 1}${wave.length > 1 ? `-${last}` : ''} of ${nodes.length}`,
        );
      }
      for (const g of wave.flat()) g.send({ type: 'go' });
      const results = await waitDone(part, wave.flat(), perNode * wave.length, 300_000);
      for (const list of wave) done.push(results.splice(0, list.length));
    }
    const after = await Promise.all(
      nodes.map((n) => settledRss(n.pid, options.settleMs, options.sampleGapMs)),
    );
    const held = await Promise.all(nodes.map((n) => readyz(n.port).then((r) => r.sessions)));
    const perNodeResults = nodes.map((_, i): HeldResult => {
      const delta = after[i] - before[i];
      return {
        sessions: held[i],
        ...summarize(done[i]),
        rssBeforeKiB: before[i],
        rssAfterKiB: after[i],
        rssDeltaKiB: delta,
        kibPerSession: delta / held[i],
      };
    });
    const all = done.flat();
    const sessions = held.reduce((s, n) => s + n, 0);
    const delta = perNodeResults.reduce((s, r) => s + r.rssDeltaKiB, 0);
    const total: HeldResult = {
      sessions,
      ...summarize(all),
      rssBeforeKiB: before.reduce((s, n) => s + n, 0),
      rssAfterKiB: after.reduce((s, n) => s + n, 0),
      rssDeltaKiB: delta,
      kibPerSession: delta / sessions,
    };
    if (halfway) {
      total.halfway = halfway;
      total.marginalKiBPerSession = (after[0] - halfway.rssKiB) / (sessions - halfway.sessions);
    }
    log(
      part,
      `held ${int(sessions)} sessions (${total.failed} failed), RSS delta ${int(delta)} KiB = ${fixed(total.kibPerSession, 2)} KiB/session` +
        (total.marginalKiBPerSession === undefined
          ? ''
          : `; halfway to full: ${fixed(total.marginalKiBPerSession, 2)} KiB/session`),
    );
    return { total, perNodeResults, command: nodes[0].child.commandLine };
  } finally {
    await stopAll([...gens, ...nodes.map((n) => n.child)]);
  }
}

async function holdOnBareServer(part: string, count: number, options: IdleOptions): Promise<HeldResult> {
  let server: BareHandle | undefined;
  const gens: ChildHandle[] = [];
  try {
    server = await startBareServer(`${part}-bare`, 'idle');
    await sleep(Math.min(1000, options.settleMs));
    const before = readRssKiB(server.pid);
    gens.push(
      ...generatorSpecs(
        part,
        'bare',
        `${server.url}/`,
        count,
        undefined,
        options.concurrency,
        true,
        options.client,
      ).map(startSessionGen),
    );
    const clients = async (): Promise<number> => {
      server?.child.send({ type: 'stats' });
      return (await (server as BareHandle).child.waitFor(ofType<BareStats>('stats'), 10_000, 'stats'))
        .clients;
    };
    await waitReady(gens, 60_000);
    const halves = splitCount(count, gens.length).map((n) => Math.floor(n / 2));
    for (let i = 0; i < gens.length; i++) gens[i].send({ type: 'go', upTo: halves[i] });
    await waitDone(part, gens, count, 300_000);
    const halfwayRss = await settledRss(server.pid, options.settleMs, options.sampleGapMs);
    const halfway = { sessions: await clients(), rssKiB: halfwayRss };
    for (const g of gens) g.send({ type: 'go' });
    const done = await waitDone(part, gens, count, 300_000);
    const after = await settledRss(server.pid, options.settleMs, options.sampleGapMs);
    const stats = { clients: await clients() };
    const delta = after - before;
    const marginal = (after - halfway.rssKiB) / (stats.clients - halfway.sessions);
    log(
      part,
      `bare ws held ${int(stats.clients)} connections, RSS delta ${int(delta)} KiB = ${fixed(delta / stats.clients, 2)} KiB/connection; halfway to full: ${fixed(marginal, 2)} KiB/connection`,
    );
    return {
      sessions: stats.clients,
      ...summarize(done),
      rssBeforeKiB: before,
      rssAfterKiB: after,
      rssDeltaKiB: delta,
      kibPerSession: delta / stats.clients,
      halfway,
      marginalKiBPerSession: marginal,
    };
  } finally {
    await stopAll([...gens, server?.child]);
  }
}

export async function runIdle(keys: BenchKeys, options: IdleOptions): Promise<PartResult> {
  log('idle', `(a) one supernode process, ${int(options.oneProcess)} sessions`);
  const one = await holdOnSupernodes('idle-a', keys, 1, options.oneProcess, options);
  log('idle', `bare ws server, ${int(options.oneProcess)} idle connections`);
  const bare = await holdOnBareServer('idle-bare', options.oneProcess, options);
  const total = options.nodes * options.perNode;
  log(
    'idle',
    `(b) ${options.nodes} supernode processes x ${int(options.perNode)} sessions (fd-limit workaround)`,
  );
  const multi = await holdOnSupernodes('idle-b', keys, options.nodes, options.perNode, options);

  const a = one.total;
  const b = multi.total;
  const kibVerdict = (r: HeldResult, expected: number): string =>
    r.sessions < expected
      ? `only ${int(r.sessions)} held`
      : r.kibPerSession <= TARGET_KIB
        ? 'meets'
        : 'misses';
  const rows: Row[] = [
    {
      what: 'idle sessions, one process',
      measured: `${int(a.sessions)} @ ${fixed(a.kibPerSession)} KiB`,
      baseline: `bare ws ${fixed(bare.kibPerSession)} KiB`,
      ratio: `${fixed(a.kibPerSession / bare.kibPerSession, 2)}x`,
      target: `<=${TARGET_KIB} KiB`,
      verdict: options.quick
        ? `${kibVerdict(a, options.oneProcess)} (quick size)`
        : kibVerdict(a, options.oneProcess),
    },
    {
      what: '  added per session, halfway to full',
      measured: `${fixed(a.marginalKiBPerSession ?? Number.NaN)} KiB`,
      baseline: `bare ws ${fixed(bare.marginalKiBPerSession ?? Number.NaN)} KiB`,
      ratio: `${fixed((a.marginalKiBPerSession ?? Number.NaN) / (bare.marginalKiBPerSession ?? Number.NaN), 2)}x`,
      target: 'context',
      verdict: '',
    },
    {
      what: `idle sessions, ${options.nodes} processes (fd workaround)`,
      measured: `${int(b.sessions)} @ ${fixed(b.kibPerSession)} KiB`,
      baseline: '',
      ratio: '',
      target: `${int(options.targetSessions)} @ <=${TARGET_KIB} KiB`,
      verdict: options.quick ? `${kibVerdict(b, total)} (quick size)` : kibVerdict(b, options.targetSessions),
    },
  ];
  return {
    rows,
    data: {
      note:
        'One process may hold at most 20,000 file descriptors, so (a) is one node at ~19,000 sessions and (b) ' +
        'reaches the 100,000-session target across several node processes; per-session RSS is the RSS delta ' +
        '(VmRSS after all sessions settled minus before any session) divided by sessions held.',
      oneProcess: { ...a, nodeCommand: one.command },
      bareWs: bare,
      multiProcess: {
        nodes: options.nodes,
        perNode: options.perNode,
        ...b,
        perNodeResults: multi.perNodeResults,
      },
      options,
    },
  };
}
