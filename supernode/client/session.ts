import { EventEmitter } from 'node:events';
import WebSocket from 'ws';
import { encodeRelayFrame, FLAG_ACK, FRAME_DELIVER, FRAME_SEND, parseRelayFrame } from '../protocol/frames';
import {
  type Ack,
  type Drain,
  type Endpoint,
  type ErrorCode,
  type LookupResult,
  SESSION_PATH,
  type ServerError,
  type ServerMessage,
  type Welcome,
} from '../protocol/messages';

export interface SessionOptions {
  /** Base URL of the node, e.g. ws://127.0.0.1:7001 (the session path is added). */
  url: string;
  token: string;
  endpoints?: Endpoint[];
  /** Time allowed for the connection and the welcome. */
  timeoutMs?: number;
  /** Source address for the TCP connection (load generators spread over 127.0.0.x). */
  localAddress?: string;
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
  payload: Buffer;
}

interface Pending<T> {
  resolve: (value: T) => void;
  reject: (error: SessionError) => void;
  timer: NodeJS.Timeout;
}

/**
 * A minimal session client: connect with a token, register, look up, send and receive. It does not
 * reconnect; the resilient client builds on it.
 *
 * Events: 'message' (DeliveredMessage), 'drain' (Drain), 'server-error' (ServerError not tied to a
 * pending call), 'close' (code: number, reason: string).
 */
export class SupernodeSession extends EventEmitter {
  private nextId = 1;
  private readonly pendingRequests = new Map<number, Pending<LookupResult | number>>();
  private readonly pendingAcks = new Map<number, Pending<Ack>>();
  private lastError: ServerError | undefined;
  closeCode: number | undefined;

  private constructor(
    private readonly socket: WebSocket,
    readonly welcome: Welcome,
    private readonly requestTimeoutMs: number,
  ) {
    super();
  }

  static connect(options: SessionOptions): Promise<SupernodeSession> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const url = `${options.url.replace(/\/$/, '')}${SESSION_PATH}`;
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(url, { localAddress: options.localAddress, perMessageDeflate: false });
      let settled = false;
      let refusal: ServerError | undefined;
      const fail = (error: SessionError): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.terminate();
        reject(error);
      };
      const timer = setTimeout(() => fail(new SessionError('timeout', 'no welcome in time')), timeoutMs);
      socket.on('open', () => {
        socket.send(JSON.stringify({ type: 'hello', token: options.token, endpoints: options.endpoints }));
      });
      socket.on('error', (err) => fail(new SessionError('connect_failed', err.message)));
      socket.on('close', (code, reason) => {
        const text = reason.toString();
        fail(
          refusal
            ? new SessionError(
                refusal.code,
                refusal.message,
                code,
                refusal.retryAfterMs,
                refusal.alternatives,
              )
            : new SessionError('closed', `closed before welcome: ${code} ${text}`, code),
        );
      });
      socket.once('message', (data, isBinary) => {
        if (settled) return;
        const message = isBinary ? undefined : parseServerMessage(data as Buffer);
        if (message?.type === 'welcome') {
          settled = true;
          clearTimeout(timer);
          socket.removeAllListeners();
          resolve(new SupernodeSession(socket, message, timeoutMs).attach());
        } else if (message?.type === 'error') {
          refusal = message; // the close that follows carries the close code
        } else {
          fail(new SessionError('closed', 'unexpected first message from node'));
        }
      });
    });
  }

  private attach(): this {
    this.socket.on('message', (data, isBinary) => this.onMessage(data as Buffer, isBinary));
    this.socket.on('error', () => {}); // 'close' follows and carries what matters
    this.socket.on('close', (code, reason) => {
      this.closeCode = code;
      const error = new SessionError(this.lastError?.code ?? 'closed', `session closed: ${code}`, code);
      for (const pending of [...this.pendingRequests.values(), ...this.pendingAcks.values()]) {
        clearTimeout(pending.timer);
        pending.reject(error);
      }
      this.pendingRequests.clear();
      this.pendingAcks.clear();
      this.emit('close', code, reason.toString());
    });
    return this;
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) {
      const parsed = parseRelayFrame(data, FRAME_DELIVER);
      if (parsed.ok) {
        const { userId, msgId, payloadOffset } = parsed.frame;
        this.emit('message', {
          from: userId,
          msgId,
          payload: data.subarray(payloadOffset),
        } satisfies DeliveredMessage);
      }
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
    return this.socket.readyState === WebSocket.OPEN;
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
    this.socket.send(encodeRelayFrame(FRAME_SEND, 0, msgId, user, payload));
    return msgId;
  }

  /** Sends and waits for the node's ack (how many of the user's sessions got it) or typed error. */
  sendWithAck(user: string, payload: Uint8Array): Promise<Ack> {
    const msgId = this.takeId();
    return this.request(this.pendingAcks, msgId, () =>
      this.socket.send(encodeRelayFrame(FRAME_SEND, FLAG_ACK, msgId, user, payload)),
    );
  }

  /** Sends a raw frame (tests of the node's input handling). */
  sendRaw(data: Buffer | string): void {
    this.socket.send(data);
  }

  /** Stops reading from the node (tests of the slow-consumer rule). */
  pauseReading(): void {
    this.socket.pause();
  }

  /** Closes politely; a peer that does not finish the closing handshake in 2 s is cut off. */
  close(code = 1000): Promise<void> {
    if (this.socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.socket.terminate(), 2000);
      this.socket.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.resume();
      this.socket.close(code);
    });
  }
}

function parseServerMessage(data: Buffer): ServerMessage | undefined {
  try {
    const value = JSON.parse(data.toString()) as ServerMessage;
    return typeof value === 'object' && value !== null ? value : undefined;
  } catch {
    return undefined;
  }
}
