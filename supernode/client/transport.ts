/**
 * The socket under a session, whatever the environment provides: `ws` in Node (ws-transport.ts), the
 * WHATWG WebSocket in browsers (below). The session speaks the protocol over this and nothing else.
 */

/** What the transport reports; text frames arrive as strings, binary frames as bytes. */
export interface TransportListener {
  onOpen(): void;
  onMessage(data: string | Uint8Array): void;
  onError(message: string): void;
  onClose(code: number, reason: string): void;
}

/** WebSocket readyState values (the same in `ws` and in browsers). */
export const OPEN = 1;
export const CLOSED = 3;

export interface Transport {
  readonly readyState: number;
  send(data: string | Uint8Array): void;
  close(code: number): void;
  /** Cuts the connection without a closing handshake (browsers cannot: there it closes). */
  terminate(): void;
  /** Stops and restarts reading from the socket; Node only (browsers give no such control). */
  pause?(): void;
  resume?(): void;
}

export interface TransportOptions {
  /** Source address of the TCP connection; Node only (browsers choose their own). */
  localAddress?: string;
}

/** Opens a WebSocket to `url` and reports its events to `listener` (read at each event). */
export type OpenTransport = (
  url: string,
  listener: TransportListener,
  options: TransportOptions,
) => Transport;

/** The part of the WHATWG WebSocket the transport uses. */
export interface WebSocketLike {
  binaryType: string;
  readonly readyState: number;
  onopen: ((event: unknown) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  send(data: string | Uint8Array): void;
  close(code?: number): void;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/**
 * A transport over a WHATWG WebSocket: the browser's global one by default, or any constructor with
 * its API. Browsers report no reason for a failed connection, so the error says only that it failed.
 */
export function webSocketTransport(WebSocketClass?: WebSocketConstructor): OpenTransport {
  return (url, listener) => {
    const Class = WebSocketClass ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!Class) throw new TypeError('no WebSocket in this environment: pass a WebSocket constructor');
    const socket = new Class(url);
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => listener.onOpen();
    socket.onerror = () => listener.onError(`WebSocket connection to ${url} failed`);
    socket.onclose = (event) => listener.onClose(event.code, event.reason);
    socket.onmessage = (event) =>
      listener.onMessage(
        typeof event.data === 'string' ? event.data : new Uint8Array(event.data as ArrayBuffer),
      );
    return {
      get readyState() {
        return socket.readyState;
      },
      send: (data) => socket.send(data),
      close: (code) => socket.close(code),
      terminate: () => socket.close(),
    };
  };
}
