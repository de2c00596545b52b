import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { TurnSecretFile } from '../config/turn-secrets';
import type { Mesh } from '../mesh/mesh';
import type { MetricSample } from '../metrics/cloudwatch';
import { collectProcessMetrics, metricsText } from '../shared/prometheus';
import type { TurnServer } from '../turn/server';
import type { TerminationWatch } from './termination-watch';

/**
 * Reasons a new session is refused; also the `reason` label of supernode_refusals_total and the
 * `Reason` dimension of the SessionsRefused datums in CloudWatch.
 */
export const REFUSAL_REASONS = [
  'full',
  'draining',
  'keys_unavailable',
  'token_invalid',
  'token_expired',
  'token_revoked',
  'auth_required',
  'auth_timeout',
  'bad_message',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];
/** Reasons an established session is ended by the node. */
export type DisconnectReason =
  | 'slow_consumer'
  | 'replaced'
  | 'heartbeat'
  | 'revoked'
  | 'bad_message'
  | 'rate_limited'
  | 'frame_too_large'
  | 'drained';

const TURN_ALLOCATION_EVENTS = new Set(['allocated', 'refreshed', 'deleted', 'expired']);

/**
 * Plain counters on the hot path (an increment is one add); Prometheus and CloudWatch read them on
 * their own schedule, so neither adds cost per message.
 */
export class NodeStats {
  registrations = 0;
  relayedMessages = 0;
  relayedBytes = 0;
  relayUnknownRecipient = 0;
  relayRecipientBusy = 0;
  lookups = 0;
  lookupsOnline = 0;
  throttledMessages = 0;
  throttledLookups = 0;
  readonly refusals = new Map<RefusalReason, number>();
  readonly disconnects = new Map<DisconnectReason, number>();
  readonly stun = new Map<string, number>();
  /** TURN allocation events by kind (allocated, refreshed, deleted, expired), from the server's hook. */
  readonly turnEvents = new Map<string, number>();

  refuse(reason: RefusalReason): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
  }
  disconnect(reason: DisconnectReason): void {
    this.disconnects.set(reason, (this.disconnects.get(reason) ?? 0) + 1);
  }
  stunOutcome(outcome: string, count = 1): void {
    this.stun.set(outcome, (this.stun.get(outcome) ?? 0) + count);
  }
  /** Refusals and drops are counted by the TURN server itself (its `stats`); only events go here. */
  turnOutcome(outcome: string): void {
    if (TURN_ALLOCATION_EVENTS.has(outcome))
      this.turnEvents.set(outcome, (this.turnEvents.get(outcome) ?? 0) + 1);
  }
  totalRefusals(): number {
    let sum = 0;
    for (const n of this.refusals.values()) sum += n;
    return sum;
  }
}

/** Live figures the metrics read at scrape time. */
export interface NodeGauges {
  sessions(): number;
  pendingConnections(): number;
  users(): number;
  capacity(): number;
  ready(): boolean;
}

/** Event-loop delay over the last complete window (so two readers never reset each other's view). */
export class EventLoopDelayWindow {
  // The sampling timer's period is the floor of what the histogram can tell: at 10 ms an idle loop
  // read as p50 10 ms. 1 ms costs one timer wake-up per millisecond, which is negligible.
  private readonly histogram = monitorEventLoopDelay({ resolution: 1 });
  private last = { p50: 0, p99: 0, max: 0 };
  private readonly timer: NodeJS.Timeout;
  constructor(windowMs: number) {
    this.histogram.enable();
    this.timer = setInterval(() => this.roll(), windowMs);
    this.timer.unref();
  }
  private roll(): void {
    this.last = {
      p50: this.histogram.percentile(50) / 1e9,
      p99: this.histogram.percentile(99) / 1e9,
      max: this.histogram.max / 1e9,
    };
    this.histogram.reset();
  }
  get(): { p50: number; p99: number; max: number } {
    return this.last;
  }
  stop(): void {
    clearInterval(this.timer);
    this.histogram.disable();
  }
}

/**
 * Every metric of the node, declared here. /metrics lists them in three groups, in this order: the
 * product's own (sessions, readiness, relay, refusals), then the mesh and lifecycle, then Node's
 * process defaults, so an operator reading the page finds the figures that matter first.
 */
export class NodeMetrics {
  readonly registry = new Registry();
  private readonly subsystemRegistry = new Registry();
  private readonly processRegistry = new Registry();
  readonly stats = new NodeStats();
  private readonly eventLoop = new EventLoopDelayWindow(10_000);
  private lastCloudWatch = { registrations: 0, relayed: 0, refusals: 0, turnBytes: 0 };
  private turn: TurnServer | undefined;
  private readonly lastRefusals = new Map<RefusalReason, number>();
  /** Time to answer a lookup through the mesh directory (owner round trip included). */
  readonly lookupSeconds = new Histogram({
    name: 'supernode_mesh_lookup_seconds',
    help: 'Lookups answered through the mesh directory, by time taken',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.subsystemRegistry],
  });

  constructor(private readonly gauges: NodeGauges) {
    const stats = this.stats;
    const registers = [this.registry];
    collectProcessMetrics(this.processRegistry);
    const gauge = (name: string, help: string, read: () => number) => this.gauge(name, help, read);
    const counter = (name: string, help: string, read: () => number) => this.counter(name, help, read);
    const labelled = (name: string, help: string, label: string, read: () => Map<string, number>) =>
      this.labelledCounter(name, help, label, read);
    gauge('supernode_sessions', 'Authenticated client sessions on this node', gauges.sessions);
    gauge('supernode_connections_pending', 'Connections not yet authenticated', gauges.pendingConnections);
    gauge('supernode_users', 'Distinct users with at least one session', gauges.users);
    gauge('supernode_capacity', 'Configured maximum sessions', gauges.capacity);
    gauge('supernode_ready', '1 when /readyz would answer ready', () => (gauges.ready() ? 1 : 0));
    counter(
      'supernode_registrations_total',
      'Sessions authenticated and registered',
      () => stats.registrations,
    );
    counter(
      'supernode_relayed_messages_total',
      'Relay frames delivered to a session',
      () => stats.relayedMessages,
    );
    counter('supernode_relayed_bytes_total', 'Payload bytes delivered to sessions', () => stats.relayedBytes);
    counter('supernode_lookups_total', 'Presence lookups answered', () => stats.lookups);
    labelled('supernode_relay_dropped_total', 'Relay frames not delivered', 'reason', () =>
      mapOf({ unknown_recipient: stats.relayUnknownRecipient, recipient_busy: stats.relayRecipientBusy }),
    );
    labelled('supernode_throttled_total', 'Frames that paused a session for its rate limit', 'kind', () =>
      mapOf({ message: stats.throttledMessages, lookup: stats.throttledLookups }),
    );
    labelled('supernode_refusals_total', 'New sessions refused, by reason', 'reason', () => stats.refusals);
    labelled(
      'supernode_disconnects_total',
      'Sessions ended by the node, by reason',
      'reason',
      () => stats.disconnects,
    );
    labelled('supernode_stun_total', 'STUN datagrams by outcome', 'outcome', () => stats.stun);
    const eventLoop = this.eventLoop;
    new Gauge({
      name: 'supernode_event_loop_delay_seconds',
      help: 'Event-loop delay over the last 10 s window',
      labelNames: ['quantile'],
      registers,
      collect() {
        const delay = eventLoop.get();
        this.set({ quantile: '0.5' }, delay.p50);
        this.set({ quantile: '0.99' }, delay.p99);
        this.set({ quantile: 'max' }, delay.max);
      },
    });
  }

  /** The Prometheus text of every group, product metrics first. */
  async text(): Promise<string> {
    return metricsText([this.registry, this.subsystemRegistry, this.processRegistry]);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** A gauge read at scrape time from a live figure. */
  gauge(name: string, help: string, read: () => number, registry = this.registry): void {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  }

  /** A counter read at scrape time from a plain number the hot path increments. */
  counter(name: string, help: string, read: () => number, registry = this.registry): void {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  }

  /** A counter with one label, read at scrape time from per-value counts the hot path keeps. */
  labelledCounter(
    name: string,
    help: string,
    label: string,
    read: () => Iterable<[string, number]>,
    registry = this.registry,
  ): void {
    new Counter({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const [value, count] of read()) this.inc({ [label]: value }, count);
      },
    });
  }

  /** The figures CloudWatch gets each interval: gauges as they are, counters as the change since last time. */
  cloudWatchSamples(): MetricSample[] {
    const stats = this.stats;
    const now = {
      registrations: stats.registrations,
      relayed: stats.relayedMessages,
      refusals: stats.totalRefusals(),
      turnBytes: this.turn ? this.turn.stats.bytesToPeer + this.turn.stats.bytesToClient : 0,
    };
    const last = this.lastCloudWatch;
    this.lastCloudWatch = now;
    return [
      { name: 'ConnectedClients', value: this.gauges.sessions(), unit: 'Count' },
      { name: 'Capacity', value: this.gauges.capacity(), unit: 'Count' },
      { name: 'Ready', value: this.gauges.ready() ? 1 : 0, unit: 'Count' },
      { name: 'Registrations', value: now.registrations - last.registrations, unit: 'Count' },
      { name: 'RelayedMessages', value: now.relayed - last.relayed, unit: 'Count' },
      { name: 'SessionsRefused', value: now.refusals - last.refusals, unit: 'Count' },
      ...this.refusalsByReason(),
      { name: 'EventLoopDelayP99', value: this.eventLoop.get().p99 * 1000, unit: 'Milliseconds' },
      ...(this.turn
        ? [
            { name: 'TurnAllocations', value: this.turn.stats.allocationsActive, unit: 'Count' as const },
            { name: 'TurnRelayedBytes', value: now.turnBytes - last.turnBytes, unit: 'Bytes' as const },
          ]
        : []),
    ];
  }

  /**
   * SessionsRefused per reason, as deltas. Every known reason each tick, zeros included, so a dashboard
   * or alarm on one reason sees 0 rather than missing data.
   */
  private refusalsByReason(): MetricSample[] {
    return REFUSAL_REASONS.map((reason) => {
      const total = this.stats.refusals.get(reason) ?? 0;
      const value = total - (this.lastRefusals.get(reason) ?? 0);
      this.lastRefusals.set(reason, total);
      return { name: 'SessionsRefused', value, unit: 'Count', dimensions: { Reason: reason } };
    });
  }

  stop(): void {
    this.eventLoop.stop();
  }

  /** Membership, directory and cross-node relay figures of a meshed node. */
  addMesh(mesh: Mesh): void {
    const gauge = (name: string, help: string, read: () => number) =>
      this.gauge(name, help, read, this.subsystemRegistry);
    const counter = (name: string, help: string, read: () => number) =>
      this.counter(name, help, read, this.subsystemRegistry);
    gauge('supernode_mesh_members', 'Live mesh members, this node included', () => mesh.members().length);
    gauge('supernode_directory_records', 'Presence records this node holds as an owner', () =>
      mesh.directorySize(),
    );
    counter(
      'supernode_mesh_republished_total',
      'Records re-published after membership changes',
      () => mesh.stats.republished,
    );
    counter(
      'supernode_mesh_purged_total',
      'Records dropped because their home node died',
      () => mesh.stats.purged,
    );
    counter(
      'supernode_mesh_forwarded_total',
      'Relay frames sent to another node',
      () => mesh.stats.forwarded,
    );
    counter(
      'supernode_mesh_received_total',
      'Relay frames received from another node',
      () => mesh.stats.received,
    );
    counter(
      'supernode_mesh_refused_peers_total',
      'Mesh connections refused (authentication)',
      () => mesh.stats.refusedPeers,
    );
    counter(
      'supernode_mesh_lookup_fallbacks_total',
      'Lookups that asked the next owner',
      () => mesh.stats.lookupFallbacks,
    );
  }

  /**
   * The TURN server of a node with --turn: read from its plain `stats` counters at scrape time, so the
   * relay path pays nothing for them; allocation events come through `stats.turnOutcome`.
   */
  addTurn(turn: TurnServer, secretFile?: TurnSecretFile): void {
    this.turn = turn;
    const gauge = (name: string, help: string, read: () => number) =>
      this.gauge(name, help, read, this.subsystemRegistry);
    const counter = (name: string, help: string, read: () => number) =>
      this.counter(name, help, read, this.subsystemRegistry);
    const labelled = (name: string, help: string, label: string, read: () => Iterable<[string, number]>) =>
      this.labelledCounter(name, help, label, read, this.subsystemRegistry);
    // Read on every scrape: the getter folds in what the native relay engine counted since the last one.
    gauge('supernode_turn_allocations', 'TURN allocations on this node', () => turn.stats.allocationsActive);
    gauge(
      'supernode_turn_permissions',
      'TURN permissions of live allocations',
      () => turn.stats.permissionsActive,
    );
    gauge('supernode_turn_channels', 'TURN channels of live allocations', () => turn.stats.channelsActive);
    gauge('supernode_turn_tcp_connections', 'TURN clients on TCP and TLS', () => turn.stats.tcpConnections);
    gauge(
      'supernode_turn_relay_ports_in_use',
      'Relay ports held by allocations and reservations',
      () => turn.relayPorts.inUse,
    );
    gauge('supernode_turn_draining', '1 once TURN stopped taking allocations (drain)', () =>
      turn.isDraining ? 1 : 0,
    );
    labelled(
      'supernode_turn_allocation_events_total',
      'TURN allocations allocated, refreshed, deleted (Refresh 0 or TCP closed) and expired',
      'event',
      () => this.stats.turnEvents,
    );
    labelled(
      'supernode_turn_relayed_packets_total',
      'Datagrams relayed by TURN, by direction',
      'direction',
      () => Object.entries({ to_peer: turn.stats.packetsToPeer, to_client: turn.stats.packetsToClient }),
    );
    labelled(
      'supernode_turn_relayed_bytes_total',
      'Payload bytes relayed by TURN, by direction',
      'direction',
      () => Object.entries({ to_peer: turn.stats.bytesToPeer, to_client: turn.stats.bytesToClient }),
    );
    labelled(
      'supernode_turn_refusals_total',
      'TURN error responses by STUN error code (401 includes every first challenge)',
      'code',
      () => Object.entries(turn.stats.refusals),
    );
    labelled(
      'supernode_turn_dropped_total',
      'TURN messages and packets neither answered nor relayed, by reason',
      'reason',
      () => Object.entries(turn.stats.dropped),
    );
    if (secretFile) {
      counter(
        'supernode_turn_secret_reloads_total',
        'Changed TURN secret lists applied from the secret file',
        () => secretFile.reloads,
      );
      counter(
        'supernode_turn_secret_reload_failures_total',
        'Reads of the TURN secret file that failed (the last good secrets kept)',
        () => secretFile.failures,
      );
    }
  }

  /** The lifecycle-hook drain of a node that watches for its own termination. */
  addTermination(watch: TerminationWatch): void {
    const gauge = (name: string, help: string, read: () => number) =>
      this.gauge(name, help, read, this.subsystemRegistry);
    const counter = (name: string, help: string, read: () => number) =>
      this.counter(name, help, read, this.subsystemRegistry);
    gauge(
      'supernode_lifecycle_terminating',
      '1 once instance metadata said Terminated (lifecycle hook drain started)',
      () => (watch.stats.terminating ? 1 : 0),
    );
    counter(
      'supernode_lifecycle_polls_total',
      'Reads of the target lifecycle state from instance metadata',
      () => watch.stats.polls,
    );
    counter(
      'supernode_lifecycle_poll_failures_total',
      'Failed reads of the target lifecycle state',
      () => watch.stats.pollFailures,
    );
    counter(
      'supernode_lifecycle_completion_failures_total',
      'Failed CompleteLifecycleAction attempts',
      () => watch.stats.completionFailures,
    );
  }
}

function mapOf(values: Record<string, number>): Map<string, number> {
  return new Map(Object.entries(values));
}
