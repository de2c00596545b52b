import { helpText, parseOptions } from './config/options';
import { soakOptionTable } from './config/soak-options';

/**
 * The release gate: a new instance signals success to CloudFormation only after its /readyz has
 * answered 200 without a single failure for the whole soak period. A build that crashes or turns
 * unready minutes after start never signals, so the rolling update rolls back by itself.
 */
export type SoakResult = { ok: true; checks: number } | { ok: false; reason: string; checks: number };

async function check(url: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status === 200 ? undefined : `answered ${response.status}`;
  } catch (err) {
    return `did not answer (${(err as Error).name})`;
  }
}

export async function soak(options: {
  url: string;
  soakSec: number;
  startTimeoutSec: number;
  intervalMs: number;
  requestTimeoutMs: number;
}): Promise<SoakResult> {
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  let checks = 0;
  const startDeadline = Date.now() + options.startTimeoutSec * 1000;
  for (;;) {
    checks++;
    if ((await check(options.url, options.requestTimeoutMs)) === undefined) break;
    if (Date.now() >= startDeadline) {
      return { ok: false, reason: `not ready within ${options.startTimeoutSec} s`, checks };
    }
    await sleep(options.intervalMs);
  }
  const soakEnd = Date.now() + options.soakSec * 1000;
  while (Date.now() < soakEnd) {
    await sleep(Math.min(options.intervalMs, Math.max(0, soakEnd - Date.now())));
    checks++;
    const failure = await check(options.url, options.requestTimeoutMs);
    if (failure) return { ok: false, reason: `${options.url} ${failure} during the soak`, checks };
  }
  return { ok: true, checks };
}

export async function runSoak(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(
      helpText(
        'Usage: supernode soak [options]\n\nExits 0 once the URL has stayed ready for the soak period, 1 at the first failure.',
        soakOptionTable,
      ),
    );
    return;
  }
  const options = parseOptions(soakOptionTable, argv);
  const result = await soak(options);
  if (result.ok) {
    console.log(`soak passed: ${options.url} ready for ${options.soakSec} s (${result.checks} checks)`);
    return;
  }
  console.error(`soak failed: ${result.reason}`);
  process.exit(1);
}
