import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
} from '@aws-sdk/client-ec2';
import { withDeadline } from '../shared/deadline';
import type { LogSink } from '../shared/log';
/**
 * A mesh member as discovery sees it. `id` is stable per node (instance id in AWS, the node id locally);
 * `meshUrl` is where its mesh listener is (ws://host:port).
 */
import { type Discovery, type MemberAddress, normalise, sameMembers } from './discovery';

export type DiscoveryLog = LogSink<'warn' | 'info'>;

export interface Ec2DiscoveryOptions {
  /** Members are the running instances tagged aws:autoscaling:groupName = this. */
  autoScalingGroup: string;
  /** meshUrl = ws://<PrivateIpAddress>:<meshPort> */
  meshPort: number;
  /** Period between successful rounds, e.g. 15000. */
  refreshMs: number;
  /** First retry delay after a failed round; doubles per failure in a row, up to refreshMs. @default 1000 */
  retryBaseMs?: number;
  /** Upper bound on one round, all pages and SDK retries included. @default 10000 */
  requestTimeoutMs?: number;
  /** @default ec2ClientFromEnv(region) */
  client?: EC2Client;
  region?: string;
  /** A pino Logger fits; only warn and info are used. */
  log: DiscoveryLog;
  /** Called with the new list after a round whose result differs from the previous list. */
  onChange?: (members: readonly MemberAddress[]) => void;
  /** Uniform in [0, 1), for the retry jitter. @default Math.random */
  random?: () => number;
}

/** More pages than any real group needs (1000 instances a page): a longer chain means a looping token. */
export const MAX_PAGES = 100;
export const DEFAULT_RETRY_BASE_MS = 1000;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/**
 * The default client. The SDK resolves AWS_ENDPOINT_URL_EC2, then AWS_ENDPOINT_URL, by itself
 * (@smithy/core's getEndpointUrlConfig with serviceId 'EC2'; see the real-HTTP test), so no endpoint is
 * passed here.
 */
export function ec2ClientFromEnv(region?: string): EC2Client {
  return new EC2Client(region === undefined ? { maxAttempts: 3 } : { region, maxAttempts: 3 });
}

/**
 * Members from EC2 DescribeInstances: the running instances of one auto-scaling group.
 *
 * A failed round keeps the last known list: an EC2 API hiccup must never empty the mesh, because an empty
 * list would make every node drop every peer and re-home every record. A successful empty answer is
 * accepted, though: the group can really be empty, and discovery does not know which instance is itself.
 * After a failure the next round comes after 1 s, 2 s, 4 s... capped at refreshMs, each with "equal
 * jitter" (half fixed, half random) so that a fleet recovering together does not call EC2 in lockstep.
 */
export class Ec2Discovery implements Discovery {
  private list: readonly MemberAddress[] = Object.freeze([]);
  private succeeded = false;
  private started = false;
  /** Bumped by stop(): a round that started before it must neither publish its result nor re-arm. */
  private generation = 0;
  private failures = 0;
  private delayMs = 0;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<boolean> | undefined;
  private abort: AbortController | undefined;
  private client: EC2Client | undefined;
  private readonly ownsClient: boolean;
  private readonly retryBaseMs: number;
  private readonly requestTimeoutMs: number;
  private readonly random: () => number;

  constructor(private readonly options: Ec2DiscoveryOptions) {
    if (!options.autoScalingGroup) throw new RangeError('autoScalingGroup is required');
    if (!Number.isInteger(options.meshPort) || options.meshPort < 1 || options.meshPort > 65535) {
      throw new RangeError(`meshPort must be 1..65535; got ${options.meshPort}`);
    }
    if (!(options.refreshMs > 0)) {
      throw new RangeError(`refreshMs must be positive; got ${options.refreshMs}`);
    }
    this.retryBaseMs = options.retryBaseMs ?? DEFAULT_RETRY_BASE_MS;
    this.requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    if (!(this.retryBaseMs > 0)) {
      throw new RangeError(`retryBaseMs must be positive; got ${this.retryBaseMs}`);
    }
    if (!(this.requestTimeoutMs > 0)) {
      throw new RangeError(`requestTimeoutMs must be positive; got ${this.requestTimeoutMs}`);
    }
    this.random = options.random ?? Math.random;
    this.client = options.client;
    this.ownsClient = options.client === undefined;
  }

  get ready(): boolean {
    return this.succeeded;
  }

  members(): readonly MemberAddress[] {
    return this.list;
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    await this.refreshNow();
  }

  /**
   * Runs a round now (or joins the one in flight) and re-arms the timer from its outcome; resolves with
   * whether it succeeded. Useful when a peer vanishes before the next scheduled round.
   */
  refreshNow(): Promise<boolean> {
    if (this.inFlight) return this.inFlight;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const generation = this.generation;
    const round = this.round(generation).finally(() => {
      if (this.inFlight === round) this.inFlight = undefined;
      if (this.started && generation === this.generation) this.schedule();
    });
    this.inFlight = round;
    return round;
  }

  stop(): void {
    this.started = false;
    this.generation++;
    this.inFlight = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.abort?.abort(new Error('discovery stopped'));
    // Free the keep-alive sockets of a client we created; a caller's client is theirs to destroy.
    if (this.ownsClient && this.client) {
      this.client.destroy();
      this.client = undefined;
    }
  }

  /** refreshMs after a success; after failures a backoff doubling from retryBaseMs, capped, with jitter. */
  private planNextRound(): void {
    if (this.failures === 0) {
      this.delayMs = this.options.refreshMs;
      return;
    }
    const cap = Math.min(this.options.refreshMs, this.retryBaseMs * 2 ** Math.min(this.failures - 1, 30));
    this.delayMs = Math.round(cap / 2 + (cap / 2) * this.random());
  }

  private schedule(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.refreshNow();
    }, this.delayMs);
    this.timer.unref();
  }

  private async round(generation: number): Promise<boolean> {
    const controller = new AbortController();
    this.abort = controller;
    try {
      const found = await withDeadline(
        this.requestTimeoutMs,
        `DescribeInstances took longer than ${this.requestTimeoutMs} ms`,
        (signal) => this.describe(signal),
        controller,
      );
      if (generation !== this.generation) return false; // stopped meanwhile: nobody is listening
      this.accept(found);
      this.planNextRound();
      return true;
    } catch (err) {
      if (generation !== this.generation) return false; // aborted by stop(): not worth a line
      this.failures++;
      this.planNextRound();
      const e = err instanceof Error ? err : new Error(String(err));
      // Only chosen fields: SDK errors carry the raw response and request config.
      this.options.log.warn(
        {
          autoScalingGroup: this.options.autoScalingGroup,
          error: { name: e.name, message: e.message },
          failures: this.failures,
          keptMembers: this.list.length,
          retryInMs: this.started ? this.delayMs : undefined,
        },
        'mesh discovery failed; keeping the last known members',
      );
      return false;
    } finally {
      if (this.abort === controller) this.abort = undefined;
    }
  }

  private accept(found: readonly MemberAddress[]): void {
    if (this.failures > 0) {
      this.options.log.info({ failures: this.failures, members: found.length }, 'mesh discovery recovered');
    }
    this.failures = 0;
    this.succeeded = true;
    if (sameMembers(found, this.list)) return;
    this.list = found;
    this.options.log.info({ members: found.map((m) => m.id) }, 'mesh members changed');
    try {
      this.options.onChange?.(found);
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.options.log.warn({ error: { name: e.name, message: e.message } }, 'mesh onChange callback threw');
    }
  }

  private async describe(signal: AbortSignal): Promise<readonly MemberAddress[]> {
    this.client ??= ec2ClientFromEnv(this.options.region);
    const client = this.client;
    const found: MemberAddress[] = [];
    let nextToken: string | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      const out: DescribeInstancesCommandOutput = await client.send(
        new DescribeInstancesCommand({
          Filters: [
            { Name: 'tag:aws:autoscaling:groupName', Values: [this.options.autoScalingGroup] },
            { Name: 'instance-state-name', Values: ['running'] },
          ],
          MaxResults: 1000,
          NextToken: nextToken,
        }),
        { abortSignal: signal },
      );
      for (const reservation of out.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          // A running instance always has one in a VPC; skip anything odd rather than build a bad URL.
          if (!instance.InstanceId || !instance.PrivateIpAddress) continue;
          found.push({
            id: instance.InstanceId,
            meshUrl: `ws://${instance.PrivateIpAddress}:${this.options.meshPort}`,
          });
        }
      }
      if (!out.NextToken) return normalise(found);
      if (out.NextToken === nextToken) throw new Error('DescribeInstances returned the same NextToken twice');
      nextToken = out.NextToken;
    }
    // A partial list would drop real members; treat it as a failed round instead.
    throw new Error(`DescribeInstances still paginating after ${MAX_PAGES} pages`);
  }
}
