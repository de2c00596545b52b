import type {
  Ack,
  Drain,
  Endpoint,
  ErrorCode,
  LookupResult,
  SESSION_PATH as PROTOCOL_SESSION_PATH,
  ServerError,
  ServerMessage,
  Welcome,
} from '../protocol/messages';
import { defaultTransport } from './default-transport';
import { Emitter } from './emitter';
import { encodeSendFrame, parseDeliverFrame } from './relay-codec';
import { CLOSED, OPEN, type OpenTransport, type Transport, type TransportListener } from './transport';

// Not imported as a value: protocol/messages.ts compiles its schemas at load, which browsers need not
// carry. The type keeps the two equal.
const SESSION_PATH: typeof PROTOCOL_SESSION_PATH = '/v1/session';

export interface SessionOptions {
  /** Base URL of the node, e.g. ws://127.0.0.1:7001 (the session path is added). */
  url: string;
  token: string;
  endpoints?: Endpoint[];
  /** Time allowed for the connection and the welcome. */
  timeoutMs?: number;
  /** Source address for the TCP connection (load generators spread over 127.0.0.x); Node only. */
  localAddress?: string;
  /** The socket: `ws` in Node, the global WebSocket in the browser bundle (default-transport.ts). */
  transport?: OpenTransport;
}

/** The node ended or refused the session with a typed error. */
export class SessionError extends Error {
  override name = 'SessionError';
  constructor(
    readonly code: ErrorCode | 'closed' | 'timeout' | 'connect_failed',
    message: string,
    readonly closeCode?: number,
    readonly retryAfterMs?: number,
    readonly alternatives?: string[],
  ) {
    super(message);
  }
}

export interface DeliveredMessage {
  from: string;
  msgId: number;
  /**
   * The payload as sent, a view into the frame. Typed as Node's Buffer, which it is in Node; in the
   * browser it is a plain Uint8Array (Buffer's base class): decode it with TextDecoder there.
   */
  payload: Buffer;
}

export interface SessionEvents {
  message: [DeliveredMessage];
  drain: [Drain];
  'server-error': [ServerError];
  close: [code: number, reason: string];
}

interface Pending<T> {
  resolve: (value: T) => void;
  reject: (error: SessionError) => void;
  timer: ReturnType<typeof setTimeout>;
}

const ignore = (): void => {};

/**
 * A minimal session client: connect with a token, register, look up, send and receive. It does not
 * reconnect; the resilient client builds on it.
 *
 * Events: 'message' (DeliveredMessage), 'drain' (Drain), 'server-error' (ServerError not tied to a
 * pending call), 'close' (code: number, reason: string).
 */
export class SupernodeSession extends Emitter<SessionEvents> {
  private nextId = 1;
  private readonly pendingRequests = new Map<number, Pending<LookupResult | number>>();
  private readonly pendingAcks = new Map<number, Pending<Ack>>();
  private lastError: ServerError | undefined;
  private readonly closed: Promise<void>;
  closeCode: number | undefined;

  private constructor(
    private readonly socket: Transport,
    listener: TransportListener,
    readonly welcome: Welcome,
    private readonly requestTimeoutMs: number,
  ) {
    super();
    let markClosed = ignore;
    this.closed = new Promise((resolve) => {
      markClosed = resolve;
    });
    // The transport reads the listener at each event: from here on its events are the session's.
    Object.assign(listener, {
      onOpen: ignore,
      onMessage: (data: string | Uint8Array) => this.onMessage(data),
      onError: ignore, // 'close' follows and carries what matters
      onClose: (code: number, reason: string) => {
        this.onClose(code, reason);
        markClosed();
      },
    } satisfies TransportListener);
  }

  static connect(options: SessionOptions): Promise<SupernodeSession> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const url = `${options.url.replace(/\/$/, '')}${SESSION_PATH}`;
    const openTransport = options.transport ?? defaultTransport;
    return new Promise((resolve, reject) => {
      let settled = false;
      let answered = false;
      let refusal: ServerError | undefined;
      const fail = (error: SessionError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.terminate();
        reject(error);
      };
      const listener: TransportListener = {
        onOpen: () => {
          socket.send(JSON.stringify({ type: 'hello', token: options.token, endpoints: options.endpoints }));
        },
        onError: (message) => fail(new SessionError('connect_failed', message)),
        onClose: (code, reason) => {
          fail(
            refusal
              ? new SessionError(
                  refusal.code,
                  refusal.message,
                  code,
                  refusal.retryAfterMs,
                  refusal.alternatives,
                )
              : new SessionError('closed', `closed before welcome: ${code} ${reason}`, code),
          );
        },
        // Only the first message is the node's answer to the hello.
        onMessage: (data) => {
          if (answered || settled) return;
          answered = true;
          const message = typeof data === 'string' ? parseServerMessage(data) : undefined;
          if (message?.type === 'welcome') {
            settled = true;
            clearTimeout(timer);
            resolve(new SupernodeSession(socket, listener, message, timeoutMs));
          } else if (message?.type === 'error') {
            refusal = message; // the close that follows carries the close code
          } else {
            fail(new SessionError('closed', 'unexpected first message from node'));
          }
        },
      };
      const socket = openTransport(url, listener, { localAddress: options.localAddress });
      const timer = setTimeout(() => fail(new SessionError('timeout', 'no welcome in time')), timeoutMs);
    });
  }

  private onClose(code: number, reason: string): void {
    this.closeCode = code;
    const error = new SessionError(this.lastError?.code ?? 'closed', `session closed: ${code}`, code);
    for (const pending of [...this.pendingRequests.values(), ...this.pendingAcks.values()]) {
      clearTimeout(pending.timer);
      pending.reject(error);
    }
    this.pendingRequests.clear();
    this.pendingAcks.clear();
    this.emit('close', code, reason);
  }

  private onMessage(data: string | Uint8Array): void {
    if (typeof data !== 'string') {
      // Node's transport hands over Buffers, the browser's Uint8Arrays (see DeliveredMessage).
      const frame = parseDeliverFrame(data as Buffer);
      if (frame) this.emit('message', frame);
      return;
    }
    const message = parseServerMessage(data);
    if (!message) return;
    switch (message.type) {
      case 'lookup_result':
        this.settle(this.pendingRequests, message.id, message);
        return;
      case 'pong':
        this.settle(this.pendingRequests, message.id, Date.now());
        return;
      case 'ack':
        this.settle(this.pendingAcks, message.msgId, message);
        return;
      case 'drain':
        this.emit('drain', message satisfies Drain);
        return;
      case 'error': {
        this.lastError = message;
        const error = new SessionError(
          message.code,
          message.message,
          undefined,
          message.retryAfterMs,
          message.alternatives,
        );
        if (message.id !== undefined && this.fail(this.pendingRequests, message.id, error)) return;
        if (message.msgId !== undefined && this.fail(this.pendingAcks, message.msgId, error)) return;
        this.emit('server-error', message);
        return;
      }
      default:
        return;
    }
  }

  private settle<T>(map: Map<number, Pending<T>>, id: number, value: T): void {
    const pending = map.get(id);
    if (!pending) return;
    map.delete(id);
    clearTimeout(pending.timer);
    pending.resolve(value);
  }

  private fail<T>(map: Map<number, Pending<T>>, id: number, error: SessionError): boolean {
    const pending = map.get(id);
    if (!pending) return false;
    map.delete(id);
    clearTimeout(pending.timer);
    pending.reject(error);
    return true;
  }

  private request<T>(map: Map<number, Pending<T>>, id: number, send: () => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        map.delete(id);
        reject(new SessionError('timeout', 'no answer in time'));
      }, this.requestTimeoutMs);
      map.set(id, { resolve, reject, timer });
      send();
    });
  }

  private takeId(): number {
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0 || 1;
    return id;
  }

  get user(): string {
    return this.welcome.user;
  }

  get isOpen(): boolean {
    return this.socket.readyState === OPEN;
  }

  lookup(user: string): Promise<LookupResult> {
    const id = this.takeId();
    return this.request(this.pendingRequests, id, () =>
      this.socket.send(JSON.stringify({ type: 'lookup', id, user })),
    ) as Promise<LookupResult>;
  }

  /** Round trip in ms. */
  async ping(): Promise<number> {
    const id = this.takeId();
    const started = Date.now();
    const answered = (await this.request(this.pendingRequests, id, () =>
      this.socket.send(JSON.stringify({ type: 'ping', id })),
    )) as number;
    return answered - started;
  }

  setEndpoints(endpoints: Endpoint[]): void {
    this.socket.send(JSON.stringify({ type: 'endpoints', endpoints }));
  }

  /** Fire and forget; errors for this frame arrive as 'server-error' events. Returns the msgId. */
  send(user: string, payload: Uint8Array): number {
    const msgId = this.takeId();
    this.socket.send(encodeSendFrame(false, msgId, user, payload));
    return msgId;
  }

  /** Sends and waits for the node's ack (how many of the user's sessions got it) or typed error. */
  sendWithAck(user: string, payload: Uint8Array): Promise<Ack> {
    const msgId = this.takeId();
    return this.request(this.pendingAcks, msgId, () =>
      this.socket.send(encodeSendFrame(true, msgId, user, payload)),
    );
  }

  /** Sends a raw frame (tests of the node's input handling). */
  sendRaw(data: Uint8Array | string): void {
    this.socket.send(data);
  }

  /** Stops reading from the node (tests of the slow-consumer rule); Node only. */
  pauseReading(): void {
    if (!this.socket.pause) throw new TypeError('this transport cannot pause reading');
    this.socket.pause();
  }

  /** Closes politely; a peer that does not finish the closing handshake in 2 s is cut off. */
  close(code = 1000): Promise<void> {
    if (this.socket.readyState === CLOSED) return Promise.resolve();
    const timer = setTimeout(() => this.socket.terminate(), 2000);
    this.socket.resume?.();
    this.socket.close(code);
    return this.closed.then(() => clearTimeout(timer));
  }
}

function parseServerMessage(text: string): ServerMessage | undefined {
  try {
    const value = JSON.parse(text) as ServerMessage;
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
