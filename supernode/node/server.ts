import { hostname } from 'node:os';
import websocket from '@fastify/websocket';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import type { RawData, WebSocket } from 'ws';
import { checkNodeConfig, meshSecretOf, type NodeConfig, nodeOptionTable } from '../config/node-options';
import { resolveOptions } from '../config/options';
import { type Discovery, StaticDiscovery } from '../mesh/discovery';
import { type LocalNode, Mesh } from '../mesh/mesh';
import type { CloudWatchPublisher } from '../metrics/cloudwatch';
import { encodeRelayFrame, FLAG_ACK, FRAME_DELIVER, FRAME_SEND, parseRelayFrame } from '../protocol/frames';
import {
  type Endpoint,
  type ErrorCode,
  ErrorCodes,
  MAX_ENDPOINTS,
  parseClientMessage,
  SESSION_PATH,
  type ServerError,
  type ServerMessage,
} from '../protocol/messages';
import { isLoopback } from '../shared/files';
import { createLogger, type Logger } from '../shared/log';
import { TokenBucket } from '../shared/token-bucket';
import { StunServer } from '../stun/server';
import { verifyAccessToken } from './access-token';
import { KeyStore } from './keys';
import { type DisconnectReason, NodeMetrics, type RefusalReason } from './metrics';
import { PresenceRegistry } from './presence';
import { RevocationList } from './revocations';
import type { TerminationWatch } from './termination-watch';

export interface SupernodeOptions extends Partial<NodeConfig> {
  /** Defaults to a pino logger at `logLevel`. */
  logger?: Logger;
  /** Called once a drain has finished and the node is closed (the CLI exits here). */
  onDrained?: () => void;
}

export interface ReadyState {
  ready: boolean;
  reasons: string[];
}

export interface Supernode {
  readonly app: FastifyInstance;
  readonly config: Readonly<NodeConfig & { nodeId: string; publicUrl: string }>;
  readonly metrics: NodeMetrics;
  readonly keys: KeyStore;
  readonly revocations: RevocationList | undefined;
  readonly mesh: Mesh | undefined;
  /** With --lifecycle-hook: watches for the instance's termination, drains, completes the hook. */
  readonly termination: TerminationWatch | undefined;
  /** Starts the HTTP/WebSocket listener, STUN and the CloudWatch publisher. */
  listen(): Promise<{ port: number; url: string; stunPort?: number; meshPort?: number }>;
  readyState(): ReadyState;
  sessionCount(): number;
  /** Stops taking sessions, tells clients to move, waits for them up to the deadline, then closes. */
  drain(): Promise<void>;
  close(): Promise<void>;
}

/** Frames held while a session is paused; past this the client is ignoring backpressure. */
const MAX_BACKLOG_FRAMES = 512;
const MAX_BACKLOG_BYTES = 1024 * 1024;
/** Time a client gets to answer our close frame before its socket is cut. */
const CLOSE_HANDSHAKE_MS = 5000;

/** Per-connection state; kept small because a node holds tens of thousands of them. */
class Session {
  userId = '';
  /** From the token: when it was issued and its refresh family, for the revocation check. */
  tokenIssuedAtSec = 0;
  family: string | undefined;
  endpoints: Endpoint[] = [];
  authenticated = false;
  /** Frames read while processing is paused (hello being verified, or over the rate limit). */
  backlog: Array<[Buffer, boolean]> | undefined;
  backlogBytes = 0;
  alive = true;
  closed = false;
  congestedSince = 0;
  resumeTimer: NodeJS.Timeout | undefined;
  authTimer: NodeJS.Timeout | undefined;
  lookups: TokenBucket | undefined;
  messages: TokenBucket | undefined;
  constructor(
    readonly socket: WebSocket,
    /** Unique on this node; names the session in welcome messages and in relays across nodes. */
    readonly serial: number,
  ) {}
}

export function buildSupernode(options: SupernodeOptions = {}): Supernode {
  const { logger, onDrained, ...given } = options;
  const base = checkNodeConfig(resolveOptions(nodeOptionTable, given));
  const config = {
    ...base,
    nodeId: base.nodeId ?? `${hostname()}-${base.port}`,
    publicUrl: base.publicUrl ?? `ws://${base.host}:${base.port}`,
  };
  // Read before anything starts: a bad secret file stops the node like a bad option.
  const meshSecret = config.mesh ? meshSecretOf(config) : undefined;
  const log = logger ?? createLogger(config.logLevel, 'supernode');
  const keys = new KeyStore({
    jwksUrl: config.jwksUrl,
    jwksFile: config.jwksFile,
    refreshMs: config.jwksRefreshMs,
    s3Region: config.s3Region,
    log,
  });
  const presence = new PresenceRegistry<Session>(config.maxSessionsPerUser);
  const revocations =
    config.revocationsUrl || config.revocationsFile
      ? new RevocationList({
          url: config.revocationsUrl,
          file: config.revocationsFile,
          refreshMs: config.revocationsRefreshMs,
          s3Region: config.s3Region,
          log,
          onChange: () => {
            for (const session of presence.all()) {
              if (revocations?.isRevoked(session.userId, session.family, session.tokenIssuedAtSec)) {
                disconnect(
                  session,
                  'revoked',
                  'token_revoked',
                  'the credentials of this session were revoked',
                );
              }
            }
          },
        })
      : undefined;
  const congested = new Set<Session>();
  /** Every open connection, authenticated or not: capacity counts them all. */
  const connections = new Set<Session>();
  let sessionSerial = 0;
  let draining = false;
  let drainPromise: Promise<void> | undefined;
  let closed = false;

  const readyState = (): ReadyState => {
    const reasons: string[] = [];
    if (!keys.ready) reasons.push('keys_not_loaded');
    if (mesh && !mesh.ready) reasons.push('mesh_not_ready');
    if (draining) reasons.push('draining');
    if (connections.size >= config.maxSessions) reasons.push('full');
    return { ready: reasons.length === 0, reasons };
  };
  const metrics = new NodeMetrics({
    sessions: () => presence.size,
    pendingConnections: () => connections.size - presence.size,
    users: () => presence.users,
    capacity: () => config.maxSessions,
    ready: () => readyState().ready,
  });
  const stats = metrics.stats;
  const policy = {
    audience: config.audience,
    issuer: config.issuer,
    clockToleranceSec: config.clockToleranceSec,
  };
  const welcomeLimits = {
    maxFrameBytes: config.maxFrameBytes,
    messagesPerSecond: config.messagesPerSecond,
    lookupsPerSecond: config.lookupsPerSecond,
    sendBufferBytes: config.sendBufferBytes,
    maxSessionsPerUser: config.maxSessionsPerUser,
  };

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

  /** Random retry advice in [base, 2*base), so refused clients do not come back together. */
  const jitteredRetryMs = (): number => Math.floor(config.retryAfterMs * (1 + Math.random()));

  const send = (session: Session, message: ServerMessage): void => {
    if (session.closed) return;
    session.socket.send(JSON.stringify(message));
    if (session.socket.bufferedAmount > config.sendBufferBytes) markCongested(session);
  };

  const sendError = (
    session: Session,
    code: ErrorCode,
    message: string,
    extra: Partial<ServerError> = {},
  ): void => send(session, { type: 'error', code, message, ...extra });

  /** Ends a session with a typed error: the error message first, then the close code of that error. */
  const end = (
    session: Session,
    code: ErrorCode,
    message: string,
    extra: Partial<ServerError> = {},
  ): void => {
    if (session.closed) return;
    sendError(session, code, message, extra);
    session.closed = true;
    // The closing handshake needs the peer's close frame, so a paused socket must read again.
    clearTimeout(session.resumeTimer);
    session.socket.resume();
    session.socket.close(ErrorCodes[code] || 1000, code);
  };

  const refuse = (
    session: Session,
    reason: RefusalReason,
    message: string,
    extra: Partial<ServerError> = {},
  ) => {
    stats.refuse(reason);
    end(session, reason, message, extra);
  };

  const disconnect = (session: Session, reason: DisconnectReason, code: ErrorCode, message: string): void => {
    stats.disconnect(reason);
    end(session, code, message);
  };

  const markCongested = (session: Session): void => {
    if (session.congestedSince === 0) {
      session.congestedSince = Date.now();
      congested.add(session);
    }
  };

  /**
   * Stops processing a session's frames: reading pauses (the client's TCP window then slows it down)
   * and frames already read wait, in order, in a bounded backlog. Used while a hello is verified and
   * while a session is over its rate, so throttling delays frames instead of dropping them.
   */
  const hold = (session: Session, data: Buffer, isBinary: boolean): void => {
    const backlog = session.backlog as Array<[Buffer, boolean]>;
    session.backlogBytes += data.length;
    if (backlog.length >= MAX_BACKLOG_FRAMES || session.backlogBytes > MAX_BACKLOG_BYTES) {
      // Only a client that ignores backpressure gets here: the socket was already paused.
      disconnect(
        session,
        'rate_limited',
        'rate_limited',
        'frames sent far faster than the rate limit allows',
      );
      return;
    }
    backlog.push([data, isBinary]);
  };

  const pauseSession = (session: Session): void => {
    session.backlog ??= [];
    session.socket.pause();
  };

  const resumeSession = (session: Session): void => {
    const backlog = session.backlog ?? [];
    session.backlog = undefined;
    session.backlogBytes = 0;
    if (session.closed) return;
    let i = 0;
    while (i < backlog.length && !session.backlog && !session.closed) {
      const [data, isBinary] = backlog[i++];
      onMessage(session, data, isBinary);
    }
    // onMessage may have paused the session again (TypeScript cannot see that through the call).
    const again = session.backlog as Array<[Buffer, boolean]> | undefined;
    if (again) {
      // Throttled again part-way: the rest keeps its place ahead of anything read later.
      const rest = backlog.slice(i);
      again.unshift(...rest);
      for (const [data] of rest) session.backlogBytes += data.length;
      return;
    }
    if (!session.closed) session.socket.resume();
  };

  const throttle = (session: Session, waitMs: number): void => {
    if (session.resumeTimer || session.closed) return;
    pauseSession(session);
    session.resumeTimer = setTimeout(() => {
      session.resumeTimer = undefined;
      resumeSession(session);
    }, waitMs);
  };

  const cleanup = (session: Session): void => {
    session.closed = true;
    connections.delete(session);
    sessionsBySerial.delete(session.serial);
    clearTimeout(session.authTimer);
    clearTimeout(session.resumeTimer);
    congested.delete(session);
    if (session.authenticated && presence.remove(session)) mesh?.publish(session.userId);
  };

  const onHello = async (
    session: Session,
    token: string,
    endpoints: Endpoint[] | undefined,
  ): Promise<void> => {
    const getKey = keys.getKey;
    if (!getKey) {
      refuse(session, 'keys_unavailable', 'node has no public keys yet', { retryAfterMs: jitteredRetryMs() });
      return;
    }
    // Frames pipelined behind the hello wait until the token is checked.
    pauseSession(session);
    const check = await verifyAccessToken(token, getKey, policy);
    if (session.closed) return;
    clearTimeout(session.authTimer);
    session.authTimer = undefined;
    if (!check.ok) {
      refuse(session, check.code, check.reason);
      return;
    }
    if (revocations?.isRevoked(check.userId, check.family, check.issuedAtSec)) {
      refuse(session, 'token_revoked', 'token was revoked; log in again');
      return;
    }
    if (draining) {
      refuse(session, 'draining', 'node is draining', {
        retryAfterMs: jitteredRetryMs(),
        alternatives: config.alternatives,
      });
      return;
    }
    const now = Date.now();
    session.userId = check.userId;
    session.tokenIssuedAtSec = check.issuedAtSec;
    session.family = check.family;
    session.endpoints = endpoints ?? [];
    session.authenticated = true;
    session.messages = new TokenBucket(config.messagesPerSecond, config.messageBurst, now);
    session.lookups = new TokenBucket(config.lookupsPerSecond, config.lookupBurst, now);
    const displaced = presence.add(session);
    stats.registrations++;
    if (displaced)
      disconnect(displaced, 'replaced', 'replaced', 'a newer session of this user replaced this one');
    mesh?.publish(session.userId);
    send(session, {
      type: 'welcome',
      session: `${config.nodeId}/${session.serial.toString(36)}`,
      user: session.userId,
      node: config.nodeId,
      expiresAt: check.expiresAt,
      heartbeatMs: config.heartbeatMs,
      limits: welcomeLimits,
    });
    resumeSession(session);
  };

  const onRelay = (session: Session, data: Buffer): void => {
    const parsed = parseRelayFrame(data, FRAME_SEND);
    if (!parsed.ok) {
      sendError(session, 'bad_message', parsed.message, { msgId: parsed.msgId });
      return;
    }
    const { msgId, flags, userId, payloadOffset } = parsed.frame;
    const payload = data.subarray(payloadOffset);
    if (!presence.sessionsOf(userId) && mesh) {
      // Homed elsewhere (or nowhere): one hop over the mesh; the result comes back by serial.
      mesh.relay(session.userId, userId, msgId, flags, session.serial, payload);
      return;
    }
    relayResult(session, msgId, flags, deliverLocal(session.userId, userId, msgId, payload));
  };

  /** Delivers to this node's sessions of `to`: how many got it, -1 if none here, 'busy' if all are full. */
  const deliverLocal = (from: string, to: string, msgId: number, payload: Buffer): number | 'busy' => {
    const targets = presence.sessionsOf(to);
    if (!targets) return -1;
    const frame = encodeRelayFrame(FRAME_DELIVER, 0, msgId, from, payload);
    let delivered = 0;
    for (const target of targets) {
      if (target.socket.bufferedAmount > config.sendBufferBytes) {
        markCongested(target);
        continue;
      }
      target.socket.send(frame);
      delivered++;
    }
    if (delivered === 0) return 'busy';
    stats.relayedMessages += delivered;
    stats.relayedBytes += delivered * payload.length;
    return delivered;
  };

  /** Tells the sender what became of its frame: an ack if asked for, else only failures. */
  const relayResult = (session: Session, msgId: number, flags: number, delivered: number | 'busy'): void => {
    if (delivered === -1) {
      stats.relayUnknownRecipient++;
      sendError(session, 'unknown_recipient', 'recipient is not online', { msgId });
    } else if (delivered === 'busy') {
      stats.relayRecipientBusy++;
      sendError(session, 'recipient_busy', 'recipient is not reading; retry later', {
        msgId,
        retryAfterMs: 100,
      });
    } else if (flags & FLAG_ACK) {
      send(session, { type: 'ack', msgId, delivered });
    }
  };

  const onControl = (session: Session, text: string): void => {
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      if (parsed.fatal) disconnect(session, 'bad_message', 'bad_message', parsed.message);
      else sendError(session, parsed.code, parsed.message, { id: parsed.id });
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'hello':
        sendError(session, 'bad_message', 'session is already authenticated');
        return;
      case 'endpoints':
        session.endpoints = message.endpoints;
        mesh?.publish(session.userId);
        return;
      case 'ping':
        send(session, { type: 'pong', id: message.id });
        return;
      case 'lookup': {
        const wait = (session.lookups as TokenBucket).take(Date.now());
        if (wait > 0) {
          stats.throttledLookups++;
          throttle(session, wait);
        }
        stats.lookups++;
        if (mesh) {
          const { id, user } = message;
          const started = performance.now();
          mesh.lookup(user).then(
            (answer) => {
              metrics.lookupSeconds.observe((performance.now() - started) / 1000);
              if (answer.online) stats.lookupsOnline++;
              send(session, { type: 'lookup_result', id, user, ...answer });
            },
            () => sendError(session, 'internal', 'lookup failed', { id }),
          );
          return;
        }
        const sessions = presence.sessionsOf(message.user);
        if (sessions) stats.lookupsOnline++;
        send(session, {
          type: 'lookup_result',
          id: message.id,
          user: message.user,
          online: sessions !== undefined,
          node: sessions ? config.publicUrl : null,
          sessions: sessions?.length ?? 0,
          endpoints: presence.endpointsOf(message.user, MAX_ENDPOINTS),
        });
        return;
      }
    }
  };

  const onMessage = (session: Session, data: RawData, isBinary: boolean): void => {
    if (session.closed) return;
    const buffer = data as Buffer;
    if (session.backlog) {
      hold(session, buffer, isBinary);
      return;
    }
    if (!session.authenticated) {
      if (isBinary) {
        refuse(session, 'auth_required', 'the first message must be a hello');
        return;
      }
      const parsed = parseClientMessage(buffer.toString('utf8'));
      if (!parsed.ok || parsed.message.type !== 'hello') {
        refuse(
          session,
          parsed.ok ? 'auth_required' : 'bad_message',
          parsed.ok ? 'the first message must be a hello' : parsed.message,
        );
        return;
      }
      onHello(session, parsed.message.token, parsed.message.endpoints).catch((err) => {
        log.error({ err }, 'hello failed');
        end(session, 'internal', 'internal error');
      });
      return;
    }
    const wait = (session.messages as TokenBucket).take(Date.now());
    if (isBinary) onRelay(session, buffer);
    else onControl(session, buffer.toString('utf8'));
    if (wait > 0) {
      stats.throttledMessages++;
      throttle(session, wait);
    }
  };

  const wsServerOptions = {
    maxPayload: config.maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // How long a refused or closed session may take to answer our close frame. ws waits 30 s by
    // default, so a client that never answers (a hello-less slow loris) kept its place in the
    // connection count 30 s past its auth timeout (found by test/hostile/slow.test.ts). A variable,
    // not a literal: @types/ws does not list this ws 8 option yet.
    closeTimeout: CLOSE_HANDSHAKE_MS,
  };
  app.register(websocket, {
    options: wsServerOptions,
    errorHandler(error, socket) {
      log.warn({ err: error }, 'websocket handler error');
      socket.terminate();
    },
    // On close: say goodbye with 1001 to every connection, and cut off any that do not answer.
    preClose(done) {
      app.server.removeAllListeners('upgrade');
      for (const session of connections) {
        session.closed = true;
        clearTimeout(session.resumeTimer);
        session.socket.resume();
        session.socket.close(1001, 'node shutting down');
      }
      setTimeout(() => {
        for (const session of connections) session.socket.terminate();
      }, 1000).unref();
      done();
    },
  });

  app.register(async (scoped) => {
    scoped.get(SESSION_PATH, { websocket: true }, (socket) => {
      sessionSerial = (sessionSerial + 1) >>> 0 || 1;
      const session = new Session(socket, sessionSerial);
      connections.add(session);
      if (mesh) sessionsBySerial.set(session.serial, session);
      socket.on('message', (data, isBinary) => {
        try {
          onMessage(session, data, isBinary);
        } catch (err) {
          log.error({ err }, 'message handler failed');
          end(session, 'internal', 'internal error');
        }
      });
      socket.on('close', () => cleanup(session));
      socket.on('error', (err) => log.debug({ err: { message: err.message } }, 'session socket error'));
      socket.on('pong', () => {
        session.alive = true;
      });
      if (draining) {
        refuse(session, 'draining', 'node is draining', {
          retryAfterMs: jitteredRetryMs(),
          alternatives: config.alternatives,
        });
      } else if (!keys.ready) {
        refuse(session, 'keys_unavailable', 'node has no public keys yet', {
          retryAfterMs: jitteredRetryMs(),
        });
      } else if (connections.size > config.maxSessions) {
        refuse(session, 'full', 'node is at capacity', {
          retryAfterMs: jitteredRetryMs(),
          alternatives: config.alternatives,
        });
      } else {
        session.authTimer = setTimeout(
          () => refuse(session, 'auth_timeout', 'no hello in time'),
          config.authTimeoutMs,
        );
      }
    });

    scoped.get('/healthz', async () => ({
      status: 'ok',
      node: config.nodeId,
      uptimeS: Math.round(process.uptime()),
    }));

    scoped.get('/readyz', async (_request, reply) => {
      const state = readyState();
      reply.code(state.ready ? 200 : 503);
      return { ...state, node: config.nodeId, sessions: presence.size, capacity: config.maxSessions };
    });

    scoped.get('/metrics', async (_request, reply) => {
      reply.header('content-type', metrics.registry.contentType);
      return metrics.registry.metrics();
    });

    // Called by the instance itself (lifecycle hook, operator on the box): loopback only.
    scoped.post('/admin/drain', async (request, reply) => {
      if (!isLoopback(request.socket.remoteAddress)) {
        reply.code(403);
        return { error: 'forbidden', message: 'admin calls are accepted from loopback only' };
      }
      // Begin once the answer is out, so closing the listener does not wait on this connection.
      reply.raw.once('finish', () => void drain());
      reply.code(202);
      return { draining: true, sessions: presence.size, deadlineMs: config.drainTimeoutMs };
    });
  });

  const stun = config.stun
    ? new StunServer({
        host: config.stunHost ?? config.host,
        port: config.stunPort,
        software: 'supernode',
        log,
        onOutcome: (outcome) => stats.stunOutcome(outcome),
      })
    : undefined;
  const sessionsBySerial = new Map<number, Session>();
  const localNode: LocalNode = {
    presenceOf: (user) => {
      const sessions = presence.sessionsOf(user);
      return sessions
        ? { sessions: sessions.length, endpoints: presence.endpointsOf(user, MAX_ENDPOINTS) }
        : undefined;
    },
    localUsers: () => presence.userIds(),
    deliver: deliverLocal,
    forwardResult: (serial, msgId, result) => {
      const session = sessionsBySerial.get(serial);
      if (!session || session.closed) return;
      // An ack travels back only when asked for, so a delivered count always means FLAG_ACK was set.
      relayResult(
        session,
        msgId,
        FLAG_ACK,
        'delivered' in result ? result.delivered : result.code === 'recipient_busy' ? 'busy' : -1,
      );
    },
  };
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
        local: localNode,
      })
    : undefined;
  if (mesh) registerMeshMetrics(metrics, mesh);
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
  if (termination) registerTerminationMetrics(metrics, termination);

  const timers: NodeJS.Timeout[] = [];
  const startTimers = (): void => {
    // A session that has not answered the previous ping is gone (NAT timeout, dead peer).
    timers.push(
      setInterval(() => {
        for (const session of presence.all()) {
          if (!session.alive) {
            stats.disconnect('heartbeat');
            session.socket.terminate();
            continue;
          }
          session.alive = false;
          session.socket.ping();
        }
      }, config.heartbeatMs),
    );
    // Slow consumers: above the send buffer for too long means the client stopped reading.
    timers.push(
      setInterval(
        () => {
          const now = Date.now();
          for (const session of congested) {
            if (session.socket.bufferedAmount <= config.sendBufferBytes) {
              session.congestedSince = 0;
              congested.delete(session);
            } else if (now - session.congestedSince >= config.slowConsumerMs) {
              congested.delete(session);
              stats.disconnect('slow_consumer');
              // terminate, not close: a close frame would wait behind the data it is not reading.
              session.closed = true;
              session.socket.terminate();
            }
          }
        },
        Math.min(1000, config.slowConsumerMs),
      ),
    );
    for (const timer of timers) timer.unref();
  };

  const listen = async (): Promise<{ port: number; url: string; stunPort?: number; meshPort?: number }> => {
    await Promise.all([keys.start(), revocations?.start()]);
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    if (config.port === 0) {
      config.port = port;
      if (!given.publicUrl) config.publicUrl = `ws://${config.host}:${port}`;
    }
    const stunAddress = stun ? await stun.start() : undefined;
    const meshPort = mesh ? await mesh.start() : undefined;
    cloudWatch?.start();
    termination?.start();
    startTimers();
    log.info(
      { node: config.nodeId, port, stunPort: stunAddress?.port, meshPort, keysLoaded: keys.ready },
      'supernode listening',
    );
    return { port, url: config.publicUrl, stunPort: stunAddress?.port, meshPort };
  };

  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    for (const timer of timers) clearInterval(timer);
    keys.stop();
    revocations?.stop();
    termination?.stop();
    await Promise.allSettled([app.close(), stun?.close(), cloudWatch?.stop(), mesh?.stop()]);
    metrics.stop();
  };

  const drain = (): Promise<void> => {
    drainPromise ??= (async () => {
      draining = true;
      const spreadMs = Math.min(config.drainTimeoutMs / 2, 10_000);
      log.info({ sessions: presence.size, deadlineMs: config.drainTimeoutMs }, 'draining');
      for (const session of presence.all()) {
        send(session, {
          type: 'drain',
          retryAfterMs: Math.floor(Math.random() * spreadMs),
          alternatives: config.alternatives,
        });
      }
      const deadline = Date.now() + config.drainTimeoutMs;
      while (connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const session of presence.all()) {
        stats.disconnect('drained');
        session.closed = true;
        session.socket.close(1001, 'drained');
      }
      log.info({ remaining: connections.size }, 'drain finished');
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
    listen,
    readyState,
    sessionCount: () => presence.size,
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

function registerTerminationMetrics(metrics: NodeMetrics, watch: TerminationWatch): void {
  metrics.gauge(
    'supernode_lifecycle_terminating',
    '1 once instance metadata said Terminated (lifecycle hook drain started)',
    () => (watch.stats.terminating ? 1 : 0),
  );
  metrics.counter(
    'supernode_lifecycle_polls_total',
    'Reads of the target lifecycle state from instance metadata',
    () => watch.stats.polls,
  );
  metrics.counter(
    'supernode_lifecycle_poll_failures_total',
    'Failed reads of the target lifecycle state',
    () => watch.stats.pollFailures,
  );
  metrics.counter(
    'supernode_lifecycle_completion_failures_total',
    'Failed CompleteLifecycleAction attempts',
    () => watch.stats.completionFailures,
  );
}

function registerMeshMetrics(metrics: NodeMetrics, mesh: Mesh): void {
  const gauge = metrics.gauge.bind(metrics);
  const counter = metrics.counter.bind(metrics);
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
  counter('supernode_mesh_forwarded_total', 'Relay frames sent to another node', () => mesh.stats.forwarded);
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
