import type { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { withDeadline } from '../shared/deadline';
import type { LogSink } from '../shared/log';

export const DEFAULT_IMDS_ENDPOINT = 'http://169.254.169.254';
/** The longest IMDSv2 allows: one token lasts the instance's whole life in practice. */
export const DEFAULT_TOKEN_TTL_SEC = 21_600;
export const DEFAULT_IMDS_TIMEOUT_MS = 1000;
export const DEFAULT_COMPLETE_ATTEMPTS = 4;
export const DEFAULT_RETRY_BASE_MS = 500;
export const DEFAULT_REQUEST_TIMEOUT_MS = 5000;
const TERMINATED = 'Terminated';

/** A failed instance metadata call; `status` is the HTTP status when there was an answer. */
export class ImdsError extends Error {
  override name = 'ImdsError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

/** The base URL the AWS SDKs use too: AWS_EC2_METADATA_SERVICE_ENDPOINT, else the link-local address. */
export function imdsEndpointFromEnv(env: NodeJS.ProcessEnv = process.env): string {
  return (env.AWS_EC2_METADATA_SERVICE_ENDPOINT || DEFAULT_IMDS_ENDPOINT).replace(/\/+$/, '');
}

export interface ImdsOptions {
  /** @default imdsEndpointFromEnv() */
  endpoint?: string;
  /** Per HTTP call; the service answers in well under a millisecond when it answers at all. */
  timeoutMs?: number;
  tokenTtlSec?: number;
}

/**
 * EC2 instance metadata, IMDSv2 only: a session token from PUT /latest/api/token goes with every read,
 * and is renewed a little before it expires (or at once if the service refuses it).
 */
export class Imds {
  readonly endpoint: string;
  private readonly timeoutMs: number;
  private readonly tokenTtlSec: number;
  private token: string | undefined;
  private tokenExpiresAt = 0;
  /** Tokens fetched so far (tests check the renewal with it). */
  tokensFetched = 0;

  constructor(options: ImdsOptions = {}) {
    this.endpoint = (options.endpoint ?? imdsEndpointFromEnv()).replace(/\/+$/, '');
    this.timeoutMs = options.timeoutMs ?? DEFAULT_IMDS_TIMEOUT_MS;
    this.tokenTtlSec = options.tokenTtlSec ?? DEFAULT_TOKEN_TTL_SEC;
    if (
      !Number.isInteger(this.tokenTtlSec) ||
      this.tokenTtlSec < 1 ||
      this.tokenTtlSec > DEFAULT_TOKEN_TTL_SEC
    ) {
      throw new RangeError(`tokenTtlSec must be 1..${DEFAULT_TOKEN_TTL_SEC}; got ${this.tokenTtlSec}`);
    }
  }

  /** GET /latest/<path>, e.g. `meta-data/instance-id`; the body, trimmed. */
  async get(path: string): Promise<string> {
    const response = await this.read(path);
    // Refused although fresh by our clock (the service restarted, or the clocks disagree): one more
    // try with a new token.
    if (response.status === 401) {
      this.token = undefined;
      await response.text(); // frees the connection for the retry
      return this.answer(path, await this.read(path));
    }
    return this.answer(path, response);
  }

  private async read(path: string): Promise<Response> {
    const token = await this.sessionToken();
    return fetch(`${this.endpoint}/latest/${path}`, {
      headers: { 'x-aws-ec2-metadata-token': token },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
  }

  private async answer(path: string, response: Response): Promise<string> {
    const text = await response.text();
    if (response.status === 401) this.token = undefined;
    if (!response.ok) {
      throw new ImdsError(`instance metadata ${path} answered ${response.status}`, response.status);
    }
    return text.trim();
  }

  private async sessionToken(): Promise<string> {
    const ttlMs = this.tokenTtlSec * 1000;
    // Renew with a margin, so a token never expires between this check and the read it goes with.
    if (this.token && Date.now() < this.tokenExpiresAt - Math.min(60_000, ttlMs / 4)) return this.token;
    const requestedAt = Date.now();
    const response = await fetch(`${this.endpoint}/latest/api/token`, {
      method: 'PUT',
      headers: { 'x-aws-ec2-metadata-token-ttl-seconds': String(this.tokenTtlSec) },
      signal: AbortSignal.timeout(this.timeoutMs),
    });
    const text = await response.text();
    if (!response.ok || text.trim() === '') {
      throw new ImdsError(`instance metadata token request answered ${response.status}`, response.status);
    }
    this.token = text.trim();
    this.tokenExpiresAt = requestedAt + ttlMs;
    this.tokensFetched++;
    return this.token;
  }
}

export type TerminationLog = LogSink<'info' | 'warn' | 'error'>;

export interface TerminationWatchOptions {
  /** Name of the group's termination lifecycle hook. */
  lifecycleHook: string;
  autoScalingGroup: string;
  /** Period between metadata reads while in service. */
  pollMs: number;
  /** Called once, when the target lifecycle state turns to Terminated. */
  onTerminating: () => void;
  log: TerminationLog;
  imds?: Imds;
  /** @default autoScalingClientFromEnv(), loaded when the action is completed */
  client?: AutoScalingClient;
  /** CompleteLifecycleAction attempts, instance id read included. @default 4 */
  completeAttempts?: number;
  /** Wait after the first failed attempt; doubles each time. @default 500 */
  retryBaseMs?: number;
  /** Upper bound on one CompleteLifecycleAction call. @default 5000 */
  requestTimeoutMs?: number;
}

export interface TerminationStats {
  /** Metadata reads of the target lifecycle state, answered or not. */
  polls: number;
  pollFailures: number;
  /** The state read Terminated: the drain has been started. */
  terminating: boolean;
  completionAttempts: number;
  completionFailures: number;
  /** CompleteLifecycleAction (CONTINUE) succeeded. */
  completed: boolean;
}

/**
 * The default client: the SDK resolves AWS_ENDPOINT_URL_AUTO_SCALING, then AWS_ENDPOINT_URL, by itself
 * (serviceId 'Auto Scaling'; see the child-process test). Loaded only when an instance terminates, so
 * a node does not carry the SDK for its whole life to make one call at the end. One attempt per call:
 * complete() retries itself, with the instance id read in the loop.
 */
export function autoScalingClientFromEnv(): AutoScalingClient {
  const sdk = require('@aws-sdk/client-auto-scaling') as typeof import('@aws-sdk/client-auto-scaling');
  return new sdk.AutoScalingClient({ maxAttempts: 1 });
}

/**
 * Drains before an Auto Scaling scale-in or instance refresh takes the instance away. The group's
 * termination lifecycle hook holds the instance in Terminating:Wait; instance metadata then reports
 * `autoscaling/target-lifecycle-state` = Terminated. Seeing that, the node drains as on SIGTERM, and
 * afterwards completes the hook with CONTINUE so the termination goes ahead at once instead of after
 * the hook's heartbeat timeout. Metadata failures are logged and retried; they never stop the node.
 */
export class TerminationWatch {
  private readonly imds: Imds;
  private readonly counters: TerminationStats = {
    polls: 0,
    pollFailures: 0,
    terminating: false,
    completionAttempts: 0,
    completionFailures: 0,
    completed: false,
  };
  private failuresInARow = 0;
  private timer: NodeJS.Timeout | undefined;
  private started = false;
  private instanceId: string | undefined;
  private completion: Promise<boolean> | undefined;

  constructor(private readonly options: TerminationWatchOptions) {
    if (!options.lifecycleHook) throw new RangeError('lifecycleHook is required');
    if (!options.autoScalingGroup) throw new RangeError('autoScalingGroup is required');
    if (!(options.pollMs > 0)) throw new RangeError(`pollMs must be positive; got ${options.pollMs}`);
    this.imds = options.imds ?? new Imds();
  }

  get stats(): Readonly<TerminationStats> {
    return { ...this.counters };
  }

  get terminating(): boolean {
    return this.counters.terminating;
  }

  start(): void {
    if (this.started || this.counters.terminating) return;
    this.started = true;
    this.options.log.info(
      { lifecycleHook: this.options.lifecycleHook, imds: this.imds.endpoint, pollMs: this.options.pollMs },
      'watching for Auto Scaling termination',
    );
    this.schedule(0);
  }

  /** Stops polling; complete() still works (the drain closes the node before it completes the hook). */
  stop(): void {
    this.started = false;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** One metadata read; the state, or undefined if the read failed. Never rejects. */
  async pollOnce(): Promise<string | undefined> {
    this.counters.polls++;
    try {
      const state = await this.imds.get('meta-data/autoscaling/target-lifecycle-state');
      if (this.failuresInARow > 0) {
        this.options.log.info({ failures: this.failuresInARow, state }, 'instance metadata answers again');
      }
      this.failuresInARow = 0;
      return state;
    } catch (err) {
      this.counters.pollFailures++;
      this.failuresInARow++;
      // 1st, 2nd, 4th, 8th... failure in a row: an instance without metadata must not flood the log.
      if ((this.failuresInARow & (this.failuresInARow - 1)) === 0) {
        this.options.log.warn(
          { error: describe(err), failures: this.failuresInARow },
          'reading the target lifecycle state failed; retrying',
        );
      }
      return undefined;
    }
  }

  /** Completes the hook if the instance was seen terminating; resolves whether it was completed. */
  completeIfTerminating(): Promise<boolean> {
    return this.counters.terminating ? this.complete() : Promise.resolve(false);
  }

  /**
   * CompleteLifecycleAction with CONTINUE, retried with backoff. Never rejects: if every attempt fails
   * the hook's heartbeat timeout continues the termination anyway, only later.
   */
  complete(): Promise<boolean> {
    this.completion ??= this.completeWithRetries();
    return this.completion;
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.round(), delayMs);
    this.timer.unref();
  }

  private async round(): Promise<void> {
    const state = await this.pollOnce();
    if (!this.started) return;
    if (state === TERMINATED) {
      this.counters.terminating = true;
      this.stop();
      this.options.log.info(
        { lifecycleHook: this.options.lifecycleHook, autoScalingGroup: this.options.autoScalingGroup },
        'instance is terminating (Auto Scaling lifecycle hook); draining',
      );
      try {
        this.options.onTerminating();
      } catch (err) {
        this.options.log.error({ error: describe(err) }, 'starting the drain failed');
      }
      return;
    }
    this.schedule(this.options.pollMs);
  }

  private async completeWithRetries(): Promise<boolean> {
    const attempts = this.options.completeAttempts ?? DEFAULT_COMPLETE_ATTEMPTS;
    const retryBaseMs = this.options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    const client = this.options.client ?? autoScalingClientFromEnv();
    const { lifecycleHook, autoScalingGroup } = this.options;
    try {
      for (let attempt = 1; attempt <= attempts; attempt++) {
        this.counters.completionAttempts++;
        try {
          this.instanceId ??= await this.imds.get('meta-data/instance-id');
          await this.send(client, lifecycleHook, autoScalingGroup, this.instanceId);
          this.counters.completed = true;
          this.options.log.info(
            { lifecycleHook, autoScalingGroup, instanceId: this.instanceId, attempt },
            'lifecycle action completed (CONTINUE)',
          );
          return true;
        } catch (err) {
          this.counters.completionFailures++;
          if (attempt === attempts) {
            this.options.log.error(
              { error: describe(err), attempts, lifecycleHook },
              'lifecycle action not completed; the hook heartbeat timeout will continue the termination',
            );
            break;
          }
          const retryInMs = retryBaseMs * 2 ** (attempt - 1);
          this.options.log.warn(
            { error: describe(err), attempt, retryInMs },
            'completing the lifecycle action failed; retrying',
          );
          await new Promise((resolve) => setTimeout(resolve, retryInMs));
        }
      }
      return false;
    } finally {
      // A caller's client is theirs to destroy.
      if (!this.options.client) client.destroy();
    }
  }

  private async send(
    client: AutoScalingClient,
    lifecycleHook: string,
    autoScalingGroup: string,
    instanceId: string,
  ): Promise<void> {
    const { CompleteLifecycleActionCommand } =
      require('@aws-sdk/client-auto-scaling') as typeof import('@aws-sdk/client-auto-scaling');
    const timeoutMs = this.options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const command = new CompleteLifecycleActionCommand({
      LifecycleHookName: lifecycleHook,
      AutoScalingGroupName: autoScalingGroup,
      InstanceId: instanceId,
      LifecycleActionResult: 'CONTINUE',
    });
    await withDeadline(timeoutMs, `CompleteLifecycleAction took longer than ${timeoutMs} ms`, (abortSignal) =>
      client.send(command, { abortSignal }),
    );
  }
}

/** Only chosen fields: SDK errors carry the raw response and the client config. */
function describe(err: unknown): { name: string; message: string; status?: number } {
  // Duck-typed, not instanceof: errors from fetch() may come from another realm (Jest, vm).
  const e = err as
    | { name?: unknown; message?: unknown; status?: unknown; cause?: { code?: string; message?: string } }
    | undefined;
  if (typeof e?.message !== 'string') return { name: 'NonError', message: String(err).slice(0, 300) };
  // fetch() says only "fetch failed"; the cause says why (ECONNREFUSED, a timeout...).
  const message = e.cause ? `${e.message} (${e.cause.code ?? e.cause.message})` : e.message;
  const status =
    typeof e.status === 'number'
      ? e.status
      : (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  return {
    name: typeof e.name === 'string' ? e.name : 'Error',
    message: message.slice(0, 300),
    ...(status === undefined ? {} : { status }),
  };
}
