import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';
import { type HandshakeMessage, parseHandshake } from './wire';

/**
 * Mesh link authentication: a mutual HMAC challenge over a shared secret, so the secret never
 * crosses the wire and neither side talks to a peer that cannot prove it holds it.
 *
 *   acceptor -> dialer   {"t":"challenge","node":A,"nonce":nA}
 *   dialer -> acceptor   {"t":"auth","node":D,"nonce":nD,"mac":HMAC(secret, "dial|nA|D|A")}
 *   acceptor -> dialer   {"t":"accept","mac":HMAC(secret, "accept|nD|A|D")}
 *
 * Nonces are 32 random bytes (base64url); the node ids are bound into each MAC so a response for
 * one pair cannot be replayed to another.
 */
export const MESH_PATH = '/v1/mesh';
export const MESH_AUTH_TIMEOUT_MS = 5000;
/** Close code for a peer that failed authentication. */
export const CLOSE_MESH_AUTH = 4401;

export function nonce(): string {
  return randomBytes(32).toString('base64url');
}

export function mac(secret: string, ...parts: string[]): string {
  return createHmac('sha256', secret).update(parts.join('|')).digest('base64url');
}

export function macEqual(a: string, b: string): boolean {
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

type Frame = [data: RawData, isBinary: boolean];

/** Handshake messages are text frames; a binary frame, a closed socket or a timeout is none. */
function parse(frame: Frame | undefined): HandshakeMessage | undefined {
  return frame && !frame[1] ? parseHandshake(String(frame[0])) : undefined;
}

/**
 * Holds every frame from the moment the socket opens until the mesh takes the link over, so a
 * frame that arrives right behind the handshake (often in the same TCP read) is never lost.
 */
/** What a socket may send before it has proven the secret (frames, bytes). */
const MAX_PRE_AUTH_FRAMES = 16;
const MAX_PRE_AUTH_BYTES = 256 * 1024;
const REFUSED_CLOSE_GRACE_MS = 2000;

function frameBytes(data: RawData): number {
  if (Array.isArray(data)) return data.reduce((n, part) => n + part.length, 0);
  return data instanceof ArrayBuffer ? data.byteLength : data.length;
}

class Inbox {
  private readonly queue: Frame[] = [];
  private queuedBytes = 0;
  private waiter: ((frame: Frame | undefined) => void) | undefined;
  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      waiter([data, isBinary]);
      return;
    }
    // Before the handshake ends an honest peer sends a frame or two; a socket that has not proven the
    // secret must not pin memory, so anything beyond a small allowance ends it.
    this.queuedBytes += frameBytes(data);
    if (this.queue.length >= MAX_PRE_AUTH_FRAMES || this.queuedBytes > MAX_PRE_AUTH_BYTES) this.refuse();
    else this.queue.push([data, isBinary]);
  };
  private readonly onClose = (): void => {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.(undefined);
  };

  constructor(private readonly socket: WebSocket) {
    socket.on('message', this.onMessage);
    socket.on('close', this.onClose);
  }

  next(timeoutMs: number): Promise<Frame | undefined> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.socket.readyState !== this.socket.OPEN) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (frame) => {
        clearTimeout(timer);
        resolve(frame);
      };
    });
  }

  /** Ends a socket that failed the handshake: drops what it sent, stops listening, closes it. */
  refuse(): void {
    this.socket.off('message', this.onMessage);
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.socket.close(CLOSE_MESH_AUTH, 'mesh authentication failed');
    // A peer that ignores the close frame is cut after a short grace instead of the library's 30 s.
    setTimeout(() => this.socket.terminate(), REFUSED_CLOSE_GRACE_MS).unref();
  }

  /** Hands the link to `handler`: queued frames first, in order, then every later one. */
  takeOver(handler: (data: RawData, isBinary: boolean) => void): void {
    this.socket.off('message', this.onMessage);
    this.socket.off('close', this.onClose);
    for (const [data, isBinary] of this.queue.splice(0)) handler(data, isBinary);
    this.socket.on('message', handler);
  }
}

/** An authenticated link: who is at the other end, and how to start reading from it. */
export interface AuthenticatedLink {
  peerId: string;
  takeOver(handler: (data: RawData, isBinary: boolean) => void): void;
}

/** Acceptor side; the authenticated peer, or undefined after closing the socket. */
export async function acceptPeer(
  socket: WebSocket,
  selfId: string,
  secret: string,
): Promise<AuthenticatedLink | undefined> {
  const inbox = new Inbox(socket);
  const challenge = nonce();
  socket.send(JSON.stringify({ t: 'challenge', node: selfId, nonce: challenge }));
  const auth = parse(await inbox.next(MESH_AUTH_TIMEOUT_MS));
  if (
    auth?.t !== 'auth' ||
    auth.node === selfId ||
    !macEqual(auth.mac, mac(secret, 'dial', challenge, auth.node, selfId))
  ) {
    inbox.refuse();
    return undefined;
  }
  const peer = auth.node;
  socket.send(JSON.stringify({ t: 'accept', mac: mac(secret, 'accept', auth.nonce, selfId, peer) }));
  return { peerId: peer, takeOver: (handler) => inbox.takeOver(handler) };
}

/** Dialer side (call on 'open'); the acceptor once both sides are proven, else undefined (socket closed). */
export async function dialPeer(
  socket: WebSocket,
  selfId: string,
  secret: string,
): Promise<AuthenticatedLink | undefined> {
  const inbox = new Inbox(socket);
  const challenge = parse(await inbox.next(MESH_AUTH_TIMEOUT_MS));
  if (challenge?.t !== 'challenge') {
    inbox.refuse();
    return undefined;
  }
  const peer = challenge.node;
  const ours = nonce();
  socket.send(
    JSON.stringify({
      t: 'auth',
      node: selfId,
      nonce: ours,
      mac: mac(secret, 'dial', challenge.nonce, selfId, peer),
    }),
  );
  const accept = parse(await inbox.next(MESH_AUTH_TIMEOUT_MS));
  if (accept?.t !== 'accept' || !macEqual(accept.mac, mac(secret, 'accept', ours, peer, selfId))) {
    inbox.refuse();
    return undefined;
  }
  return { peerId: peer, takeOver: (handler) => inbox.takeOver(handler) };
}
