import { readFile } from 'node:fs/promises';
import type { JWK } from 'jose';
import { writeAtomically } from '../files';
import type { Logger } from '../log';
import { generateSigningKey, type SigningKey } from './signing';

/** A signing key and its schedule: published at `createdAt`, signs from `activatesAt`, gone after `retiresAt`. */
export interface KeyRecord extends SigningKey {
  createdAt: number;
  activatesAt: number;
  /** Set when a newer key takes over: when the last token this key signed has expired. */
  retiresAt?: number;
}

export interface KeyRingStorage {
  load(): Promise<KeyRecord[] | undefined>;
  save(keys: KeyRecord[]): Promise<void>;
}

/** Private keys in a file readable by the service user only (local tier; AWS keeps them in Secrets Manager). */
export class FileKeyRingStorage implements KeyRingStorage {
  constructor(private readonly path: string) {}

  async load(): Promise<KeyRecord[] | undefined> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    const parsed = JSON.parse(text) as { keys?: KeyRecord[] };
    if (!Array.isArray(parsed.keys)) throw new Error(`${this.path} holds no "keys" array`);
    return parsed.keys;
  }

  async save(keys: KeyRecord[]): Promise<void> {
    await writeAtomically(this.path, JSON.stringify({ keys }), 0o600);
  }
}

export interface KeyRingOptions {
  storage: KeyRingStorage;
  rotationMs: number;
  /** A new key is published this long before it signs, so every supernode has it first. */
  publishLeadMs: number;
  /** An old key stays published this long after it stops signing (access token lifetime + clock skew). */
  retainMs: number;
  /** Where the public set is written for supernodes that read a file (works while this service is down). */
  jwksFile?: string;
  log: Logger;
  now?: () => number;
}

/**
 * Ed25519 signing keys with rotation: a new key is published before it signs, the old one stays
 * published until the tokens it signed have expired.
 */
export class KeyRing {
  private keys: KeyRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private jwksText = '{"keys":[]}';

  constructor(private readonly options: KeyRingOptions) {
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    this.keys = (await this.options.storage.load()) ?? [];
    if (this.keys.length === 0) {
      // Nothing was ever published, so there is nobody to warn ahead: the first key signs at once.
      const now = this.now();
      this.keys = [{ ...(await generateSigningKey()), createdAt: now, activatesAt: now }];
      await this.options.storage.save(this.keys);
    }
    await this.maintain();
    const checkEvery = Math.min(this.options.rotationMs, 60_000);
    this.timer = setInterval(() => {
      this.maintain().catch((err: unknown) => this.options.log.error({ err }, 'key rotation failed'));
    }, checkEvery);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The key that signs now: the newest one already active. */
  signingKey(): KeyRecord {
    const now = this.now();
    let best: KeyRecord | undefined;
    for (const key of this.keys)
      if (key.activatesAt <= now && (!best || key.activatesAt > best.activatesAt)) best = key;
    if (!best) throw new Error('no active signing key');
    return best;
  }

  publicKeys(): JWK[] {
    return this.keys.map((k) => k.publicJwk);
  }

  /** The public set as served and written, prepared once per change rather than per request. */
  jwks(): string {
    return this.jwksText;
  }

  /** Makes a new key now (published at once, signing after the lead time). */
  async rotate(): Promise<KeyRecord> {
    const now = this.now();
    const next: KeyRecord = {
      ...(await generateSigningKey()),
      createdAt: now,
      activatesAt: now + this.options.publishLeadMs,
    };
    for (const key of this.keys) {
      key.retiresAt ??= next.activatesAt + this.options.retainMs;
    }
    this.keys.push(next);
    await this.persist();
    this.options.log.info(
      { kid: next.kid, activatesAt: new Date(next.activatesAt).toISOString() },
      'signing key added',
    );
    return next;
  }

  /** Rotates when the newest key is old enough, drops retired keys, republishes on change. */
  async maintain(): Promise<void> {
    const now = this.now();
    const newest = this.keys.reduce((a, b) => (a.createdAt >= b.createdAt ? a : b));
    if (now - newest.createdAt >= this.options.rotationMs) {
      await this.rotate();
      return;
    }
    const before = this.keys.length;
    this.keys = this.keys.filter((k) => k.retiresAt === undefined || k.retiresAt > now);
    if (this.keys.length !== before) await this.persist();
    else await this.publish();
  }

  private async persist(): Promise<void> {
    await this.options.storage.save(this.keys);
    await this.publish();
  }

  private async publish(): Promise<void> {
    const text = JSON.stringify({ keys: this.publicKeys() });
    if (text === this.jwksText) return;
    this.jwksText = text;
    if (this.options.jwksFile) await writeAtomically(this.options.jwksFile, `${text}\n`, 0o644);
  }
}
