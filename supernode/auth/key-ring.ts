import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { JWK } from 'jose';
import { writeAtomically } from '../shared/files';
import type { Logger } from '../shared/log';
import { generateSigningKey, type SigningKey } from './signing';

/** A signing key and its schedule: published at `createdAt`, signs from `activatesAt`, gone after `retiresAt`. */
export interface KeyRecord extends SigningKey {
  createdAt: number;
  activatesAt: number;
  /** Set when a newer key takes over: when the last token this key signed has expired. */
  retiresAt?: number;
}

/** What a storage holds: the ring, and the version a write must build on. */
export interface StoredKeyRing {
  /** Undefined when there is no ring yet, or the storage holds something that is not one. */
  keys: KeyRecord[] | undefined;
  /** Opaque; names this content (Secrets Manager's VersionId, a file's hash). */
  version: string | undefined;
}

/** `conflict`: the stored ring is no longer `baseVersion` (another instance wrote first); nothing was written. */
export type KeyRingSaveResult = { status: 'saved'; version: string | undefined } | { status: 'conflict' };

/**
 * Where the private keys live. Several auth instances may share one storage, so writes are optimistic:
 * each names the version it was computed from, and a storage that has moved on refuses it.
 */
export interface KeyRingStorage {
  load(): Promise<StoredKeyRing>;
  save(keys: KeyRecord[], baseVersion: string | undefined): Promise<KeyRingSaveResult>;
}

/** Private keys in a file readable by the service user only (local tier; AWS keeps them in Secrets Manager). */
export class FileKeyRingStorage implements KeyRingStorage {
  constructor(private readonly path: string) {}

  async load(): Promise<StoredKeyRing> {
    const text = await this.read();
    if (text === undefined) return { keys: undefined, version: undefined };
    const parsed = JSON.parse(text) as { keys?: KeyRecord[] };
    if (!Array.isArray(parsed.keys)) throw new Error(`${this.path} holds no "keys" array`);
    return { keys: parsed.keys, version: versionOf(text) };
  }

  /** Compare-then-write: not atomic, but one host has one auth process, and a stray edit is not overwritten. */
  async save(keys: KeyRecord[], baseVersion: string | undefined): Promise<KeyRingSaveResult> {
    const current = await this.read();
    if ((current === undefined ? undefined : versionOf(current)) !== baseVersion)
      return { status: 'conflict' };
    const text = JSON.stringify({ keys });
    await writeAtomically(this.path, text, 0o600);
    return { status: 'saved', version: versionOf(text) };
  }

  private async read(): Promise<string | undefined> {
    try {
      return await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }
}

function versionOf(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
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
  /** Called with each new public set once the file is written (the S3 copy); must neither throw nor block. */
  onJwks?: (text: string) => void;
  log: Logger;
  now?: () => number;
}

/**
 * Ed25519 signing keys with rotation: a new key is published before it signs, the old one stays
 * published until the tokens it signed have expired.
 *
 * Several instances may share the storage. Every check re-reads it, so all of them sign with and
 * publish the same keys; every change is written on top of the version it was computed from, and an
 * instance whose write is refused (another wrote first) adopts that ring instead of its own change.
 * So however many instances find a rotation due at once, one new key comes out of it.
 */
export class KeyRing {
  private keys: KeyRecord[] = [];
  /** The storage's version of `keys`, the base of our next write. */
  private version: string | undefined;
  /** Whether the storage held a ring at the last read; if not, ours is written back. */
  private stored = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;
  private jwksText = '{"keys":[]}';
  /** One read-decide-write at a time: the timer and a rotate() call must not interleave. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: KeyRingOptions) {
    this.now = options.now ?? Date.now;
  }

  async start(): Promise<void> {
    await this.exclusive(async () => {
      await this.reload();
      if (this.keys.length > 0) return;
      // Nothing was ever published, so there is nobody to warn ahead: the first key signs at once.
      const now = this.now();
      await this.write([{ ...(await generateSigningKey()), createdAt: now, activatesAt: now }]);
      if (this.keys.length === 0) throw new Error('the key ring storage holds no ring after writing one');
    });
    await this.maintain();
    const checkEvery = Math.min(this.options.rotationMs, 60_000);
    this.timer = setInterval(() => {
      this.maintain().catch((err: unknown) =>
        // The keys in memory keep signing; the next check tries again.
        this.options.log.error({ err: describe(err) }, 'key ring check failed'),
      );
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

  /**
   * Makes a new key now (published at once, signing after the lead time). If another instance changed
   * the ring first, its ring is adopted instead; either way the newest key is returned.
   */
  rotate(): Promise<KeyRecord> {
    return this.exclusive(async () => {
      await this.addKey();
      return this.newest();
    });
  }

  /** Re-reads the shared ring; rotates when the newest key is old enough, drops retired keys, republishes. */
  maintain(): Promise<void> {
    return this.exclusive(async () => {
      await this.reload();
      const now = this.now();
      if (now - this.newest().createdAt >= this.options.rotationMs) {
        await this.addKey();
        return;
      }
      const kept = this.keys.filter((k) => k.retiresAt === undefined || k.retiresAt > now);
      if (kept.length !== this.keys.length || !this.stored) await this.write(kept);
      else await this.publish();
    });
  }

  private async addKey(): Promise<void> {
    const now = this.now();
    const next: KeyRecord = {
      ...(await generateSigningKey()),
      createdAt: now,
      activatesAt: now + this.options.publishLeadMs,
    };
    // Copies: if the write loses, the ring in memory must stay as it was read.
    const ring: KeyRecord[] = this.keys.map((key) => ({
      ...key,
      retiresAt: key.retiresAt ?? next.activatesAt + this.options.retainMs,
    }));
    ring.push(next);
    if (await this.write(ring)) {
      this.options.log.info(
        { kid: next.kid, activatesAt: new Date(next.activatesAt).toISOString() },
        'signing key added',
      );
    }
  }

  /** The last made; keys are appended, so a tie goes to the later one. */
  private newest(): KeyRecord {
    return this.keys.reduce((a, b) => (b.createdAt >= a.createdAt ? b : a));
  }

  private async reload(): Promise<void> {
    const { keys, version } = await this.options.storage.load();
    this.version = version;
    this.stored = keys !== undefined && keys.length > 0;
    if (keys && keys.length > 0) this.keys = keys;
  }

  /** Writes `ring` on top of the version last read; returns false if another instance wrote first (its ring is adopted). */
  private async write(ring: KeyRecord[]): Promise<boolean> {
    const result = await this.options.storage.save(ring, this.version);
    if (result.status === 'saved') {
      this.keys = ring;
      this.version = result.version;
      this.stored = true;
    } else {
      await this.reload();
      this.options.log.info(
        { kids: this.keys.map((k) => k.kid) },
        'key ring changed elsewhere first; adopted',
      );
    }
    await this.publish();
    return result.status === 'saved';
  }

  private async publish(): Promise<void> {
    const text = JSON.stringify({ keys: this.publicKeys() });
    if (text === this.jwksText) return;
    this.jwksText = text;
    if (this.options.jwksFile) await writeAtomically(this.options.jwksFile, `${text}\n`, 0o644);
    this.options.onJwks?.(text);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const run = this.tail.then(work, work);
    this.tail = run.catch(() => {});
    return run;
  }
}

function describe(err: unknown): { name: string; message: string } {
  return { name: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) };
}
