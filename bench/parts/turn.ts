/**
 * TURN against coturn (`bench/turn.ts`, in a process of its own as when run alone): Allocates/s and
 * relayed packets, with coturn's turnutils_uclient as the load generator for both servers.
 */
import { spawn } from 'node:child_process';
import { REPO_ROOT } from '../lib/children';
import type { PartResult, Row } from '../lib/load';
import { TURN_RESULT_PREFIX } from '../lib/messages';
import type { ServerResult } from '../turn';

const FLOOR = 0.8;

export async function runTurnPart(quick: boolean): Promise<PartResult> {
  const output = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--require', 'tsx/cjs', 'bench/turn.ts', ...(quick ? ['--quick'] : [])],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    );
    let text = '';
    child.stdout.on('data', (chunk: Buffer) => {
      text += chunk.toString('utf8');
    });
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0
        ? resolve(text)
        : reject(new Error(`bench/turn.ts exited with ${code}: ${text.slice(-400)}`)),
    );
  });
  const resultLine = output.split('\n').find((line) => line.startsWith(TURN_RESULT_PREFIX));
  if (!resultLine) throw new Error(`bench/turn.ts printed no result line:\n${output.slice(-400)}`);
  for (const line of output.split('\n'))
    if (line && line !== resultLine) process.stderr.write(`[turn] ${line}\n`);
  const { ours, coturn } = JSON.parse(resultLine.slice(TURN_RESULT_PREFIX.length)) as {
    ours: ServerResult;
    coturn: ServerResult | null;
  };
  const row = (what: string, read: (r: ServerResult) => number, unit: string): Row => {
    const ratio = coturn ? read(ours) / read(coturn) : Number.NaN;
    return {
      what,
      measured: `${Math.round(read(ours)).toLocaleString('en-US')}${unit}`,
      baseline: coturn
        ? `coturn ${Math.round(read(coturn)).toLocaleString('en-US')}${unit}`
        : 'coturn skipped',
      ratio: coturn ? `${ratio.toFixed(2)}x` : '',
      target: `>=${FLOOR}x coturn`,
      verdict: coturn ? (ratio >= FLOOR ? 'meets' : 'misses') : 'no baseline (apt-get install -y coturn)',
    };
  };
  return {
    rows: [
      row('TURN Allocates/s (turnutils_uclient for both)', (r) => r.setup.perSecond, '/s'),
      row('TURN relayed packets per server CPU-second, steady', (r) => r.steady.relayedPerCpuSecond, ''),
      row('TURN relayed packets/s flat out, best second', (r) => r.saturate.peakRelayedPerSecond, '/s'),
    ],
    data: { ours, coturn },
  };
}
