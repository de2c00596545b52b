import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { WebSocket } from 'ws';

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

function parse(data: unknown): Json | undefined {
  try {
    const value = JSON.parse(String(data)) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

function once(socket: WebSocket, timeoutMs: number): Promise<Json | undefined> {
  return new Promise((resolve) => {
    const done = (value: Json | undefined) => {
      clearTimeout(timer);
      socket.off('message', onMessage);
      socket.off('close', onClose);
      resolve(value);
    };
    const onMessage = (data: unknown, isBinary: boolean) => done(isBinary ? undefined : parse(data));
    const onClose = () => done(undefined);
    const timer = setTimeout(() => done(undefined), timeoutMs);
    socket.on('message', onMessage);
    socket.on('close', onClose);
  });
}

/** Acceptor side; resolves with the authenticated peer id, or undefined after closing the socket. */
export async function acceptPeer(
  socket: WebSocket,
  selfId: string,
  secret: string,
): Promise<string | undefined> {
  const challenge = nonce();
  socket.send(JSON.stringify({ t: 'challenge', node: selfId, nonce: challenge }));
  const auth = await once(socket, MESH_AUTH_TIMEOUT_MS);
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
  return peer;
}

/** Dialer side; resolves with the acceptor's id once both sides are proven, else undefined (socket closed). */
export async function dialPeer(
  socket: WebSocket,
  selfId: string,
  secret: string,
): Promise<string | undefined> {
  const challenge = await once(socket, MESH_AUTH_TIMEOUT_MS);
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
  const accept = await once(socket, MESH_AUTH_TIMEOUT_MS);
  if (
    accept?.t !== 'accept' ||
    typeof accept.mac !== 'string' ||
    !macEqual(accept.mac, mac(secret, 'accept', ours, peer, selfId))
  ) {
    socket.close(CLOSE_MESH_AUTH, 'mesh authentication failed');
    return undefined;
  }
  return peer;
}
