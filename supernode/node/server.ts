/**
 * The supernode process: builds the parts from the configuration, boots the Fastify app plugin,
 * listens, handles signals and drains. What a session does is in core/; the routes are in routes/.
 */
import { hostname } from 'node:os';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { checkNodeConfig, meshSecretOf, type NodeConfig, nodeOptionTable } from '../config/node-options';
import { ConfigError, flagOf, helpText, parseOptions, resolveOptions } from '../config/options';
import { type Discovery, StaticDiscovery } from '../mesh/discovery';
import { Mesh } from '../mesh/mesh';
import type { CloudWatchPublisher } from '../metrics/cloudwatch';
import { createLogger, type Logger } from '../shared/log';
import { StunServer } from '../stun/server';
import { supernodeApp } from './app';
import { type NodeSettings, type ReadyState, SessionCore } from './core/sessions';
import { KeyStore } from './keys';
import { NodeMetrics } from './metrics';
import { RevocationList } from './revocations';
import type { TerminationWatch } from './termination-watch';
import { buildNodeTurn, type NodeTurn } from './turn';

export type { ReadyState } from './core/sessions';

export interface SupernodeOptions extends Partial<NodeConfig> {
  /** Defaults to a pino logger at `logLevel`. */
  logger?: Logger;
  /** Called once a drain has finished and the node is closed (the CLI exits here). */
  onDrained?: () => void;
}

export interface Supernode {
  readonly app: FastifyInstance;
  readonly config: Readonly<NodeSettings>;
  readonly metrics: NodeMetrics;
  readonly keys: KeyStore;
  readonly revocations: RevocationList | undefined;
  readonly mesh: Mesh | undefined;
  /** With --lifecycle-hook: watches for the instance's termination, drains, completes the hook. */
  readonly termination: TerminationWatch | undefined;
  /** With --turn: the TURN server (which also answers STUN Binding) and its secret file. */
  readonly turn: NodeTurn | undefined;
  /** Starts STUN or TURN, the mesh listener and the HTTP/WebSocket listener, then the CloudWatch publisher. */
  listen(): Promise<ListenAddress>;
  readyState(): ReadyState;
  sessionCount(): number;
  /** Stops taking sessions, tells clients to move, waits for them up to the deadline, then closes. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Where a node listens once listen() has resolved. */
export interface ListenAddress {
  port: number;
  url: string;
  /** STUN Binding: the StunServer's port, or with --turn the TURN port (which answers Binding too). */
  stunPort?: number;
  meshPort?: number;
  /** With --turn: UDP and TCP. */
  turnPort?: number;
  /** With --turn and a TLS certificate. */
  turnTlsPort?: number;
}

export function buildSupernode(options: SupernodeOptions = {}): Supernode {
  const { logger, onDrained, ...given } = options;
  const base = checkNodeConfig(resolveOptions(nodeOptionTable, given));
  const config: NodeSettings = {
    ...base,
    nodeId: base.nodeId ?? `${hostname()}-${base.port}`,
    publicUrl: base.publicUrl ?? `ws://${base.host}:${base.port}`,
  };
  // Read before anything starts: a bad secret file stops the node like a bad option.
  const meshSecret = config.mesh ? meshSecretOf(config) : undefined;
  const log = logger ?? createLogger(config.logLevel, 'supernode');
  // With --turn, the TURN server takes the STUN port and answers Binding itself. Built (its secret and
  // TLS files read) before anything else, so a bad file stops the node like a bad option.
  const turn = config.turn
    ? buildNodeTurn(config, log, (outcome) => metrics.stats.turnOutcome(outcome))
    : undefined;
  const keys = new KeyStore({
    jwksUrl: config.jwksUrl,
    jwksFile: config.jwksFile,
    refreshMs: config.jwksRefreshMs,
    s3Region: config.s3Region,
    log,
  });
  const revocations =
    config.revocationsUrl || config.revocationsFile
      ? new RevocationList({
          url: config.revocationsUrl,
          file: config.revocationsFile,
          refreshMs: config.revocationsRefreshMs,
          s3Region: config.s3Region,
          log,
          onChange: () => core.closeRevoked(),
        })
      : undefined;
  const metrics = new NodeMetrics({
    sessions: () => core.sessionCount,
    pendingConnections: () => core.connectionCount - core.sessionCount,
    users: () => core.userCount,
    capacity: () => config.maxSessions,
    ready: () => core.readyState().ready,
  });
  const core = new SessionCore({ config, keys, revocations, metrics, log });
  const mesh = config.mesh
    ? new Mesh({
        selfId: config.nodeId,
        selfUrl: config.publicUrl,
        host: config.meshHost ?? config.host,
        port: config.meshPort,
        secret: meshSecret as string,
        discovery: createDiscovery(config, log),
        replicas: config.directoryReplicas,
        heartbeatMs: config.meshHeartbeatMs,
        deadAfterMisses: config.meshDeadAfter,
        lookupTimeoutMs: config.meshLookupTimeoutMs,
        sendBufferBytes: config.sendBufferBytes * 8,
        maxFrameBytes: config.maxFrameBytes,
        log,
        local: core.localNode,
      })
    : undefined;
  core.mesh = mesh;
  if (mesh) metrics.addMesh(mesh);
  if (turn) metrics.addTurn(turn.server, turn.secretFile);
  const stun =
    config.stun && !turn
      ? new StunServer({
          host: config.stunHost ?? config.host,
          port: config.stunPort,
          software: 'supernode',
          log,
          processes: config.stunProcesses,
          onOutcome: (outcome, _reason, count) => metrics.stats.stunOutcome(outcome, count),
        })
      : undefined;
  // The AWS SDK clients load only when used: each costs tens of MB of start-up memory per node.
  const cloudWatch: CloudWatchPublisher | undefined = config.cloudwatch
    ? new (require('../metrics/cloudwatch') as typeof import('../metrics/cloudwatch')).CloudWatchPublisher({
        dimensions: { AutoScalingGroupName: config.autoScalingGroup as string },
        intervalMs: config.cloudwatchIntervalMs,
        collect: () => metrics.cloudWatchSamples(),
        log,
      })
    : undefined;
  const termination: TerminationWatch | undefined = config.lifecycleHook
    ? new (require('./termination-watch') as typeof import('./termination-watch')).TerminationWatch({
        lifecycleHook: config.lifecycleHook,
        autoScalingGroup: config.autoScalingGroup as string,
        pollMs: config.lifecyclePollMs,
        log,
        onTerminating: () => void drain(),
      })
    : undefined;
  if (termination) metrics.addTermination(termination);

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // One log line per upgrade would cost more than the session itself.
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1024,
    requestTimeout: 10_000,
    return503OnClosing: true,
    // Node checks headersTimeout (below) only every connectionsCheckingInterval, 30 s by default, so a
    // client dribbling an upgrade byte by byte, or sending nothing, held its socket 30-40 s instead of
    // 10 (found by test/hostile/slow.test.ts).
    http: { connectionsCheckingInterval: 1000 },
  });
  // Slow-loris upgrades: an upgrade request must finish its headers quickly.
  app.server.headersTimeout = 10_000;
  app.register(supernodeApp, {
    core,
    metrics,
    nodeId: config.nodeId,
    capacity: config.maxSessions,
    maxFrameBytes: config.maxFrameBytes,
    drainTimeoutMs: config.drainTimeoutMs,
    drain: () => drain(),
  });

  let closed = false;
  let drainPromise: Promise<void> | undefined;

  const listen = async (): Promise<ListenAddress> => {
    await Promise.all([keys.start(), revocations?.start()]);
    try {
      // HTTP last: once it listens the node is reachable, so every other port must be ours already.
      const stunAddress = stun
        ? await bindOrExplain(() => stun.start(), 'stunPort', config.stunHost ?? config.host, 'UDP')
        : undefined;
      // Its bind errors are ConfigErrors naming --stun-port or --turn-tls-port already.
      const turnAddress = turn ? await turn.start() : undefined;
      const meshPort = mesh
        ? await bindOrExplain(() => mesh.start(), 'meshPort', config.meshHost ?? config.host, 'TCP')
        : undefined;
      await bindOrExplain(
        () => app.listen({ host: config.host, port: config.port }),
        'port',
        config.host,
        'TCP',
      );
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      if (config.port === 0) {
        config.port = port;
        if (!given.publicUrl) {
          config.publicUrl = `ws://${config.host}:${port}`;
          // Before any session registers, so no directory record names port 0.
          mesh?.setSelfUrl(config.publicUrl);
        }
      }
      cloudWatch?.start();
      termination?.start();
      core.startTimers();
      const listening: ListenAddress = {
        port,
        url: config.publicUrl,
        stunPort: stunAddress?.port ?? turnAddress?.port,
        meshPort,
        turnPort: turnAddress?.port,
        turnTlsPort: turnAddress?.tlsPort,
      };
      log.info({ node: config.nodeId, ...listening, keysLoaded: keys.ready }, 'supernode listening');
      return listening;
    } catch (err) {
      await close();
      throw err;
    }

    /** A port in use is a configuration problem: say which option moves it, in one line. */
    async function bindOrExplain<T>(
      bind: () => Promise<T>,
      option: 'port' | 'stunPort' | 'meshPort',
      host: string,
      protocol: 'TCP' | 'UDP',
    ): Promise<T> {
      try {
        return await bind();
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES' && code !== 'EADDRNOTAVAIL') throw err;
        const spec = nodeOptionTable[option];
        const problem =
          code === 'EADDRINUSE' ? 'is in use' : code === 'EACCES' ? 'is not allowed' : 'is not local';
        throw new ConfigError(
          `${protocol} ${host}:${config[option]} ${problem} (${code}); choose another with ${flagOf(option)} (${spec.env})`,
        );
      }
    }
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    core.stopTimers();
    keys.stop();
    revocations?.stop();
    termination?.stop();
    await Promise.allSettled([app.close(), stun?.close(), turn?.stop(), cloudWatch?.stop(), mesh?.stop()]);
    metrics.stop();
  };

  const drain = (): Promise<void> => {
    drainPromise ??= (async () => {
      const allocations = turn?.server.stats.allocationsActive;
      log.info({ sessions: core.sessionCount, allocations, deadlineMs: config.drainTimeoutMs }, 'draining');
      core.beginDrain(Math.min(config.drainTimeoutMs / 2, 10_000));
      // TURN refuses new allocations (508, so clients try another server) while existing ones finish
      // or expire, under the same deadline as the sessions.
      const [, turnLeft] = await Promise.all([
        core.waitForEmpty(Date.now() + config.drainTimeoutMs),
        turn?.server.drain(config.drainTimeoutMs),
      ]);
      core.closeDrained();
      log.info({ remaining: core.connectionCount, allocationsLeft: turnLeft?.left }, 'drain finished');
      await close();
      // Terminating under a lifecycle hook: let the termination go ahead now that the clients have gone.
      await termination?.completeIfTerminating();
      onDrained?.();
    })();
    return drainPromise;
  };

  return {
    app,
    config,
    metrics,
    keys,
    revocations,
    mesh,
    termination,
    turn,
    listen,
    readyState: () => core.readyState(),
    sessionCount: () => core.sessionCount,
    drain,
    close,
  };
}

function createDiscovery(config: NodeConfig, log: Logger): Discovery {
  if (config.discovery === 'ec2') {
    const { Ec2Discovery } = require('../mesh/ec2-discovery') as typeof import('../mesh/ec2-discovery');
    return new Ec2Discovery({
      autoScalingGroup: config.autoScalingGroup as string,
      meshPort: config.meshPort,
      refreshMs: config.discoveryRefreshMs,
      log,
    });
  }
  return new StaticDiscovery(
    config.meshPeers.map((entry) => {
      const at = entry.indexOf('@');
      return { id: entry.slice(0, at), meshUrl: entry.slice(at + 1) };
    }),
  );
}

/** `supernode node`: one node until a signal; the first SIGTERM or SIGINT drains, a second exits at once. */
export async function runSupernode(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(helpText('Usage: supernode node [options]\n\nRuns one supernode.', nodeOptionTable));
    return;
  }
  const config = parseOptions(nodeOptionTable, argv);
  const node = buildSupernode({ ...config, onDrained: () => process.exit(0) });
  await node.listen();
  if (config.faultCrashAfterMs > 0) {
    // Fault injection for drills and the release gate's own test: a build that dies some time after start.
    setTimeout(() => {
      node.app.log.fatal({ afterMs: config.faultCrashAfterMs }, 'fault injection: crashing');
      process.exit(70);
    }, config.faultCrashAfterMs).unref();
  }
  let signals = 0;
  const onSignal = (signal: string): void => {
    signals++;
    if (signals > 1) {
      node.app.log.warn({ signal }, 'second signal: exiting without waiting for the drain');
      process.exit(1);
    }
    node.app.log.info({ signal }, 'draining before exit');
    void node.drain();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}
