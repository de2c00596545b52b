import dgram from 'node:dgram';
import { isIP } from 'node:net';
import type { LogSink } from '../shared/log';
import {
  encodeBindingError,
  encodeBindingSuccess,
  parseStunRequest,
  STUN_MAX_SOFTWARE_BYTES,
  type StunDropReason,
} from './codec';
import { StunResponders } from './responders';
import { bindUdpSocket, literalLookup } from './udp';

export type StunOutcome = 'answered' | 'error_response' | 'dropped';
/** Codec reasons plus the ones only the server can see. */
export type StunServerDropReason = StunDropReason | 'bad_source_port' | 'send_queue_full' | 'internal_error';

export type StunServerLog = LogSink<'warn'> & Partial<LogSink<'debug'>>;

export interface StunServerOptions {
  host: string;
  /** 0 picks a free port; start() reports it. */
  port: number;
  software?: string;
  log?: StunServerLog;
  /** `count` is 1 for an answer of this process, more for a batch a responder process reported. */
  onOutcome?: (outcome: StunOutcome, reason: StunServerDropReason | undefined, count: number) => void;
  /**
   * Replies waiting in libuv's send queue beyond which requests are dropped. The queue only grows when
   * the kernel buffer is full, and must not grow without bound under a flood.
   */
  maxQueuedSends?: number;
  /**
   * Processes answering on the socket: 1 is this one alone; each one more is a child process reading
   * the same socket (responders.ts), so Binding answers use more than one core.
   */
  processes?: number;
}

export interface StunServerStats {
  /** Success responses handed to the socket. */
  answered: number;
  /** 420 responses handed to the socket. */
  errorResponses: number;
  /** Datagrams that got no reply. */
  dropped: number;
  /** Replies whose send threw (a subset of answered + errorResponses); later send failures are not seen. */
  sendErrors: number;
  /** Outcomes that responder processes reported (already in the counts above). */
  fromResponders: number;
}

const STAT_OF_OUTCOME: Record<StunOutcome, 'answered' | 'errorResponses' | 'dropped'> = {
  answered: 'answered',
  error_response: 'errorResponses',
  dropped: 'dropped',
};

const DEFAULT_MAX_QUEUED_SENDS = 1024;

/**
 * STUN Binding responder (RFC 8489) on one UDP socket. Nothing here throws out of a socket callback:
 * malformed datagrams are dropped silently, socket errors are logged, send failures are counted.
 */
export class StunServer {
  readonly stats: StunServerStats = {
    answered: 0,
    errorResponses: 0,
    dropped: 0,
    sendErrors: 0,
    fromResponders: 0,
  };
  private readonly log: StunServerLog | undefined;
  private readonly maxQueuedSends: number;
  private socket: dgram.Socket | undefined;
  private responders: StunResponders | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly options: StunServerOptions) {
    // Checked here so a bad setting fails at startup, not on every request.
    if (options.software && Buffer.byteLength(options.software) > STUN_MAX_SOFTWARE_BYTES) {
      throw new RangeError(`software must be at most ${STUN_MAX_SOFTWARE_BYTES} bytes of UTF-8`);
    }
    this.log = options.log;
    this.maxQueuedSends = options.maxQueuedSends ?? DEFAULT_MAX_QUEUED_SENDS;
    const processes = options.processes ?? 1;
    if (!Number.isInteger(processes) || processes < 1 || processes > 64)
      throw new RangeError('processes must be an integer from 1 to 64');
  }

  /** Processes answering now: this one and its running responders. */
  get processes(): number {
    return 1 + (this.responders?.running ?? 0);
  }

  /** Process ids of the responder processes (none when `processes` is 1). */
  get responderPids(): number[] {
    return this.responders?.pids ?? [];
  }

  /** Binds the socket; rejects on a bind error (e.g. EADDRINUSE). Call at most once. */
  start(): Promise<{ address: string; port: number }> {
    if (this.socket || this.closing) return Promise.reject(new Error('StunServer can only be started once'));
    const { host, port } = this.options;
    const socket = dgram.createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4', lookup: literalLookup });
    this.socket = socket;
    socket.on('message', this.onMessage);
    const bound = bindUdpSocket(socket, host, port, (err) => this.log?.warn({ err }, 'stun socket error'));
    return bound.then(async () => {
      const extra = (this.options.processes ?? 1) - 1;
      if (extra > 0 && !this.closing) {
        const { software, maxQueuedSends } = this.options;
        try {
          this.responders = await StunResponders.start({
            socket,
            count: extra,
            settings: { software, maxQueuedSends },
            log: this.log,
            onCounts: (outcome, reason, count) => {
              this.stats[STAT_OF_OUTCOME[outcome]] += count;
              this.stats.fromResponders += count;
              this.report(outcome, reason, count);
            },
          });
        } catch (err) {
          await this.close();
          throw err;
        }
      }
      const address = socket.address();
      return { address: address.address, port: address.port };
    });
  }

  /** Answers on a socket bound elsewhere (a responder process is handed its parent's). Call at most once. */
  adopt(socket: dgram.Socket): void {
    if (this.socket || this.closing) throw new Error('StunServer already has a socket');
    this.socket = socket;
    socket.on('message', this.onMessage);
    socket.on('error', (err) => this.log?.warn({ err }, 'stun socket error'));
  }

  /** Closes the socket. Safe to call more than once, and before or after start(). */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    const socket = this.socket;
    const responders = this.responders;
    this.closing = (responders?.stop() ?? Promise.resolve()).then(
      () =>
        new Promise((resolve) => {
          if (!socket) return resolve();
          try {
            socket.close(() => resolve());
          } catch {
            resolve(); // already closed after a failed bind
          }
        }),
    );
    return this.closing;
  }

  // Arrow properties: one bound function for the server's lifetime, not one per datagram.
  private readonly onMessage = (msg: Buffer, remote: dgram.RemoteInfo): void => {
    try {
      this.respond(msg, remote);
    } catch (err) {
      this.stats.dropped++;
      this.log?.warn({ err, remote: `${remote.address}:${remote.port}` }, 'stun request handling failed');
      this.report('dropped', 'internal_error');
    }
  };

  private readonly onSent = (err: Error | null): void => {
    if (!err) return;
    this.stats.sendErrors++;
    this.log?.warn({ err }, 'stun reply send failed');
  };

  private respond(msg: Buffer, remote: dgram.RemoteInfo): void {
    const request = parseStunRequest(msg);
    if (!request.ok) {
      this.drop(request.reason, remote);
      return;
    }
    if (remote.port === 0) {
      // Cannot be replied to (send would throw); only a forged datagram has it.
      this.drop('bad_source_port', remote);
      return;
    }
    const socket = this.socket;
    if (!socket || socket.getSendQueueCount() >= this.maxQueuedSends) {
      this.drop('send_queue_full', remote);
      return;
    }

    const { software } = this.options;
    let reply: Buffer;
    let outcome: StunOutcome;
    if (request.unknownRequired.length > 0) {
      reply = encodeBindingError(request.transactionId, 420, request.unknownRequired, software);
      this.stats.errorResponses++;
      outcome = 'error_response';
    } else {
      reply = encodeBindingSuccess(
        request.transactionId,
        remote.address,
        remote.port,
        remote.family,
        software,
      );
      this.stats.answered++;
      outcome = 'answered';
    }
    try {
      // No completion callback: dgram's fast path (a synchronous try-send, no request object and no
      // callback per answer), as the TURN relay does. A reply the kernel refuses later is a lost
      // datagram, which the client's retransmission covers; only throws are counted.
      socket.send(reply, remote.port, remote.address);
    } catch (err) {
      // e.g. the socket closed under us; the reply is already counted, so count the failure too.
      this.onSent(err instanceof Error ? err : new Error(String(err)));
    }
    this.report(outcome);
  }

  private drop(reason: StunServerDropReason, remote: dgram.RemoteInfo): void {
    this.stats.dropped++;
    this.log?.debug?.({ reason, remote: `${remote.address}:${remote.port}` }, 'stun datagram dropped');
    this.report('dropped', reason);
  }

  /** A throwing observer must not turn an answered request into a dropped one. */
  private report(outcome: StunOutcome, reason?: StunServerDropReason, count = 1): void {
    if (!this.options.onOutcome) return;
    try {
      this.options.onOutcome(outcome, reason, count);
    } catch (err) {
      this.log?.warn({ err }, 'stun onOutcome callback failed');
    }
  }
}
