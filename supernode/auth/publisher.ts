import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { withDeadline } from '../shared/deadline';
import type { LogSink } from '../shared/log';
import { s3ClientFromEnv } from '../shared/s3';

export interface S3PublisherOptions {
  bucket: string;
  /** Put in front of each object name as is: `auth/` gives `auth/jwks.json`. @default '' */
  prefix?: string;
  /** @default s3ClientFromEnv(region) */
  client?: S3Client;
  region?: string;
  /** First retry delay after a failed put; doubles per failure in a row, up to retryMaxMs. @default 1000 */
  retryBaseMs?: number;
  /** @default 60000 */
  retryMaxMs?: number;
  /** Upper bound on one put, SDK retries included. @default 10000 */
  requestTimeoutMs?: number;
  /** Uniform in [0, 1), for the retry jitter. @default Math.random */
  random?: () => number;
  log: LogSink<'warn' | 'info'>;
}

export interface S3PublisherStats {
  /** Puts that succeeded. */
  published: number;
  /** Puts that failed (rejected or timed out). */
  failures: number;
  /** Publishes skipped because the object already holds that body (sent in the last 10 minutes). */
  unchanged: number;
  /** `Name: message` of the latest failure. */
  lastError?: string;
}

export const DEFAULT_RETRY_BASE_MS = 1000;
export const DEFAULT_RETRY_MAX_MS = 60_000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

interface Slot {
  name: string;
  /** The newest content not yet sent; a newer publish replaces it, so only the latest goes out. */
  pending?: { body: string; cacheControl: string };
  /** The loop sending this object, while one runs. */
  loop?: Promise<void>;
  failures: number;
  /** What the last successful put sent, and when: an unchanged body is not sent again for a while. */
  sent?: { body: string; at: number };
}

/** An unchanged object is still re-sent this often, in case someone deleted or overwrote it. */
const UNCHANGED_RESEND_MS = 10 * 60_000;

/**
 * Copies small JSON files to S3 so that readers (supernodes) have them while the auth service is down.
 * Each object has one sender at a time and keeps only its newest content, so a burst of changes costs at
 * most one put in flight and one waiting, and an older content never lands after a newer one. A failed
 * put is retried with capped, jittered backoff. publish() never throws and never waits: a slow or
 * failing S3 must not hold up a request or take the service down.
 */
export class S3Publisher {
  private readonly prefix: string;
  private readonly retryBaseMs: number;
  private readonly retryMaxMs: number;
  private readonly requestTimeoutMs: number;
  private readonly random: () => number;
  private readonly client: S3Client;
  private readonly ownsClient: boolean;
  private readonly slots = new Map<string, Slot>();
  private readonly counters: S3PublisherStats = { published: 0, failures: 0, unchanged: 0 };
  private readonly sleeping = new Set<() => void>();
  private stopped = false;

  constructor(private readonly options: S3PublisherOptions) {
    if (!options.bucket) throw new RangeError('bucket is required');
    this.prefix = options.prefix ?? '';
    this.retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.retryMaxMs = options.retryMaxMs ?? DEFAULT_RETRY_MAX_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    for (const [name, value] of Object.entries({
      retryBaseMs: this.retryBaseMs,
      retryMaxMs: this.retryMaxMs,
      requestTimeoutMs: this.requestTimeoutMs,
    })) {
      if (!(value > 0)) throw new RangeError(`${name} must be positive; got ${value}`);
    }
    this.random = options.random ?? Math.random;
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? s3ClientFromEnv(options.region);
  }

  get stats(): Readonly<S3PublisherStats> {
    return { ...this.counters };
  }

  /** Sends `body` as `<prefix><name>` soon; replaces any content of that object still waiting. */
  publish(name: string, body: string, cacheControl: string): void {
    if (this.stopped) return;
    let slot = this.slots.get(name);
    if (!slot) {
      slot = { name, failures: 0 };
      this.slots.set(name, slot);
    }
    // The revocation list is rebuilt every few seconds and rarely changes: skip puts that change nothing.
    if (!slot.loop && slot.sent?.body === body && Date.now() - slot.sent.at < UNCHANGED_RESEND_MS) {
      this.counters.unchanged++;
      return;
    }
    slot.pending = { body, cacheControl };
    slot.loop ??= this.drain(slot);
  }

  /** Resolves once every object's newest content is sent (or stop() was called). */
  async idle(): Promise<void> {
    for (;;) {
      const loops = [...this.slots.values()].flatMap((s) => (s.loop ? [s.loop] : []));
      if (loops.length === 0) return;
      await Promise.all(loops);
    }
  }

  /** Final: ends backoff waits, lets puts in flight finish (bounded by the timeout), sends nothing more. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const wake of this.sleeping) wake();
    await this.idle();
    // Free the keep-alive sockets of a client we created; a caller's client is theirs to destroy.
    if (this.ownsClient) this.client.destroy();
  }

  private async drain(slot: Slot): Promise<void> {
    while (slot.pending && !this.stopped) {
      const content = slot.pending;
      slot.pending = undefined;
      try {
        await this.put(slot.name, content.body, content.cacheControl);
        this.counters.published++;
        slot.sent = { body: content.body, at: Date.now() };
        if (slot.failures > 0) {
          this.options.log.info(
            { object: this.keyOf(slot.name), failures: slot.failures },
            's3 publish recovered',
          );
        }
        slot.failures = 0;
      } catch (err) {
        // Retry this content unless a newer one arrived meanwhile.
        slot.pending ??= content;
        slot.failures++;
        const e = err instanceof Error ? err : new Error(String(err));
        this.counters.failures++;
        this.counters.lastError = `${e.name}: ${e.message}`;
        const delayMs = this.backoff(slot.failures);
        // Only chosen fields: SDK errors carry the raw response and request config.
        this.options.log.warn(
          {
            object: this.keyOf(slot.name),
            error: { name: e.name, message: e.message },
            failures: slot.failures,
            retryInMs: delayMs,
          },
          's3 publish failed; will retry',
        );
        await this.sleep(delayMs);
      }
    }
    // Cleared in the same synchronous step as the last check, so a publish() from now on starts a new loop.
    slot.loop = undefined;
  }

  private keyOf(name: string): string {
    return `${this.prefix}${name}`;
  }

  /** "Equal jitter": half fixed, half random, so a fleet recovering together does not retry in lockstep. */
  private backoff(failures: number): number {
    const cap = Math.min(this.retryMaxMs, this.retryBaseMs * 2 ** Math.min(failures - 1, 30));
    return Math.round(cap / 2 + (cap / 2) * this.random());
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const wake = (): void => {
        clearTimeout(timer);
        this.sleeping.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      timer.unref();
      this.sleeping.add(wake);
    });
  }

  private async put(name: string, body: string, cacheControl: string): Promise<void> {
    const command = new PutObjectCommand({
      Bucket: this.options.bucket,
      Key: this.keyOf(name),
      Body: body,
      ContentType: 'application/json',
      CacheControl: cacheControl,
    });
    await withDeadline(
      this.requestTimeoutMs,
      `PutObject took longer than ${this.requestTimeoutMs} ms`,
      (abortSignal) => this.client.send(command, { abortSignal }),
    );
  }
}
