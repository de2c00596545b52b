import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, type JSONWebKeySet, type JWK } from 'jose';
import type { Logger } from '../log';

export const MAX_JWKS_BYTES = 64 * 1024;
const MAX_KEYS = 32;

export interface KeyStoreOptions {
  /** Where the public keys come from: an http(s) URL or a file path. Exactly one. */
  jwksUrl?: string;
  jwksFile?: string;
  /** How often to re-read the set; a failed read keeps the last good set. */
  refreshMs: number;
  fetchTimeoutMs?: number;
  log: Logger;
}

/** Keeps the last good public key set in memory; verification never waits on the network. */
export class KeyStore {
  private resolver: ReturnType<typeof createLocalJWKSet> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  private stopped = false;
  kids: string[] = [];
  loadedAt: number | undefined;

  constructor(private readonly options: KeyStoreOptions) {
    if (Boolean(options.jwksUrl) === Boolean(options.jwksFile)) {
      throw new Error('KeyStore needs exactly one of jwksUrl or jwksFile');
    }
  }

  get ready(): boolean {
    return this.resolver !== undefined;
  }

  get getKey(): ReturnType<typeof createLocalJWKSet> | undefined {
    return this.resolver;
  }

  /** Loads once (without throwing: a node may start before the key source is up), then keeps refreshing. */
  async start(): Promise<void> {
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  /** Loads the set now; used by the schedule and by tests. Returns whether it succeeded. */
  async refresh(): Promise<boolean> {
    clearTimeout(this.timer);
    let ok = false;
    try {
      const set = validateJwks(await this.read());
      this.resolver = createLocalJWKSet(set);
      this.kids = set.keys.map((k) => k.kid as string);
      this.loadedAt = Date.now();
      this.failures = 0;
      ok = true;
    } catch (err) {
      this.failures++;
      this.options.log.warn(
        {
          err: { name: (err as Error).name, message: (err as Error).message },
          kept: this.kids,
          failures: this.failures,
        },
        'public key refresh failed; keeping the last good set',
      );
    }
    if (!this.stopped) {
      // Retry sooner while nothing is loaded, backing off to the normal period.
      const delay = this.ready
        ? this.options.refreshMs
        : Math.min(this.options.refreshMs, 250 * 2 ** Math.min(this.failures, 8));
      this.timer = setTimeout(() => void this.refresh(), delay);
      this.timer.unref();
    }
    return ok;
  }

  private async read(): Promise<unknown> {
    if (this.options.jwksFile) {
      const text = await readFile(this.options.jwksFile, 'utf8');
      if (text.length > MAX_JWKS_BYTES) throw new Error(`key file over ${MAX_JWKS_BYTES} bytes`);
      return JSON.parse(text);
    }
    const response = await fetch(this.options.jwksUrl as string, {
      signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5000),
      headers: { accept: 'application/json' },
    });
    if (!response.ok) throw new Error(`key set request answered ${response.status}`);
    const text = await response.text();
    if (text.length > MAX_JWKS_BYTES) throw new Error(`key set over ${MAX_JWKS_BYTES} bytes`);
    return JSON.parse(text);
  }
}

/** Accepts only Ed25519 public keys with a `kid`; a set with none is an error, not an empty trust store. */
export function validateJwks(value: unknown): JSONWebKeySet {
  if (typeof value !== 'object' || value === null || !Array.isArray((value as { keys?: unknown }).keys)) {
    throw new Error('key set must be a JSON object with a "keys" array');
  }
  const keys = (value as { keys: unknown[] }).keys.filter(
    (k): k is JWK =>
      typeof k === 'object' &&
      k !== null &&
      (k as JWK).kty === 'OKP' &&
      (k as JWK).crv === 'Ed25519' &&
      typeof (k as JWK).x === 'string' &&
      typeof (k as JWK).kid === 'string' &&
      (k as JWK).d === undefined,
  );
  if (keys.length === 0) throw new Error('key set holds no Ed25519 public key with a kid');
  if (keys.length > MAX_KEYS) throw new Error(`key set holds more than ${MAX_KEYS} keys`);
  return { keys: keys.map(({ kty, crv, x, kid, use, alg }) => ({ kty, crv, x, kid, use, alg })) };
}
