import type { Logger } from '../shared/log';
import { PolledJson } from './polled-json';

export const MAX_REVOCATIONS_BYTES = 8 * 1024 * 1024;

export interface RevocationEntry {
  kind: 'user' | 'family';
  id: string;
  /** ms since the epoch: tokens issued before this second are revoked. */
  at: number;
}

interface RevocationIndex {
  users: Map<string, number>;
  families: Set<string>;
  size: number;
}

/**
 * The auth service's list of revoked users (password changed, account disabled) and refresh-token
 * families (reuse detected, logout), polled like the key set. A token is revoked when its family is,
 * or when it was issued in an earlier second than its user's revocation (JWT `iat` has whole
 * seconds, so a token issued within the same second as the revocation is not covered).
 */
export class RevocationList {
  private readonly document: PolledJson<RevocationIndex>;
  private lastText = '';

  constructor(options: {
    url?: string;
    file?: string;
    refreshMs: number;
    /** Region of the bucket of an s3:// URL. @default the SDK's resolution */
    s3Region?: string;
    log: Logger;
    onChange: () => void;
  }) {
    this.document = new PolledJson({
      name: 'revocation list',
      url: options.url,
      file: options.file,
      refreshMs: options.refreshMs,
      s3Region: options.s3Region,
      maxBytes: MAX_REVOCATIONS_BYTES,
      log: options.log,
      parse: (value) => {
        const index = parseRevocations(value);
        const text = JSON.stringify([...index.users, ...index.families]);
        if (text !== this.lastText) {
          this.lastText = text;
          queueMicrotask(options.onChange);
        }
        return index;
      },
    });
  }

  isRevoked(userId: string, family: string | undefined, issuedAtSec: number): boolean {
    const index = this.document.value;
    if (!index) return false;
    if (family !== undefined && index.families.has(family)) return true;
    const at = index.users.get(userId);
    return at !== undefined && issuedAtSec < Math.floor(at / 1000);
  }

  get size(): number {
    return this.document.value?.size ?? 0;
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

export function parseRevocations(value: unknown): RevocationIndex {
  const entries = (value as { entries?: unknown })?.entries;
  if (!Array.isArray(entries)) throw new Error('revocation list must be an object with an "entries" array');
  const users = new Map<string, number>();
  const families = new Set<string>();
  for (const entry of entries as Array<Partial<RevocationEntry>>) {
    if (typeof entry?.id !== 'string' || typeof entry.at !== 'number' || entry.id.length > 256) continue;
    if (entry.kind === 'family') families.add(entry.id);
    else if (entry.kind === 'user') users.set(entry.id, Math.max(users.get(entry.id) ?? 0, entry.at));
  }
  return { users, families, size: users.size + families.size };
}
