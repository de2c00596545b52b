import { writeAtomically } from '../../shared/files';
import type { S3Publisher } from '../publisher';
import type { Revocation } from '../store';
import type { AccountStoreApi } from '../store-api';

export interface RevocationPublisherOptions {
  store: AccountStoreApi;
  /** The file supernodes on this host read. */
  file: string;
  publisher?: S3Publisher;
  /** Tokens issued before a revocation are all expired this long after it. */
  retainMs: number;
}

/**
 * The revocation list supernodes poll: rebuilt from the store, written to a file, copied to S3 and
 * served over HTTP. Revoking publishes at once from this instance; others pick it up on their timer.
 */
export class RevocationPublisher {
  /** The latest list as served at /v1/revocations. */
  text = JSON.stringify({ generatedAt: 0, entries: [] });
  private running: Promise<void> | undefined;
  private queued: Promise<void> | undefined;

  constructor(private readonly options: RevocationPublisherOptions) {}

  async revoke(revocation: Omit<Revocation, 'expiresAt'>): Promise<void> {
    await this.options.store.putRevocation({
      ...revocation,
      expiresAt: revocation.at + this.options.retainMs,
    });
    await this.publish();
  }

  /**
   * Each rebuild scans the store, so callers share rebuilds: one runs, at most one more waits and
   * covers every revocation written meanwhile (a burst of refresh-token reuse costs two scans, not N).
   */
  publish(): Promise<void> {
    if (!this.running) {
      this.running = this.rebuild().finally(() => {
        this.running = undefined;
      });
      return this.running;
    }
    this.queued ??= this.running
      .catch(() => {})
      .then(() => {
        this.queued = undefined;
        return this.publish();
      });
    return this.queued;
  }

  private async rebuild(): Promise<void> {
    const { store, file, publisher } = this.options;
    const entries = (await store.listRevocations(Date.now())).map(({ kind, id, at }) => ({ kind, id, at }));
    const text = JSON.stringify({ generatedAt: Date.now(), entries });
    this.text = text;
    await writeAtomically(file, `${text}\n`, 0o644);
    publisher?.publish('revocations.json', `${text}\n`, 'public, max-age=5');
  }
}
