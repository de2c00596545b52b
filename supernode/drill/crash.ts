/**
 * The 2010 drill: one supernode dies (kill -9) under lookup and message traffic. Its clients must
 * re-home on the survivors quickly, lookups must keep answering, and no acknowledged message may be
 * lost. Then a build that crashes a few seconds after start goes through the release gate the CDK
 * user data runs before signalling CloudFormation: the gate must refuse it.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crashOptionTable } from '../config/drill-options';
import { parseOptions } from '../config/options';
import { freePorts } from '../local/fleet';
import { lineChartSvg, ProgressBar, table } from './report';
import { DrillTier, sleep } from './tier';
import { ClientFleet, type Report } from './workers';

const CLI = join(__dirname, '../bin/supernode.cjs');

export interface CrashResult {
  command: string;
  clients: number;
  victimClients: number;
  /** Seconds from the kill until every client had a session again. */
  rehomeSec: number | null;
  lookups: number;
  lookupsAnswered: number;
  lookupsFailed: number;
  /** Why lookups got no answer, by error code. */
  lookupFailures: Record<string, number>;
  lookupSuccessRate: number;
  /** Share of answered lookups that found the user online (users of the dead node are briefly offline). */
  lookupsOnlineRate: number;
  messagesSent: number;
  messagesAcked: number;
  /** Acknowledged, never delivered. */
  messagesLostAfterAck: number;
  /** Of those, sent within 2 s of the kill (in the dead node's buffers, most likely). */
  messagesLostAfterAckWithin2sOfKill: number;
  /** Up to 50 of them, for a look at when they were sent. */
  lostSample: { id: string; sentSecAfterKill: number }[];
  messagesRefused: number;
  survivorsPeakSessions: number[];
  survivorsPeakRssBytes: number[];
  timeline: [number, number][];
  gate: { refused: boolean; exitCode: number | null; reason: string; seconds: number };
  files: { json: string; svg: string };
}

export async function runCrashDrill(options: ReturnType<typeof parseCrashOptions>): Promise<CrashResult> {
  const dataDir = mkdtempSync(join(tmpdir(), 'drill-crash-'));
  const usernames = Array.from({ length: options.clients }, (_, i) => `crash-u${i}`);
  const tier = new DrillTier({ dataDir });
  const bar = new ProgressBar();
  let clients: ClientFleet | undefined;
  const log = (line: string) => process.stderr.write(`${line}\n`);
  try {
    await tier.start();
    log(`crash: tier up (nodes ${tier.nodes.map((n) => n.port).join(', ')})`);
    clients = await ClientFleet.start(
      {
        nodes: tier.nodes.map((node) => node.url),
        authUrl: tier.authUrl,
        password: 'unused: tokens are cached',
        signingKeysFile: tier.signingKeysFile,
        startJitterMs: options.startJitterMs,
        trafficIntervalMs: options.trafficIntervalMs,
        allUsers: usernames,
      },
      usernames,
    );
    const fleet = clients;
    const deadline = Date.now() + options.startJitterMs + 120_000;
    for (;;) {
      const report = await fleet.report();
      bar.update('connecting', report.connected, options.clients);
      if (report.connected >= options.clients) break;
      if (Date.now() > deadline) throw new Error('timed out waiting for every client to connect');
      await sleep(250);
    }
    bar.done();

    const acked = new Set<string>();
    const delivered = new Set<string>();
    const totals: Report[] = [];
    const reconnects: number[] = [];
    const collect = (report: Report) => {
      reconnects.push(...report.reconnectedAt);
      for (const id of report.ackedIds) acked.add(id);
      for (const id of report.delivered) delivered.add(id);
      totals.push(report);
    };
    collect(await fleet.report()); // resets the lists before traffic starts
    fleet.send({ type: 'traffic', on: true });
    const started = Date.now();
    const timeline: [number, number][] = [];
    const sample = async (label: string, until: number) => {
      while (Date.now() < until) {
        await sleep(250);
        const report = await fleet.report();
        collect(report);
        const t = (Date.now() - started) / 1000;
        timeline.push([t, report.connected]);
        bar.update(label, report.connected, options.clients, `${t.toFixed(1)} s, lookups ${report.lookups}`);
      }
    };
    await sample('traffic    ', started + options.beforeSec * 1000);
    const victim = tier.nodes[0];
    const victimClients = totals.at(-1)?.byNode[victim.url] ?? 0;
    log(`\ncrash: kill -9 ${victim.id} (${victimClients} clients on it)`);
    const killedAt = Date.now();
    await tier.killNode(victim);
    let rehomeSec: number | null = null;
    const survivorsPeakSessions = tier.nodes.slice(1).map(() => 0);
    const afterEnd = killedAt + options.afterSec * 1000;
    while (Date.now() < afterEnd) {
      await sleep(250);
      const report = await fleet.report();
      collect(report);
      const t = (Date.now() - started) / 1000;
      timeline.push([t, report.connected]);
      tier.nodes.slice(1).forEach((node, i) => {
        survivorsPeakSessions[i] = Math.max(survivorsPeakSessions[i], report.byNode[node.url] ?? 0);
      });
      // Every client has a session again (by a report every worker answered in time): the last of
      // them re-homed at the latest reconnect since the kill.
      const since = reconnects.filter((at) => at >= killedAt);
      if (
        rehomeSec === null &&
        report.fresh &&
        report.connected >= options.clients &&
        since.length >= victimClients
      ) {
        rehomeSec = (Math.max(...since) - killedAt) / 1000;
      }
      bar.update(
        'after kill ',
        report.connected,
        options.clients,
        `${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`,
      );
    }
    fleet.send({ type: 'traffic', on: false });
    // Acks and deliveries in flight land: tally until a full round brings nothing new (at most 10 s).
    for (let round = 0; round < 10; round++) {
      await sleep(1000);
      const report = await fleet.report({ complete: true });
      collect(report);
      if (round > 0 && report.ackedIds.length === 0 && report.delivered.length === 0) break;
    }
    bar.done();
    const survivorsPeakRssBytes = tier.nodes.slice(1).map((node) => tier.peakRss(node.child));

    const last = totals.at(-1) as Report;
    const lostIds = [...acked].filter((id) => !delivered.has(id));
    const lost = lostIds.length;
    const sentAt = (id: string) => Number(id.slice(id.lastIndexOf(':') + 1));
    const lostAroundKill = lostIds.filter((id) => Math.abs(sentAt(id) - killedAt) <= 2000).length;
    const answered = last.lookups - last.lookupsFailed;
    log('crash: the faulty build through the release gate');
    const gate = await gateFaultyBuild(dataDir, tier.jwksFile, options.faultAfterMs, options.soakSec);

    const stamp = new Date().toISOString().replace(/[:.]/g, '-');
    await mkdir(options.out, { recursive: true });
    const files = {
      json: join(options.out, `crash-${stamp}.json`),
      svg: join(options.out, `crash-${stamp}.svg`),
    };
    const result: CrashResult = {
      command: `supernode drill crash --clients ${options.clients} --traffic-interval-ms ${options.trafficIntervalMs}`,
      clients: options.clients,
      victimClients,
      rehomeSec,
      lookups: last.lookups,
      lookupsAnswered: answered,
      lookupsFailed: last.lookupsFailed,
      lookupFailures: Object.fromEntries(
        Object.entries(last.refusals)
          .filter(([reason]) => reason.startsWith('lookup:'))
          .map(([reason, n]) => [reason.slice('lookup:'.length), n]),
      ),
      lookupSuccessRate: last.lookups > 0 ? answered / last.lookups : 0,
      lookupsOnlineRate: answered > 0 ? last.lookupsFound / answered : 0,
      messagesSent: last.sent,
      messagesAcked: acked.size,
      messagesLostAfterAck: lost,
      messagesLostAfterAckWithin2sOfKill: lostAroundKill,
      lostSample: lostIds
        .slice(0, 50)
        .map((id) => ({ id, sentSecAfterKill: (sentAt(id) - killedAt) / 1000 })),
      messagesRefused: last.ackFailed,
      survivorsPeakSessions,
      survivorsPeakRssBytes,
      timeline,
      gate,
      files,
    };
    await writeFile(files.json, `${JSON.stringify(result, null, 2)}\n`);
    await writeFile(
      files.svg,
      lineChartSvg({
        title: `Crash drill: ${options.clients} clients, kill -9 of one of three supernodes at ${options.beforeSec} s`,
        xLabel: 'seconds',
        yLabel: 'clients with a session',
        series: [{ label: 'connected clients', color: '#0969da', points: timeline }],
      }),
    );
    return result;
  } finally {
    await clients?.stop();
    await tier.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** A node built to crash after start, watched by `supernode soak` exactly as the user data runs it. */
async function gateFaultyBuild(
  dataDir: string,
  jwksFile: string,
  faultAfterMs: number,
  soakSec: number,
): Promise<CrashResult['gate']> {
  const [port] = await freePorts(1);
  const node = spawn(process.execPath, [CLI, 'node'], {
    stdio: 'ignore',
    env: {
      ...process.env,
      SUPERNODE_PORT: String(port),
      SUPERNODE_JWKS_FILE: jwksFile,
      SUPERNODE_STUN: 'false',
      SUPERNODE_FAULT_CRASH_AFTER_MS: String(faultAfterMs),
      SUPERNODE_LOG_LEVEL: 'error',
    },
    cwd: dataDir,
  });
  const started = Date.now();
  try {
    const gate = spawn(
      process.execPath,
      [
        CLI,
        'soak',
        '--url',
        `http://127.0.0.1:${port}/readyz`,
        '--soak-sec',
        String(soakSec),
        '--interval-ms',
        '1000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    gate.stdout?.on('data', (chunk) => {
      output += chunk;
    });
    gate.stderr?.on('data', (chunk) => {
      output += chunk;
    });
    const exitCode = await new Promise<number | null>((resolve) => gate.once('exit', resolve));
    return {
      refused: exitCode !== 0,
      exitCode,
      reason: output.trim().split('\n').at(-1) ?? '',
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    node.kill('SIGKILL');
  }
}

export function formatCrash(result: CrashResult): string {
  const pct = (value: number) => `${(value * 100).toFixed(3)}%`;
  const mib = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MiB`;
  return [
    `crash drill: ${result.clients} clients on 3 supernodes, kill -9 of one; command: ${result.command}`,
    '',
    table(
      ['measure', 'value', 'target'],
      [
        ['clients on the killed node', result.victimClients, ''],
        [
          'all re-homed after',
          result.rehomeSec === null ? 'not within the run' : `${result.rehomeSec.toFixed(1)} s`,
          '<= 15 s',
        ],
        [
          'lookups answered',
          `${result.lookupsAnswered} of ${result.lookups} (${pct(result.lookupSuccessRate)})`,
          '>= 99.9%',
        ],
        [
          'lookups without an answer, by error',
          Object.entries(result.lookupFailures)
            .map(([code, n]) => `${code} ${n}`)
            .join(', ') || 'none',
          '',
        ],
        ['answered lookups that found the user online', pct(result.lookupsOnlineRate), ''],
        ['messages acknowledged', `${result.messagesAcked} of ${result.messagesSent} sent`, ''],
        [
          'acknowledged but never delivered',
          `${result.messagesLostAfterAck} (${result.messagesLostAfterAckWithin2sOfKill} sent within 2 s of the kill)`,
          'measured',
        ],
        ['sends refused (recipient offline or node gone)', result.messagesRefused, ''],
        ['survivors: peak sessions', result.survivorsPeakSessions.join(' / '), ''],
        ['survivors: peak RSS', result.survivorsPeakRssBytes.map(mib).join(' / '), ''],
        [
          'faulty build through the release gate',
          result.gate.refused ? `refused after ${result.gate.seconds.toFixed(1)} s` : 'PASSED (wrong)',
          'refused',
        ],
      ],
    ),
    `gate said: ${result.gate.reason}`,
    `timeline: ${result.files.json}; chart: ${result.files.svg}`,
  ].join('\n');
}

export function parseCrashOptions(argv: string[]) {
  return parseOptions(crashOptionTable, argv);
}
