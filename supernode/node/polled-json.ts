import { readFile } from 'node:fs/promises';
import type { Logger } from '../log';

export interface PolledJsonOptions<T> {
  /** What it is, for logs. */
  name: string;
  /** Exactly one source: an http(s) URL or a file path. */
  url?: string;
  file?: string;
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
  private stopped = false;
  loadedAt: number | undefined;

  constructor(private readonly options: PolledJsonOptions<T>) {
    if (Boolean(options.url) === Boolean(options.file)) {
      throw new Error(`${options.name} needs exactly one of a URL or a file`);
    }
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
  }

  /** Reads now; returns whether it succeeded. */
  async refresh(): Promise<boolean> {
    clearTimeout(this.timer);
    let ok = false;
    try {
      this.current = this.options.parse(JSON.parse(await this.read()));
      this.loadedAt = Date.now();
      this.failures = 0;
      ok = true;
    } catch (err) {
      this.failures++;
      this.options.log.warn(
        { err: { name: (err as Error).name, message: (err as Error).message }, failures: this.failures },
        `${this.options.name} refresh failed; keeping the last good copy`,
      );
    }
    if (!this.stopped) {
      const { refreshMs } = this.options;
      const delay = this.current ? refreshMs : Math.min(refreshMs, 250 * 2 ** Math.min(this.failures, 8));
      this.timer = setTimeout(() => void this.refresh(), delay);
      this.timer.unref();
    }
    return ok;
  }

  private async read(): Promise<string> {
    const { file, url, maxBytes, name } = this.options;
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
    return text;
  }
}
