import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { RawData, WebSocket } from 'ws';

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
const NODE_ID = /^[A-Za-z0-9._:-]{1,64}$/;

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

type Json = Record<string, unknown>;
type Frame = [data: RawData, isBinary: boolean];

function parse(frame: Frame | undefined): Json | undefined {
  if (!frame || frame[1]) return undefined;
  try {
    const value = JSON.parse(String(frame[0])) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Holds every frame from the moment the socket opens until the mesh takes the link over, so a
 * frame that arrives right behind the handshake (often in the same TCP read) is never lost.
 */
class Inbox {
  private readonly queue: Frame[] = [];
  private waiter: ((frame: Frame | undefined) => void) | undefined;
  private readonly onMessage = (data: RawData, isBinary: boolean): void => {
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) waiter([data, isBinary]);
    else if (this.queue.length < 1024) this.queue.push([data, isBinary]);
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
  const peer = auth?.node;
  if (
    auth?.t !== 'auth' ||
    typeof peer !== 'string' ||
    !NODE_ID.test(peer) ||
    peer === selfId ||
    typeof auth.nonce !== 'string' ||
    auth.nonce.length !== 43 ||
    typeof auth.mac !== 'string' ||
    !macEqual(auth.mac, mac(secret, 'dial', challenge, peer, selfId))
  ) {
    socket.close(CLOSE_MESH_AUTH, 'mesh authentication failed');
    return undefined;
  }
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
  const peer = challenge?.node;
  if (
    challenge?.t !== 'challenge' ||
    typeof peer !== 'string' ||
    !NODE_ID.test(peer) ||
    typeof challenge.nonce !== 'string'
  ) {
    socket.close(CLOSE_MESH_AUTH, 'mesh authentication failed');
    return undefined;
  }
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
  if (
    accept?.t !== 'accept' ||
    typeof accept.mac !== 'string' ||
    !macEqual(accept.mac, mac(secret, 'accept', ours, peer, selfId))
  ) {
    socket.close(CLOSE_MESH_AUTH, 'mesh authentication failed');
    return undefined;
  }
  return { peerId: peer, takeOver: (handler) => inbox.takeOver(handler) };
}
