import { type ChildHandle, isObject, ofType, spawnNode } from './children';
import { log, nextSourceBlock } from './env';
import { CONFIG_ENV, type GenDone, type GenReady, type SessionGenConfig } from './messages';

/** At most this many sockets per generator process (the per-process fd limit is 20,000). */
export const MAX_SOCKETS_PER_GENERATOR = 9000;

export interface Row {
  what: string;
  measured: string;
  baseline: string;
  ratio: string;
  target: string;
  verdict: string;
}

export interface PartResult {
  rows: Row[];
  data: Record<string, unknown>;
}

export type GenSpec = Omit<SessionGenConfig, 'localAddresses'> & { name: string };

export function startSessionGen(spec: GenSpec): ChildHandle {
  const { name, ...rest } = spec;
  const config: SessionGenConfig = { ...rest, localAddresses: nextSourceBlock() };
  return spawnNode({
    name,
    args: ['bench/gen-sessions.ts'],
    env: { [CONFIG_ENV]: JSON.stringify(config) },
    ipc: true,
  });
}

/** Splits `total` into `parts` near-equal whole counts. */
export function splitCount(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

export function generatorsFor(count: number): number {
  return Math.max(1, Math.ceil(count / MAX_SOCKETS_PER_GENERATOR));
}

export function waitReady(gens: ChildHandle[], timeoutMs: number): Promise<GenReady[]> {
  return Promise.all(
    gens.map((g) => g.waitFor(ofType<GenReady>('ready'), timeoutMs, 'ready (tokens minted)')),
  );
}

/** Waits for every generator's `done`, logging the running total every few seconds. */
export async function waitDone(
  part: string,
  gens: ChildHandle[],
  target: number,
  timeoutMs: number,
): Promise<GenDone[]> {
  const ticker = setInterval(() => {
    let established = 0;
    let failed = 0;
    for (const g of gens) {
      if (isObject(g.lastProgress)) {
        established += Number(g.lastProgress.established) || 0;
        failed += Number(g.lastProgress.failed) || 0;
      }
    }
    log(
      part,
      `  ${established.toLocaleString('en-US')} / ${target.toLocaleString('en-US')} sessions, ${failed} failed`,
    );
  }, 5000);
  try {
    return await Promise.all(gens.map((g) => g.waitFor(ofType<GenDone>('done'), timeoutMs, 'done')));
  } finally {
    clearInterval(ticker);
  }
}

export function sumFailures(results: GenDone[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const r of results) {
    for (const [code, n] of Object.entries(r.failures)) out[code] = (out[code] ?? 0) + n;
  }
  return out;
}

export async function stopAll(children: Array<ChildHandle | undefined>): Promise<void> {
  await Promise.all(children.map((c) => c?.stop(3000, c.proc.connected)));
}
