import dgram from 'node:dgram';
import net from 'node:net';
import { bindUdpSocket, closeQuietly, literalLookup } from '../stun/udp';
import type { FastPathBinding } from './native/fastpath';

/**
 * The TURN server's UDP sockets (its listener and its relays), on either relay engine: Node's dgram,
 * or the native fast path (native/fastpath.c), which also relays ChannelData on the routes the server
 * installs without calling into JavaScript. One interface, so the server has one code path for both.
 */

export type UdpHandler = (msg: Buffer, address: string, port: number) => void;

export interface UdpEndpoint {
  readonly address: string;
  readonly port: number;
  /** The fast path's socket id; -1 on dgram. */
  readonly fastId: number;
  /** Datagrams the fast path did not take; unset: dropped (a relay not yet or no longer allocated). */
  onMessage: UdpHandler | undefined;
  /**
   * Sends one datagram; false when it was dropped because the send queue (dgram) or the socket's send
   * buffer (native) is full. `relayed` packets go without a completion callback on dgram.
   */
  send(datagram: Buffer, port: number, address: string, relayed: boolean): boolean;
  close(done?: () => void): void;
}

export interface UdpOpenOptions {
  listener: boolean;
  /** SO_RCVBUF and SO_SNDBUF; 0 keeps the system's. */
  bufferBytes: number;
  maxQueuedSends: number;
  /** Socket errors after the bind. */
  onError: (err: Error) => void;
  /** A failed send of an answer (relayed packets are sent without a callback). */
  onSendError: (err: Error) => void;
}

export type RelayEngine = 'native' | 'dgram';

export interface UdpFactory {
  readonly engine: RelayEngine;
  /** The addon when the engine is native. */
  readonly fast: FastPathBinding | undefined;
  /** Rejects with the bind error (EADDRINUSE, ...). */
  open(address: string, port: number, options: UdpOpenOptions): Promise<UdpEndpoint>;
}

class DgramEndpoint implements UdpEndpoint {
  readonly fastId = -1;
  onMessage: UdpHandler | undefined;
  address = '';
  port = 0;

  constructor(
    readonly socket: dgram.Socket,
    private readonly maxQueuedSends: number,
    private readonly onSendError: (err: Error) => void,
  ) {
    socket.on('message', (msg, remote) => this.onMessage?.(msg, remote.address, remote.port));
  }

  send(datagram: Buffer, port: number, address: string, relayed: boolean): boolean {
    if (this.socket.getSendQueueCount() >= this.maxQueuedSends) return false;
    try {
      if (relayed) this.socket.send(datagram, port, address);
      else this.socket.send(datagram, port, address, this.onSent);
    } catch (err) {
      this.onSent(err instanceof Error ? err : new Error(String(err)));
    }
    return true;
  }

  private readonly onSent = (err: Error | null): void => {
    if (err) this.onSendError(err);
  };

  close(done?: () => void): void {
    if (!done) {
      closeQuietly(this.socket);
      return;
    }
    try {
      this.socket.close(done);
    } catch {
      done();
    }
  }
}

export const dgramFactory: UdpFactory = {
  engine: 'dgram',
  fast: undefined,
  async open(address, port, options) {
    const size = options.bufferBytes > 0 ? options.bufferBytes : undefined;
    const socket = dgram.createSocket({
      type: net.isIP(address) === 6 ? 'udp6' : 'udp4',
      recvBufferSize: size,
      sendBufferSize: size,
      lookup: literalLookup,
    });
    const endpoint = new DgramEndpoint(socket, options.maxQueuedSends, options.onSendError);
    await bindUdpSocket(socket, address, port, options.onError);
    const bound = socket.address();
    endpoint.address = bound.address;
    endpoint.port = bound.port;
    return endpoint;
  },
};

class NativeEndpoint implements UdpEndpoint {
  onMessage: UdpHandler | undefined;
  readonly fastId: number;
  readonly port: number;
  private closed = false;

  constructor(
    private readonly fast: FastPathBinding,
    readonly address: string,
    port: number,
    bufferBytes: number,
    listener: boolean,
  ) {
    // The addon calls back on the main loop; a throw would reach uncaughtException, so none escapes.
    const [id, bound] = fast.open(
      net.isIP(address) === 6 ? 6 : 4,
      address,
      port,
      bufferBytes,
      (msg, from, fromPort) => this.onMessage?.(msg, from, fromPort),
      listener,
    );
    this.fastId = id;
    this.port = bound;
  }

  send(datagram: Buffer, port: number, address: string): boolean {
    return !this.closed && this.fast.send(this.fastId, datagram, port, address);
  }

  close(done?: () => void): void {
    if (!this.closed) {
      this.closed = true;
      this.fast.close(this.fastId);
    }
    done?.();
  }
}

export function nativeFactory(fast: FastPathBinding): UdpFactory {
  return {
    engine: 'native',
    fast,
    async open(address, port, options) {
      if (net.isIP(address) === 0) throw new TypeError(`${address} is not an IP address`);
      return new NativeEndpoint(fast, address, port, options.bufferBytes, options.listener);
    },
  };
}
