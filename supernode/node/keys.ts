import type { JSONWebKeySet, JWK } from 'jose';
import type { Logger } from '../shared/log';
import { type PublicJwk, TrustedKeys } from './access-token';
import { PolledJson } from './polled-json';

export const MAX_JWKS_BYTES = 64 * 1024;
const MAX_KEYS = 32;

export interface KeyStoreOptions {
  /** Where the public keys come from: an http(s) or s3:// URL, or a file path. Exactly one. */
  jwksUrl?: string;
  jwksFile?: string;
  refreshMs: number;
  /** Region of the bucket of an s3:// URL. @default the SDK's resolution */
  s3Region?: string;
  log: Logger;
}

/** Keeps the last good public key set in memory; verification never waits on the network. */
export class KeyStore {
  private readonly document: PolledJson<TrustedKeys>;

  constructor(options: KeyStoreOptions) {
    this.document = new PolledJson({
      name: 'public key set',
      url: options.jwksUrl,
      file: options.jwksFile,
      refreshMs: options.refreshMs,
      s3Region: options.s3Region,
      maxBytes: MAX_JWKS_BYTES,
      log: options.log,
      parse: (value) => new TrustedKeys(validateJwks(value).keys as PublicJwk[]),
    });
  }

  get ready(): boolean {
    return this.document.value !== undefined;
  }

  /** The keys tokens are verified with, once a key set has been read. */
  get trusted(): TrustedKeys | undefined {
    return this.document.value;
  }

  get kids(): string[] {
    return this.document.value?.kids ?? [];
  }

  start(): Promise<void> {
    return this.document.start();
  }

  stop(): void {
    this.document.stop();
  }

  refresh(): Promise<boolean> {
    return this.document.refresh();
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
