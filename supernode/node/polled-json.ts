import { readFile } from 'node:fs/promises';
import type { Logger } from '../shared/log';
import { isS3Url } from '../shared/s3';
import { S3Source } from './s3-source';

export interface PolledJsonOptions<T> {
  /** What it is, for logs. */
  name: string;
  /** Exactly one source: an http(s) or s3://bucket/key URL, or a file path. */
  url?: string;
  file?: string;
  /** Region of the S3 client for an s3:// URL. @default the SDK's resolution */
  s3Region?: string;
  refreshMs: number;
  maxBytes: number;
  /** Turns the parsed JSON into the value, or throws if it is not acceptable. */
  parse: (value: unknown) => T;
  log: Logger;
  fetchTimeoutMs?: number;
}

/**
 * A small JSON document the node re-reads on a period (public keys, revocations). Readers use the
 * last good value in memory, so nothing on a client's path waits on the network, and a failed read
 * keeps what was there. Until a first read succeeds it retries sooner, backing off to the period.
 */
export class PolledJson<T> {
  private current: T | undefined;
  private timer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Message of the latest failure of the current run, so a repeat is not logged again. */
  private lastError: string | undefined;
  private stopped = false;
  /** S3 only: the ETag of the current value, so an unchanged object costs a 304 and no body. */
  private etag: string | undefined;
  private readonly s3: S3Source | undefined;
  loadedAt: number | undefined;

  constructor(private readonly options: PolledJsonOptions<T>) {
    if (Boolean(options.url) === Boolean(options.file)) {
      throw new Error(`${options.name} needs exactly one of a URL or a file`);
    }
    this.s3 = isS3Url(options.url)
      ? new S3Source({
          url: options.url as string,
          name: options.name,
          maxBytes: options.maxBytes,
          timeoutMs: options.fetchTimeoutMs ?? 5000,
          region: options.s3Region,
        })
      : undefined;
  }

  get value(): T | undefined {
    return this.current;
  }

  /** Reads once without throwing (a node may start before the source is up), then keeps refreshing. */
  async start(): Promise<void> {
    await this.refresh();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.s3?.destroy();
  }

  /** Reads now; returns whether it succeeded. */
  async refresh(): Promise<boolean> {
    clearTimeout(this.timer);
    let ok = false;
    try {
      const read = await this.read();
      // Not modified: the current value stands, and the read still counts as a good one.
      if (read !== 'not_modified') {
        this.current = this.options.parse(JSON.parse(read.text));
        this.etag = read.etag;
      }
      this.loadedAt = Date.now();
      if (this.failures > 0)
        this.options.log.info({ failures: this.failures }, `${this.options.name} loaded`);
      this.failures = 0;
      this.lastError = undefined;
      ok = true;
    } catch (err) {
      this.failures++;
      this.logFailure(err as Error);
    }
    if (!this.stopped) {
      const { refreshMs } = this.options;
      const delay = this.current ? refreshMs : Math.min(refreshMs, 250 * 2 ** Math.min(this.failures, 8));
      this.timer = setTimeout(() => void this.refresh(), delay);
      this.timer.unref();
    }
    return ok;
  }

  /**
   * One warning per run of identical failures (a missing file would otherwise warn at every retry), and
   * it says what the node is doing: holding the last good copy, or still waiting for a first one.
   */
  private logFailure(err: Error): void {
    const error = { name: err.name, message: err.message };
    const repeated = this.lastError === error.message;
    this.lastError = error.message;
    const log = this.options.log;
    const what = this.current
      ? `${this.options.name} refresh failed; keeping the last good copy`
      : `${this.options.name} not loaded yet; retrying`;
    if (repeated) log.debug({ err: error, failures: this.failures }, what);
    else log.warn({ err: error, failures: this.failures }, what);
  }

  private async read(): Promise<{ text: string; etag?: string } | 'not_modified'> {
    const { file, url, maxBytes, name } = this.options;
    // Ask "changed since?" only while holding the value that ETag belongs to.
    if (this.s3) return this.s3.read(this.current === undefined ? undefined : this.etag);
    const text = file
      ? await readFile(file, 'utf8')
      : await (async () => {
          const response = await fetch(url as string, {
            signal: AbortSignal.timeout(this.options.fetchTimeoutMs ?? 5000),
            headers: { accept: 'application/json' },
          });
          if (!response.ok) throw new Error(`${name} request answered ${response.status}`);
          return response.text();
        })();
    if (text.length > maxBytes) throw new Error(`${name} over ${maxBytes} bytes`);
    return { text };
  }
}
