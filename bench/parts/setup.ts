import { createPublicKey, verify } from 'node:crypto';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { publicJwks, signAccessToken } from '../../supernode/auth/signing';
import { type PublicJwk, TrustedKeys, verifyAccessToken } from '../../supernode/node/access-token';
import { SESSION_PATH } from '../../supernode/protocol/messages';
import { type ChildHandle, machineBusyPercent, readCpuSplit, readMachineTicks, sleep } from '../lib/children';
import {
  type BareHandle,
  type BenchKeys,
  fixed,
  int,
  log,
  type NodeHandle,
  percent,
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
import { type GeneratorClient, wallMs } from '../lib/messages';

export interface SetupOptions {
  sessions: number;
  /** Generator processes (each holds its share of sessions open: fd limit). */
  generators: number;
  /** In flight per generator. */
  concurrency: number;
  client: GeneratorClient;
  rawMs: number;
  quick: boolean;
}

const TARGET_RATIO = 0.6;
const MAX_ITERATIONS = 100_000_000;

/** Single-threaded `crypto.verify` of an Ed25519 signature over a real token's signing input. */
async function measureRawVerify(
  keys: BenchKeys,
  durationMs: number,
): Promise<{ perSecond: number; count: number; ms: number }> {
  const token = await signAccessToken(keys.key, { sub: 'bench-raw', aud: 'supernode', ttlSec: 600 });
  const [header, payload, signature] = token.split('.');
  const data = Buffer.from(`${header}.${payload}`);
  const sig = Buffer.from(signature, 'base64url');
  const publicKey = createPublicKey({ key: keys.key.publicJwk as never, format: 'jwk' });
  if (!verify(null, data, publicKey, sig)) throw new Error('raw Ed25519 verification failed');
  for (let i = 0; i < 2000; i++) verify(null, data, publicKey, sig);
  let count = 0;
  const started = performance.now();
  const until = started + durationMs;
  let now = started;
  while (now < until && count < MAX_ITERATIONS) {
    for (let i = 0; i < 64; i++) verify(null, data, publicKey, sig);
    count += 64;
    now = performance.now();
  }
  const ms = now - started;
  return { perSecond: (count / ms) * 1000, count, ms };
}

/**
 * Token checks per second in this process, `inFlight` awaited concurrently: the node's own check
 * (verifyAccessToken: node:crypto on a cached KeyObject, synchronous) and, for comparison, jose's
 * jwtVerify, which the node used before (WebCrypto, partly on the libuv thread pool, so with several
 * in flight it may use more than one core: the CPU share is reported).
 */
async function measureTokenCheck(
  keys: BenchKeys,
  durationMs: number,
  inFlight: number,
  via: 'node' | 'jose',
): Promise<{ perSecond: number; count: number; inFlight: number; cpuPercent: number }> {
  const jwks = publicJwks([keys.key]);
  const trusted = new TrustedKeys(jwks.keys as PublicJwk[]);
  const getKey = createLocalJWKSet(jwks);
  const policy = { audience: 'supernode', clockToleranceSec: 30 };
  const tokens = await Promise.all(
    Array.from({ length: 64 }, (_, i) =>
      signAccessToken(keys.key, { sub: `bench-check-${i}`, aud: 'supernode', ttlSec: 600 }),
    ),
  );
  const checkOne = async (token: string): Promise<boolean> =>
    via === 'node'
      ? verifyAccessToken(token, trusted, policy).ok
      : jwtVerify(token, getKey, { algorithms: ['EdDSA'], audience: 'supernode' }).then(
          () => true,
          () => false,
        );
  if (!(await checkOne(tokens[0]))) throw new Error(`token check (${via}) failed`);
  let count = 0;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + durationMs;
  await Promise.all(
    Array.from({ length: inFlight }, async (_, worker) => {
      while (performance.now() < until && count < MAX_ITERATIONS) {
        await checkOne(tokens[(count + worker) % tokens.length]);
        count++;
      }
    }),
  );
  const ms = performance.now() - started;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    perSecond: (count / ms) * 1000,
    count,
    inFlight,
    cpuPercent: ((cpu.user + cpu.system) / 1000 / ms) * 100,
  };
}

interface RateResult {
  sessions: number;
  established: number;
  failed: number;
  failures: Record<string, number>;
  seconds: number;
  perSecond: number;
  /** CPU used during the run, in percent of one core (200% = both cores of this machine). */
  serverCpuPercent: number;
  generatorsCpuPercent: number;
  /** The kernel (system) part of those: on loopback it includes the peer's TCP receive work. */
  serverSystemCpuPercent: number;
  generatorsSystemCpuPercent: number;
  /** All cores of the machine, in percent of their total. */
  machineBusyPercent: number;
  mintMs: number[];
}

/** Connect `sessions` (pre-minted tokens) with a bounded window; rate from first connect to last ready. */
async function measureRate(
  part: string,
  server: { pid: number; url: string },
  mode: GenSpec['mode'],
  keys: BenchKeys | undefined,
  options: SetupOptions,
): Promise<Omit<RateResult, 'sessions'> & { gens: ChildHandle[] }> {
  const gens = splitCount(
    options.sessions,
    Math.max(options.generators, generatorsFor(options.sessions)),
  ).map((n, i) =>
    startSessionGen({
      name: `${part}-gen${i}`,
      mode,
      client: options.client,
      url: mode === 'supernode' ? `${server.url}${SESSION_PATH}` : `${server.url}/`,
      count: n,
      concurrency: options.concurrency,
      keyFile: keys?.keyFile,
      userPrefix: `${part}-g${i}`,
      attempts: 1,
      timeoutMs: 30_000,
      waitForGo: true,
      deadlineMs: 180_000,
    }),
  );
  try {
    const ready = await waitReady(gens, 180_000);
    await sleep(500);
    const cpuBefore = readCpuSplit(server.pid);
    const genCpuBefore = gens.map((g) => readCpuSplit(g.pid));
    const machineBefore = readMachineTicks();
    const wallBefore = wallMs();
    for (const g of gens) g.send({ type: 'go' });
    const done = await waitDone(part, gens, options.sessions, 240_000);
    const cpuAfter = readCpuSplit(server.pid);
    const genCpuAfter = gens.map((g) => readCpuSplit(g.pid));
    const machineAfter = readMachineTicks();
    const wallAfter = wallMs();
    const wallSeconds = (wallAfter - wallBefore) / 1000;
    const started = Math.min(...done.map((d) => d.startedAt));
    const last = Math.max(...done.map((d) => d.lastEstablishedAt));
    const established = done.reduce((s, d) => s + d.established, 0);
    const seconds = (last - started) / 1000;
    return {
      gens,
      established,
      failed: done.reduce((s, d) => s + d.failed, 0),
      failures: sumFailures(done),
      seconds,
      perSecond: established / seconds,
      serverCpuPercent:
        ((cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system) / wallSeconds) * 100,
      serverSystemCpuPercent: ((cpuAfter.system - cpuBefore.system) / wallSeconds) * 100,
      generatorsCpuPercent:
        (genCpuAfter.reduce(
          (s, v, i) => s + v.user + v.system - genCpuBefore[i].user - genCpuBefore[i].system,
          0,
        ) /
          wallSeconds) *
        100,
      generatorsSystemCpuPercent:
        (genCpuAfter.reduce((s, v, i) => s + v.system - genCpuBefore[i].system, 0) / wallSeconds) * 100,
      machineBusyPercent: machineBusyPercent(machineBefore, machineAfter),
      mintMs: ready.map((r) => Math.round(r.mintMs)),
    };
  } catch (err) {
    await stopAll(gens);
    throw err;
  }
}

export async function runSetup(keys: BenchKeys, options: SetupOptions): Promise<PartResult> {
  log('setup', `raw Ed25519 crypto.verify for ${options.rawMs} ms, one thread`);
  const raw = await measureRawVerify(keys, options.rawMs);
  log('setup', `  ${int(raw.perSecond)} verifications/s`);
  const checkMs = Math.min(options.rawMs, 2000) / (options.quick ? 2 : 1);
  const check = await measureTokenCheck(keys, checkMs, 1, 'node');
  const jose = await measureTokenCheck(keys, checkMs, 16, 'jose');
  log(
    'setup',
    `  node token check (verifyAccessToken, node:crypto) in-process: ${int(check.perSecond)}/s ` +
      `(${fixed(check.cpuPercent, 0)}% CPU); jose jwtVerify with 16 in flight: ${int(jose.perSecond)}/s ` +
      `(${fixed(jose.cpuPercent, 0)}% CPU)`,
  );

  let node: NodeHandle | undefined;
  let bare: BareHandle | undefined;
  let supernode: RateResult;
  let bareRate: RateResult;
  let command = '';
  const gens: ChildHandle[] = [];
  try {
    node = await startSupernode('setup-node', keys, [
      '--max-sessions',
      '1000000',
      '--heartbeat-ms',
      '300000',
      '--auth-timeout-ms',
      '60000',
    ]);
    command = node.child.commandLine;
    log(
      'setup',
      `supernode: ${int(options.sessions)} sessions, ${options.concurrency} in flight per generator`,
    );
    const measured = await measureRate('setup', node, 'supernode', keys, options);
    gens.push(...measured.gens);
    const held = (await readyz(node.port)).sessions;
    supernode = { sessions: held, ...measured };
    log(
      'setup',
      `  ${int(measured.established)} set up in ${fixed(measured.seconds, 2)} s = ${int(measured.perSecond)}/s (CPU: node ${fixed(measured.serverCpuPercent, 0)}% of which kernel ${fixed(measured.serverSystemCpuPercent, 0)}%, generators ${fixed(measured.generatorsCpuPercent, 0)}% of which kernel ${fixed(measured.generatorsSystemCpuPercent, 0)}%, machine ${fixed(measured.machineBusyPercent, 0)}% busy), node holds ${int(held)}`,
    );
  } finally {
    await stopAll([...gens, node?.child]);
    gens.length = 0;
  }
  try {
    bare = await startBareServer('setup-bare', 'echo');
    log('setup', `bare ws: ${int(options.sessions)} connections (connect + one echo)`);
    const measured = await measureRate('setup-bare', bare, 'bare-echo', undefined, options);
    gens.push(...measured.gens);
    bareRate = { sessions: measured.established, ...measured };
    log(
      'setup',
      `  ${int(measured.perSecond)}/s (CPU: server ${fixed(measured.serverCpuPercent, 0)}% of which kernel ${fixed(measured.serverSystemCpuPercent, 0)}%, generators ${fixed(measured.generatorsCpuPercent, 0)}% of which kernel ${fixed(measured.generatorsSystemCpuPercent, 0)}%, machine ${fixed(measured.machineBusyPercent, 0)}% busy)`,
    );
  } finally {
    await stopAll([...gens, bare?.child]);
  }

  const ratio = supernode.perSecond / raw.perSecond;
  // What the node would do with a whole core to itself (it shares 2 cores with its generators here).
  const perNodeCore = supernode.perSecond / (supernode.serverCpuPercent / 100);
  const strip = ({ gens: _g, ...rest }: RateResult & { gens?: unknown }): RateResult => rest;
  const rows: Row[] = [
    {
      what: 'session set-up rate (until welcome)',
      measured: `${int(supernode.perSecond)}/s`,
      baseline: `Ed25519 ${int(raw.perSecond)}/s`,
      ratio: percent(ratio),
      target: `>=${percent(TARGET_RATIO)}`,
      verdict:
        supernode.failed > 0 ? `${supernode.failed} failed` : ratio >= TARGET_RATIO ? 'meets' : 'misses',
    },
    {
      what: '  set-ups per second of node CPU',
      measured: `${int(perNodeCore)}/s`,
      baseline: `Ed25519 ${int(raw.perSecond)}/s`,
      ratio: percent(perNodeCore / raw.perSecond),
      target: 'context',
      verdict: '',
    },
    {
      what: '  node token check in-process',
      measured: `${int(check.perSecond)}/s`,
      baseline: `Ed25519 ${int(raw.perSecond)}/s`,
      ratio: percent(check.perSecond / raw.perSecond),
      target: 'context',
      verdict: '',
    },
    {
      what: '  jose jwtVerify in-process (before), 16 in flight',
      measured: `${int(jose.perSecond)}/s`,
      baseline: `Ed25519 ${int(raw.perSecond)}/s`,
      ratio: percent(jose.perSecond / raw.perSecond),
      target: 'context',
      verdict: '',
    },
    {
      what: '  bare ws connect + echo rate',
      measured: `${int(bareRate.perSecond)}/s`,
      baseline: '',
      ratio: `${percent(supernode.perSecond / bareRate.perSecond)} of it`,
      target: 'context',
      verdict: '',
    },
  ];
  return {
    rows,
    data: {
      rawEd25519: {
        ...raw,
        note: 'crypto.verify(null, data, KeyObject, sig), one thread, token signing input',
      },
      tokenCheckInProcess: {
        node: check,
        jose,
        note: 'supernode/node/access-token verifyAccessToken (node:crypto, cached KeyObject) vs jose jwtVerify (WebCrypto), in the runner process',
      },
      supernode: { ...strip(supernode), nodeCommand: command },
      bareWsConnectEcho: strip(bareRate),
      ratio,
      options,
    },
  };
}
