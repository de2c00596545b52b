import { randomInt } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { generateSigningKey, publicJwks, type SigningKey } from '../../supernode/auth/signing';
import { freePortRun } from '../../supernode/local/fleet';
import { type ChildHandle, isObject, ofType, sleep, spawnNode } from './children';
import { type BareListening, type BareServerConfig, CONFIG_ENV } from './messages';

export const SUPERNODE_CLI = 'supernode/bin/supernode.cjs';

/** Machine facts printed with every result. */
export function machineFacts(): Record<string, string | number> {
  const list = cpus();
  let fdLimit = 'unknown';
  try {
    const limits = readFileSync('/proc/self/limits', 'utf8');
    const match = /^Max open files\s+(\S+)\s+(\S+)/m.exec(limits);
    if (match) fdLimit = `${match[1]} soft / ${match[2]} hard`;
  } catch {
    // not Linux
  }
  return {
    node: process.version,
    cpus: list.length,
    cpuModel: list[0]?.model ?? 'unknown',
    platform: `${process.platform} ${process.arch}`,
    totalMemGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    fdLimit,
    loadAverage1mAtStart: Math.round(loadavg()[0] * 100) / 100,
  };
}

/**
 * Source addresses for load generators: every generator of a run gets its own block 127.R.B.1-200 (R
 * picked per run, B per generator) and spreads its sockets over it, a few dozen per address. With
 * thousands of sockets bound to one address, the kernel's port choice at bind() time costs
 * milliseconds of system CPU per connection (see README "Source addresses").
 */
const runOctet = 1 + randomInt(250);
const BLOCK_SIZE = 200;
let nextBlock = 0;
export function nextSourceBlock(): string[] {
  const block = nextBlock++;
  if (block >= 250) throw new Error('out of source address blocks');
  return Array.from({ length: BLOCK_SIZE }, (_, i) => `127.${runOctet}.${block}.${i + 1}`);
}

export interface BenchKeys {
  dir: string;
  jwksFile: string;
  keyFile: string;
  key: SigningKey;
  cleanup(): void;
}

/** A signing key in a temporary directory: the public set for the nodes, the private key for generators. */
export async function makeBenchKeys(): Promise<BenchKeys> {
  const dir = mkdtempSync(join(tmpdir(), 'supernode-bench-'));
  const key = await generateSigningKey();
  const jwksFile = join(dir, 'jwks.json');
  const keyFile = join(dir, 'signing-key.json');
  writeFileSync(jwksFile, JSON.stringify(publicJwks([key])));
  writeFileSync(keyFile, JSON.stringify(key), { mode: 0o600 });
  return { dir, jwksFile, keyFile, key, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface NodeHandle {
  child: ChildHandle;
  port: number;
  /** ws://127.0.0.1:port */
  url: string;
  pid: number;
}

/** Starts one supernode through the CLI and waits for /readyz (bounded). */
export async function startSupernode(
  name: string,
  keys: BenchKeys,
  extraArgs: string[],
  readyTimeoutMs = 30_000,
): Promise<NodeHandle> {
  const port = await freePortRun(1);
  const child = spawnNode({
    name,
    args: [
      SUPERNODE_CLI,
      'node',
      '--host',
      '127.0.0.1',
      '--port',
      String(port),
      '--node-id',
      name,
      '--jwks-file',
      keys.jwksFile,
      // Off unless the part asks for it (the STUN part passes --stun).
      ...(extraArgs.includes('--stun') ? [] : ['--no-stun']),
      '--log-level',
      'warn',
      '--drain-timeout-ms',
      '0',
      ...extraArgs,
    ],
  });
  const deadline = Date.now() + readyTimeoutMs;
  for (let attempt = 0; Date.now() < deadline && attempt < 1000; attempt++) {
    if (child.exitInfo) throw new Error(`${name} exited at start-up:\n${child.output()}`);
    const ready = await readyz(port).catch(() => undefined);
    if (ready?.ready) return { child, port, url: `ws://127.0.0.1:${port}`, pid: child.pid };
    await sleep(100);
  }
  await child.stop(1000);
  throw new Error(`${name} not ready within ${readyTimeoutMs} ms:\n${child.output()}`);
}

export async function readyz(port: number): Promise<{ ready: boolean; sessions: number }> {
  const response = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) });
  const body = (await response.json()) as unknown;
  if (!isObject(body)) throw new Error('readyz answered no object');
  return { ready: body.ready === true, sessions: Number(body.sessions) };
}

export interface BareHandle {
  child: ChildHandle;
  port: number;
  url: string;
  pid: number;
}

export async function startBareServer(name: string, mode: BareServerConfig['mode']): Promise<BareHandle> {
  const port = await freePortRun(1);
  const child = spawnNode({
    name,
    args: ['bench/bare-ws-server.ts'],
    env: { [CONFIG_ENV]: JSON.stringify({ mode, port } satisfies BareServerConfig) },
    ipc: true,
  });
  await child.waitFor(ofType<BareListening>('listening'), 30_000, 'listening');
  return { child, port, url: `ws://127.0.0.1:${port}`, pid: child.pid };
}

// ---- formatting -------------------------------------------------------------------------------

export function int(n: number): string {
  return Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a';
}

export function fixed(n: number, digits = 1): string {
  return Number.isFinite(n) ? n.toFixed(digits) : 'n/a';
}

export function percent(ratio: number): string {
  return Number.isFinite(ratio) ? `${Math.round(ratio * 100)}%` : 'n/a';
}

export function log(part: string, message: string): void {
  process.stderr.write(`[${part}] ${message}\n`);
}

export function median(values: number[]): number {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}
