import {
  CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type StandardUnit,
} from '@aws-sdk/client-cloudwatch';
import { withDeadline } from '../shared/deadline';
import type { LogSink } from '../shared/log';

export interface MetricSample {
  name: string;
  value: number;
  unit: StandardUnit;
  /** Added to the publisher's dimensions for this datum (e.g. { Reason: 'full' }); a same name replaces. */
  dimensions?: Record<string, string>;
}

export interface CloudWatchPublisherOptions {
  /** @default 'Supernode' */
  namespace?: string;
  /** e.g. { AutoScalingGroupName: 'sn-fleet' }; 1..30 entries, added to every datum. */
  dimensions: Record<string, string>;
  /** Tick period; at least 1000 ms. Tests drive publishOnce() or fake timers instead of shorter periods. */
  intervalMs: number;
  /** Snapshot of the current figures; called once per tick. */
  collect: () => MetricSample[];
  /** @default cloudWatchClientFromEnv(region) */
  client?: CloudWatchClient;
  region?: string;
  /** Upper bound on one PutMetricData call, retries included. @default 5000 */
  requestTimeoutMs?: number;
  log: LogSink<'warn'> & Partial<LogSink<'debug'>>;
}

export interface PublishResult {
  /** PutMetricData calls made. */
  requests: number;
  /** Datums in calls that succeeded. */
  datums: number;
  /** Calls that failed (rejected or timed out). */
  failed: number;
}

export interface PublisherStats {
  /** Datums accepted by CloudWatch since construction. */
  published: number;
  /** Failed calls, plus ticks whose collect() threw. */
  failures: number;
  /** Ticks skipped because the previous publish was still in flight. */
  skippedOverlaps: number;
  /** `Name: message` of the latest failure. */
  lastError?: string;
}

export const DEFAULT_NAMESPACE = 'Supernode';
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
export const MIN_INTERVAL_MS = 1000;
/** PutMetricData limits: https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html */
export const MAX_DATUMS_PER_REQUEST = 1000;
export const MAX_REQUEST_BYTES = 1024 * 1024;
const MAX_DIMENSIONS = 30;
// CloudWatch rejects magnitudes beyond 2^360 as well as NaN/Infinity.
const MAX_ABS_VALUE = 2 ** 360;
// Room for the envelope (namespace, action, version, headers the limit may count) under the 1 MB cap.
const REQUEST_BYTE_BUDGET = MAX_REQUEST_BYTES - 64 * 1024;
const MAX_LOGGED_NAMES = 20;

const EMPTY_RESULT: PublishResult = { requests: 0, datums: 0, failed: 0 };

/**
 * The default client. The SDK (3.1164) resolves AWS_ENDPOINT_URL_CLOUDWATCH, then AWS_ENDPOINT_URL, by
 * itself (see the real-HTTP test), so no endpoint is passed here. Two attempts only: a metrics tick is
 * cheap to lose and the next one comes soon, so long retry chains only hold up the fleet.
 */
export function cloudWatchClientFromEnv(region?: string): CloudWatchClient {
  return new CloudWatchClient(region === undefined ? { maxAttempts: 2 } : { region, maxAttempts: 2 });
}

/**
 * Publishes a snapshot of key figures to CloudWatch every `intervalMs`. Failures and hangs are logged and
 * counted, never thrown: losing a data point must not take the supernode down.
 */
export class CloudWatchPublisher {
  private readonly namespace: string;
  private readonly dimensions: { Name: string; Value: string }[];
  private readonly intervalMs: number;
  private readonly requestTimeoutMs: number;
  private readonly collect: () => MetricSample[];
  private readonly client: CloudWatchClient;
  private readonly ownsClient: boolean;
  private readonly log: CloudWatchPublisherOptions['log'];
  private readonly counters: PublisherStats = { published: 0, failures: 0, skippedOverlaps: 0 };
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<PublishResult> | undefined;
  private stopped = false;

  constructor(options: CloudWatchPublisherOptions) {
    this.namespace = options.namespace ?? DEFAULT_NAMESPACE;
    validateNamespace(this.namespace);
    this.dimensions = validateDimensions(options.dimensions);
    if (!Number.isFinite(options.intervalMs) || options.intervalMs < MIN_INTERVAL_MS) {
      throw new Error(`intervalMs must be at least ${MIN_INTERVAL_MS}, got ${options.intervalMs}`);
    }
    this.intervalMs = options.intervalMs;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!Number.isFinite(this.requestTimeoutMs) || this.requestTimeoutMs <= 0) {
      throw new Error(`requestTimeoutMs must be a positive number, got ${options.requestTimeoutMs}`);
    }
    this.collect = options.collect;
    this.log = options.log;
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? cloudWatchClientFromEnv(options.region);
  }

  get stats(): Readonly<PublisherStats> {
    return { ...this.counters };
  }

  start(): void {
    if (this.stopped) throw new Error('CloudWatchPublisher was stopped; create a new one');
    if (this.timer) return;
    this.timer = setInterval(() => this.tick(), this.intervalMs);
    // Metrics alone must not keep the process alive.
    this.timer.unref();
  }

  /** Final: clears the timer, lets an in-flight call finish (bounded by the timeout), sends nothing more. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.inFlight;
    // Free the keep-alive sockets of a client we created; a caller's client is theirs to destroy.
    if (this.ownsClient) this.client.destroy();
  }

  /** One collect-and-send round. Never rejects; an overlapping or post-stop call sends nothing. */
  async publishOnce(): Promise<PublishResult> {
    if (this.stopped) return { ...EMPTY_RESULT };
    if (this.inFlight) {
      this.counters.skippedOverlaps++;
      this.log.debug?.({ namespace: this.namespace }, 'cloudwatch publish still in flight; tick skipped');
      return { ...EMPTY_RESULT };
    }
    const run = this.run();
    this.inFlight = run;
    try {
      return await run;
    } finally {
      this.inFlight = undefined;
    }
  }

  private tick(): void {
    // publishOnce never rejects, so nothing is left unhandled here.
    void this.publishOnce();
  }

  private async run(): Promise<PublishResult> {
    const result = { ...EMPTY_RESULT };
    let samples: MetricSample[];
    try {
      samples = this.collect();
    } catch (err) {
      this.recordFailure(err, 'cloudwatch collect() threw; tick skipped');
      return result;
    }

    // One timestamp per tick so every datum of a snapshot lands in the same period.
    const datums = this.toDatums(samples, new Date());
    for (const batch of toBatches(datums)) {
      // stop() during a multi-batch tick: finish the call in flight, start no other.
      if (this.stopped) break;
      result.requests++;
      try {
        await this.send(batch);
        result.datums += batch.length;
        this.counters.published += batch.length;
      } catch (err) {
        result.failed++;
        this.recordFailure(err, 'cloudwatch PutMetricData failed', batch.length);
      }
    }
    if (result.requests > 0) {
      this.log.debug?.({ namespace: this.namespace, ...result }, 'cloudwatch published');
    }
    return result;
  }

  private toDatums(samples: MetricSample[], timestamp: Date): MetricDatum[] {
    const datums: MetricDatum[] = [];
    const dropped: string[] = [];
    for (const sample of samples) {
      const reason = invalidSampleReason(sample);
      const dimensions = reason ?? this.dimensionsOf(sample);
      if (typeof dimensions === 'string') {
        dropped.push(`${String(sample.name)}: ${dimensions}`);
        continue;
      }
      datums.push({
        MetricName: sample.name,
        Dimensions: dimensions,
        Unit: sample.unit,
        Value: sample.value,
        Timestamp: timestamp,
        StorageResolution: 60,
      });
    }
    if (dropped.length > 0) {
      // One line per tick, not per sample: a stuck NaN gauge would otherwise flood the log.
      this.log.warn(
        { namespace: this.namespace, dropped: dropped.length, samples: dropped.slice(0, MAX_LOGGED_NAMES) },
        'cloudwatch samples dropped (non-finite, out of range, badly named or bad dimensions)',
      );
    }
    return datums;
  }

  /** The publisher's dimensions merged with the sample's, or why they are not acceptable. */
  private dimensionsOf(sample: MetricSample): { Name: string; Value: string }[] | string {
    if (sample.dimensions === undefined) return this.dimensions;
    const merged = new Map(this.dimensions.map((d) => [d.Name, d.Value]));
    for (const [name, value] of Object.entries(sample.dimensions)) {
      const problem = dimensionProblem(name, value);
      if (problem) return problem;
      merged.set(name, value);
    }
    if (merged.size > MAX_DIMENSIONS) return `more than ${MAX_DIMENSIONS} dimensions`;
    return [...merged].map(([Name, Value]) => ({ Name, Value }));
  }

  private async send(batch: MetricDatum[]): Promise<void> {
    const command = new PutMetricDataCommand({ Namespace: this.namespace, MetricData: batch });
    await withDeadline(
      this.requestTimeoutMs,
      `PutMetricData timed out after ${this.requestTimeoutMs} ms`,
      (abortSignal) => this.client.send(command, { abortSignal }),
    );
  }

  private recordFailure(err: unknown, msg: string, datums?: number): void {
    const error = describeError(err);
    this.counters.failures++;
    this.counters.lastError = `${error.name}: ${error.message}`;
    // Only chosen fields: SDK errors carry the raw response and config, which must stay out of logs.
    this.log.warn({ namespace: this.namespace, datums, error }, msg);
  }
}

interface ErrorSummary {
  name: string;
  message: string;
  statusCode?: number;
  requestId?: string;
}

function describeError(err: unknown): ErrorSummary {
  if (!(err instanceof Error)) return { name: 'NonError', message: truncate(String(err)) };
  const summary: ErrorSummary = { name: err.name, message: truncate(err.message) };
  const metadata = (err as { $metadata?: { httpStatusCode?: unknown; requestId?: unknown } }).$metadata;
  if (typeof metadata?.httpStatusCode === 'number') summary.statusCode = metadata.httpStatusCode;
  if (typeof metadata?.requestId === 'string') summary.requestId = metadata.requestId;
  return summary;
}

function truncate(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

function invalidSampleReason(sample: MetricSample): string | undefined {
  if (typeof sample.name !== 'string' || sample.name.trim() === '' || sample.name.length > 255) {
    return 'name must be 1..255 characters';
  }
  if (typeof sample.value !== 'number' || !Number.isFinite(sample.value)) {
    return `non-finite value ${sample.value}`;
  }
  if (Math.abs(sample.value) > MAX_ABS_VALUE) return 'value beyond ±2^360';
  return undefined;
}

/**
 * A deliberately high estimate of one datum's share of the request: JSON size ×3 covers the worst case of
 * percent-encoding in the query protocol, so the budget holds whichever wire protocol the SDK picks.
 */
export function estimateDatumBytes(datum: MetricDatum): number {
  return Buffer.byteLength(JSON.stringify(datum), 'utf8') * 3 + 128;
}

export function toBatches(datums: MetricDatum[]): MetricDatum[][] {
  const batches: MetricDatum[][] = [];
  let current: MetricDatum[] = [];
  let bytes = 0;
  for (const datum of datums) {
    const size = estimateDatumBytes(datum);
    if (
      current.length > 0 &&
      (current.length >= MAX_DATUMS_PER_REQUEST || bytes + size > REQUEST_BYTE_BUDGET)
    ) {
      batches.push(current);
      current = [];
      bytes = 0;
    }
    current.push(datum);
    bytes += size;
  }
  if (current.length > 0) batches.push(current);
  return batches;
}

// Dimension names and values: printable ASCII with at least one non-space character.
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

function validateNamespace(namespace: string): void {
  if (namespace.trim() === '' || namespace.length > 255 || !PRINTABLE_ASCII.test(namespace)) {
    throw new Error(`namespace must be 1..255 printable ASCII characters, got ${JSON.stringify(namespace)}`);
  }
  if (namespace.startsWith('AWS/')) throw new Error('namespace must not start with AWS/ (reserved by AWS)');
}

function validateDimensions(dimensions: Record<string, string>): { Name: string; Value: string }[] {
  const entries = Object.entries(dimensions ?? {});
  if (entries.length < 1 || entries.length > MAX_DIMENSIONS) {
    throw new Error(`dimensions must have 1..${MAX_DIMENSIONS} entries, got ${entries.length}`);
  }
  return entries.map(([name, value]) => {
    const problem = dimensionProblem(name, value);
    if (problem) throw new Error(problem);
    return { Name: name, Value: value };
  });
}

function dimensionProblem(name: string, value: unknown): string | undefined {
  if (name.trim() === '' || name.length > 255 || !PRINTABLE_ASCII.test(name) || name.startsWith(':')) {
    return `dimension name ${JSON.stringify(name)} must be 1..255 printable ASCII, not starting with :`;
  }
  if (
    typeof value !== 'string' ||
    value.trim() === '' ||
    value.length > 1024 ||
    !PRINTABLE_ASCII.test(value)
  ) {
    return `dimension ${name} value must be 1..1024 printable ASCII characters`;
  }
  return undefined;
}
