/**
 * The node's session core: accepting sockets, the hello, presence, relay, lookups, rate limits by
 * backpressure, heartbeats, slow consumers and the drain notice. No HTTP framework here: the session
 * route hands each upgraded socket to accept(), and unit tests can drive it with any ws socket.
 */

import type { RawData, WebSocket } from 'ws';
import type { NodeConfig } from '../../config/node-options';
import type { LocalNode, Mesh } from '../../mesh/mesh';
import { FLAG_ACK, FRAME_SEND, parseRelayFrame } from '../../protocol/frames';
import {
  type Endpoint,
  type ErrorCode,
  ErrorCodes,
  MAX_ENDPOINTS,
  parseClientMessage,
  type ServerError,
  type ServerMessage,
} from '../../protocol/messages';
import type { Logger } from '../../shared/log';
import { TokenBucket } from '../../shared/token-bucket';
import { batchWrites } from '../../shared/write-batch';
import { verifyAccessToken } from '../access-token';
import type { KeyStore } from '../keys';
import type { DisconnectReason, NodeMetrics, RefusalReason } from '../metrics';
import { PresenceRegistry } from '../presence';
import type { RevocationList } from '../revocations';
import { HeartbeatWheel } from './heartbeat-wheel';
import { type Delivery, LocalDelivery } from './relay';
import { Session } from './session';

const SESSION = Symbol('session');
type SocketOfSession = WebSocket & { [SESSION]: Session };

/** The node's resolved configuration: every option, with the id and URL settled. */
export type NodeSettings = NodeConfig & { nodeId: string; publicUrl: string };

export interface ReadyState {
  ready: boolean;
  reasons: string[];
}

export interface SessionCoreOptions {
  config: Readonly<NodeSettings>;
  keys: KeyStore;
  revocations?: RevocationList;
  metrics: NodeMetrics;
  log: Logger;
}

export class SessionCore {
  /** Set once by the node when meshed; lookups, publishes and remote relays go through it. */
  mesh: Mesh | undefined;
  private readonly config: Readonly<NodeSettings>;
  private readonly keys: KeyStore;
  private readonly revocations: RevocationList | undefined;
  private readonly metrics: NodeMetrics;
  private readonly log: Logger;
  private readonly presence: PresenceRegistry<Session>;
  /** Every open connection, authenticated or not: capacity counts them all. */
  private readonly connections = new Set<Session>();
  private readonly congested = new Set<Session>();
  /** Registered sessions, pinged a slot at a time. */
  private readonly heartbeats: HeartbeatWheel<Session>;
  /** Only kept when meshed: relay results from other nodes come back by serial. */
  private readonly sessionsBySerial = new Map<number, Session>();
  private readonly delivery: LocalDelivery;
  private readonly timers: NodeJS.Timeout[] = [];
  private sessionSerial = 0;
  private draining = false;
  private readonly policy: Parameters<typeof verifyAccessToken>[2];
  private readonly welcomeLimits: Extract<ServerMessage, { type: 'welcome' }>['limits'];
  /** The mesh's view of this node's sessions. */
  readonly localNode: LocalNode;
  private readonly listeners: {
    message: (this: WebSocket, data: RawData, isBinary: boolean) => void;
    close: (this: WebSocket) => void;
    error: (this: WebSocket, err: Error) => void;
    pong: (this: WebSocket) => void;
  };

  constructor(options: SessionCoreOptions) {
    const { config } = options;
    this.config = config;
    this.keys = options.keys;
    this.revocations = options.revocations;
    this.metrics = options.metrics;
    this.log = options.log;
    this.presence = new PresenceRegistry<Session>(config.maxSessionsPerUser);
    this.heartbeats = new HeartbeatWheel<Session>(config.heartbeatMs);
    this.delivery = new LocalDelivery(this.presence, this.metrics.stats, config.sendBufferBytes, (session) =>
      this.markCongested(session),
    );
    this.policy = {
      audience: config.audience,
      issuer: config.issuer,
      clockToleranceSec: config.clockToleranceSec,
    };
    this.welcomeLimits = {
      maxFrameBytes: config.maxFrameBytes,
      messagesPerSecond: config.messagesPerSecond,
      lookupsPerSecond: config.lookupsPerSecond,
      sendBufferBytes: config.sendBufferBytes,
      maxSessionsPerUser: config.maxSessionsPerUser,
    };
    const core = this;
    this.listeners = {
      message(data, isBinary) {
        const session = (this as SocketOfSession)[SESSION];
        try {
          core.onMessage(session, data, isBinary);
        } catch (err) {
          core.log.error({ err }, 'message handler failed');
          core.end(session, 'internal', 'internal error');
        }
      },
      close() {
        core.cleanup((this as SocketOfSession)[SESSION]);
      },
      error(err) {
        core.onSocketError(err);
      },
      pong() {
        (this as SocketOfSession)[SESSION].alive = true;
      },
    };
    this.localNode = {
      presenceOf: (user) => {
        const sessions = this.presence.sessionsOf(user);
        return sessions
          ? { sessions: sessions.length, endpoints: this.presence.endpointsOf(user, MAX_ENDPOINTS) }
          : undefined;
      },
      localUsers: () => this.presence.userIds(),
      deliver: (from, to, msgId, payload) => this.delivery.deliver(from, to, msgId, payload),
      forwardResult: (serial, msgId, result) => {
        const session = this.sessionsBySerial.get(serial);
        if (!session || session.closed) return;
        // An ack travels back only when asked for, so a delivered count always means FLAG_ACK was set.
        this.relayResult(
          session,
          msgId,
          FLAG_ACK,
          'delivered' in result ? result.delivered : result.code === 'recipient_busy' ? 'busy' : -1,
        );
      },
    };
  }

  get sessionCount(): number {
    return this.presence.size;
  }

  get userCount(): number {
    return this.presence.users;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  readyState(): ReadyState {
    const reasons: string[] = [];
    if (!this.keys.ready) reasons.push('keys_not_loaded');
    if (this.mesh && !this.mesh.ready) reasons.push('mesh_not_ready');
    if (this.draining) reasons.push('draining');
    if (this.connections.size >= this.config.maxSessions) reasons.push('full');
    return { ready: reasons.length === 0, reasons };
  }

  /** Takes a freshly upgraded socket: refused at once when draining, keyless or full, else given a hello deadline. */
  accept(socket: WebSocket): void {
    this.sessionSerial = (this.sessionSerial + 1) >>> 0 || 1;
    const session = new Session(socket, this.sessionSerial);
    this.connections.add(session);
    if (this.mesh) this.sessionsBySerial.set(session.serial, session);
    // The same four listener functions for every socket, each finding its session on the socket: no
    // closures per session (tens of thousands of them) to allocate at set-up and hold while idle.
    (socket as SocketOfSession)[SESSION] = session;
    socket.on('message', this.listeners.message);
    socket.on('close', this.listeners.close);
    socket.on('error', this.listeners.error);
    socket.on('pong', this.listeners.pong);
    if (this.draining) {
      this.refuse(session, 'draining', 'node is draining', {
        retryAfterMs: this.jitteredRetryMs(),
        alternatives: this.config.alternatives,
      });
    } else if (!this.keys.ready) {
      this.refuse(session, 'keys_unavailable', 'node has no public keys yet', {
        retryAfterMs: this.jitteredRetryMs(),
      });
    } else if (this.connections.size > this.config.maxSessions) {
      this.refuse(session, 'full', 'node is at capacity', {
        retryAfterMs: this.jitteredRetryMs(),
        alternatives: this.config.alternatives,
      });
    } else {
      session.authTimer = setTimeout(
        () => this.refuse(session, 'auth_timeout', 'no hello in time'),
        this.config.authTimeoutMs,
      );
    }
  }

  /** Ends every session whose credentials the revocation list now covers (called when it changes). */
  closeRevoked(): void {
    const revocations = this.revocations;
    if (!revocations) return;
    for (const session of this.presence.all()) {
      if (revocations.isRevoked(session.userId, session.family, session.tokenIssuedAtSec)) {
        this.disconnect(session, 'revoked', 'token_revoked', 'the credentials of this session were revoked');
      }
    }
  }

  /** Heartbeats and the slow-consumer sweep. */
  startTimers(): void {
    const { slowConsumerMs, sendBufferBytes } = this.config;
    const stats = this.metrics.stats;
    // Each registered session is pinged once per heartbeatMs, a wheel slot per tick rather than all at
    // once. One that has not answered the previous ping is gone (NAT timeout, dead peer).
    const visit = (session: Session): void => {
      if (!session.alive) {
        this.heartbeats.remove(session);
        stats.disconnect('heartbeat');
        session.socket.terminate();
        return;
      }
      session.alive = false;
      session.socket.ping();
    };
    this.timers.push(setInterval(() => this.heartbeats.tick(visit), this.heartbeats.tickMs));
    // Slow consumers: above the send buffer for too long means the client stopped reading.
    this.timers.push(
      setInterval(
        () => {
          const now = Date.now();
          for (const session of this.congested) {
            if (session.socket.bufferedAmount <= sendBufferBytes) {
              session.congestedSince = 0;
              this.congested.delete(session);
            } else if (now - session.congestedSince >= slowConsumerMs) {
              this.congested.delete(session);
              stats.disconnect('slow_consumer');
              // terminate, not close: a close frame would wait behind the data it is not reading.
              session.closed = true;
              session.socket.terminate();
            }
          }
        },
        Math.min(1000, slowConsumerMs),
      ),
    );
    for (const timer of this.timers) timer.unref();
  }

  stopTimers(): void {
    for (const timer of this.timers) clearInterval(timer);
    this.timers.length = 0;
  }

  /** Stops taking sessions and tells each client to move, at a random point of the spread. */
  beginDrain(spreadMs: number): void {
    this.draining = true;
    for (const session of this.presence.all()) {
      this.send(session, {
        type: 'drain',
        retryAfterMs: Math.floor(Math.random() * spreadMs),
        alternatives: this.config.alternatives,
      });
    }
  }

  /** Waits until every connection has gone or the deadline passes. */
  async waitForEmpty(deadline: number): Promise<void> {
    while (this.connections.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  }

  /** The drain deadline passed: the sessions still here are closed with 1001. */
  closeDrained(): void {
    for (const session of this.presence.all()) {
      this.metrics.stats.disconnect('drained');
      session.close(1001, 'drained');
    }
  }

  /** The node is shutting down: every connection gets 1001, and any that does not answer is cut off. */
  closeAll(): void {
    for (const session of this.connections) session.close(1001, 'node shutting down');
    setTimeout(() => {
      for (const session of this.connections) session.socket.terminate();
    }, 1000).unref();
  }

  private onSocketError(err: Error & { code?: string }): void {
    // ws closes an over-limit frame with 1009 itself; one line, no stack: the client is the problem.
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      this.metrics.stats.disconnect('frame_too_large');
      this.log.debug({ code: err.code }, 'session sent a frame over the limit');
      return;
    }
    this.log.debug({ err: { message: err.message, code: err.code } }, 'session socket error');
  }

  /** Random retry advice in [base, 2*base), so refused clients do not come back together. */
  private jitteredRetryMs(): number {
    return Math.floor(this.config.retryAfterMs * (1 + Math.random()));
  }

  private send(session: Session, message: ServerMessage): void {
    if (session.closed) return;
    batchWrites(session.socket);
    session.socket.send(JSON.stringify(message));
    if (session.socket.bufferedAmount > this.config.sendBufferBytes) this.markCongested(session);
  }

  private sendError(
    session: Session,
    code: ErrorCode,
    message: string,
    extra: Partial<ServerError> = {},
  ): void {
    this.send(session, { type: 'error', code, message, ...extra });
  }

  /** Ends a session with a typed error: the error message first, then the close code of that error. */
  private end(session: Session, code: ErrorCode, message: string, extra: Partial<ServerError> = {}): void {
    if (session.closed) return;
    this.sendError(session, code, message, extra);
    session.close(ErrorCodes[code] || 1000, code);
  }

  private refuse(session: Session, reason: RefusalReason, message: string, extra: Partial<ServerError> = {}) {
    this.metrics.stats.refuse(reason);
    this.end(session, reason, message, extra);
  }

  private disconnect(session: Session, reason: DisconnectReason, code: ErrorCode, message: string): void {
    this.metrics.stats.disconnect(reason);
    this.end(session, code, message);
  }

  private markCongested(session: Session): void {
    if (session.congestedSince === 0) {
      session.congestedSince = Date.now();
      this.congested.add(session);
    }
  }

  private readonly process = (session: Session) => (data: Buffer, isBinary: boolean) =>
    this.onMessage(session, data, isBinary);

  private throttle(session: Session, waitMs: number): void {
    session.throttle(waitMs, this.process(session));
  }

  private cleanup(session: Session): void {
    session.closed = true;
    this.connections.delete(session);
    this.sessionsBySerial.delete(session.serial);
    clearTimeout(session.authTimer);
    clearTimeout(session.resumeTimer);
    this.congested.delete(session);
    this.heartbeats.remove(session);
    if (session.authenticated && this.presence.remove(session)) this.mesh?.publish(session.userId);
  }

  private onMessage(session: Session, data: RawData, isBinary: boolean): void {
    if (session.closed) return;
    const buffer = data as Buffer;
    if (session.backlog) {
      if (!session.hold(buffer, isBinary)) {
        // Only a client that ignores backpressure gets here: the socket was already paused.
        this.disconnect(
          session,
          'rate_limited',
          'rate_limited',
          'frames sent far faster than the rate limit allows',
        );
      }
      return;
    }
    if (!session.authenticated) {
      if (isBinary) {
        this.refuse(session, 'auth_required', 'the first message must be a hello');
        return;
      }
      const parsed = parseClientMessage(buffer.toString('utf8'));
      if (!parsed.ok || parsed.message.type !== 'hello') {
        this.refuse(
          session,
          parsed.ok ? 'auth_required' : 'bad_message',
          parsed.ok ? 'the first message must be a hello' : parsed.message,
        );
        return;
      }
      this.onHello(session, parsed.message.token, parsed.message.endpoints);
      return;
    }
    const wait = (session.messages as TokenBucket).take(Date.now());
    if (isBinary) this.onRelay(session, buffer);
    else this.onControl(session, buffer.toString('utf8'));
    if (wait > 0) {
      this.metrics.stats.throttledMessages++;
      this.throttle(session, wait);
    }
  }

  /** Token verification is synchronous, so frames pipelined behind the hello need no holding. */
  private onHello(session: Session, token: string, endpoints: Endpoint[] | undefined): void {
    const trusted = this.keys.trusted;
    if (!trusted) {
      this.refuse(session, 'keys_unavailable', 'node has no public keys yet', {
        retryAfterMs: this.jitteredRetryMs(),
      });
      return;
    }
    const check = verifyAccessToken(token, trusted, this.policy);
    clearTimeout(session.authTimer);
    session.authTimer = undefined;
    if (!check.ok) {
      this.refuse(session, check.code, check.reason);
      return;
    }
    if (this.revocations?.isRevoked(check.userId, check.family, check.issuedAtSec)) {
      this.refuse(session, 'token_revoked', 'token was revoked; log in again');
      return;
    }
    if (this.draining) {
      this.refuse(session, 'draining', 'node is draining', {
        retryAfterMs: this.jitteredRetryMs(),
        alternatives: this.config.alternatives,
      });
      return;
    }
    const { config } = this;
    const now = Date.now();
    session.userId = check.userId;
    session.tokenIssuedAtSec = check.issuedAtSec;
    session.family = check.family;
    session.endpoints = endpoints ?? [];
    session.authenticated = true;
    session.messages = new TokenBucket(config.messagesPerSecond, config.messageBurst, now);
    session.lookups = new TokenBucket(config.lookupsPerSecond, config.lookupBurst, now);
    const displaced = this.presence.add(session);
    this.heartbeats.add(session);
    this.metrics.stats.registrations++;
    if (displaced)
      this.disconnect(displaced, 'replaced', 'replaced', 'a newer session of this user replaced this one');
    this.mesh?.publish(session.userId);
    this.send(session, {
      type: 'welcome',
      session: `${config.nodeId}/${session.serial.toString(36)}`,
      user: session.userId,
      node: config.nodeId,
      expiresAt: check.expiresAt,
      heartbeatMs: config.heartbeatMs,
      limits: this.welcomeLimits,
    });
  }

  private onRelay(session: Session, data: Buffer): void {
    const parsed = parseRelayFrame(data, FRAME_SEND);
    if (!parsed.ok) {
      this.sendError(session, 'bad_message', parsed.message, { msgId: parsed.msgId });
      return;
    }
    const { msgId, flags, userId, payloadOffset } = parsed.frame;
    const payload = data.subarray(payloadOffset);
    if (!this.presence.sessionsOf(userId) && this.mesh) {
      // Homed elsewhere (or nowhere): one hop over the mesh; the result comes back by serial.
      this.mesh.relay(session.userId, userId, msgId, flags, session.serial, payload);
      return;
    }
    this.relayResult(session, msgId, flags, this.delivery.deliver(session.userId, userId, msgId, payload));
  }

  /** Tells the sender what became of its frame: an ack if asked for, else only failures. */
  private relayResult(session: Session, msgId: number, flags: number, delivered: Delivery): void {
    const stats = this.metrics.stats;
    if (delivered === -1) {
      stats.relayUnknownRecipient++;
      this.sendError(session, 'unknown_recipient', 'recipient is not online', { msgId });
    } else if (delivered === 'busy') {
      stats.relayRecipientBusy++;
      this.sendError(session, 'recipient_busy', 'recipient is not reading; retry later', {
        msgId,
        retryAfterMs: 100,
      });
    } else if (flags & FLAG_ACK) {
      this.send(session, { type: 'ack', msgId, delivered });
    }
  }

  private onControl(session: Session, text: string): void {
    const parsed = parseClientMessage(text);
    if (!parsed.ok) {
      if (parsed.fatal) this.disconnect(session, 'bad_message', 'bad_message', parsed.message);
      else this.sendError(session, parsed.code, parsed.message, { id: parsed.id });
      return;
    }
    const message = parsed.message;
    switch (message.type) {
      case 'hello':
        this.sendError(session, 'bad_message', 'session is already authenticated');
        return;
      case 'endpoints':
        session.endpoints = message.endpoints;
        this.mesh?.publish(session.userId);
        return;
      case 'ping':
        this.send(session, { type: 'pong', id: message.id });
        return;
      case 'lookup':
        this.onLookup(session, message.id, message.user);
        return;
    }
  }

  private onLookup(session: Session, id: number, user: string): void {
    const stats = this.metrics.stats;
    const wait = (session.lookups as TokenBucket).take(Date.now());
    if (wait > 0) {
      stats.throttledLookups++;
      this.throttle(session, wait);
    }
    stats.lookups++;
    const mesh = this.mesh;
    if (mesh) {
      const started = performance.now();
      mesh.lookup(user).then(
        (answer) => {
          this.metrics.lookupSeconds.observe((performance.now() - started) / 1000);
          if (answer.online) stats.lookupsOnline++;
          this.send(session, { type: 'lookup_result', id, user, ...answer });
        },
        () => this.sendError(session, 'internal', 'lookup failed', { id }),
      );
      return;
    }
    const sessions = this.presence.sessionsOf(user);
    if (sessions) stats.lookupsOnline++;
    this.send(session, {
      type: 'lookup_result',
      id,
      user,
      online: sessions !== undefined,
      node: sessions ? this.config.publicUrl : null,
      sessions: sessions?.length ?? 0,
      endpoints: this.presence.endpointsOf(user, MAX_ENDPOINTS),
    });
  }
}
