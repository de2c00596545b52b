import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';

/**
 * Time-limited TURN credentials as WebRTC deployments use them with coturn's `use-auth-secret` (the
 * "TURN REST API" draft, draft-uberti-behave-turn-rest): the username is `expiry:userId` with the expiry
 * in Unix seconds, the password base64(HMAC-SHA1(secret, username)). Whoever knows the secret (the
 * supernode handing out ICE servers) mints credentials; the TURN server needs no user database.
 */

export interface TurnCredentials {
  username: string;
  credential: string;
}

/** The password for a REST API username under `secret`. */
export function turnPassword(secret: string, username: string): string {
  return createHmac('sha1', secret).update(username).digest('base64');
}

/** Credentials for `userId` valid for `ttlSec` seconds from `now` (ms). */
export function turnCredentials(
  secret: string,
  userId: string,
  ttlSec: number,
  now: number = Date.now(),
): TurnCredentials {
  if (secret.length === 0) throw new RangeError('TURN secret must not be empty');
  if (userId.length === 0) throw new RangeError('TURN user id must not be empty');
  if (!Number.isInteger(ttlSec) || ttlSec <= 0) throw new RangeError('ttlSec must be a positive integer');
  const username = `${Math.floor(now / 1000) + ttlSec}:${userId}`;
  return { username, credential: turnPassword(secret, username) };
}

/** `expiry:userId`, split; null for anything else (the user id may itself contain ':'). */
export function parseTurnUsername(username: string): { expirySec: number; userId: string } | null {
  const match = /^(\d{1,12}):(.+)$/s.exec(username);
  return match ? { expirySec: Number(match[1]), userId: match[2] } : null;
}

export type PasswordAlgorithm = 'md5' | 'sha256';

/** RFC 8489 §9.2.2 long-term key: MD5 (or SHA-256) of `username:realm:password`. */
export function longTermKey(
  username: string,
  realm: string,
  password: string,
  algorithm: PasswordAlgorithm = 'md5',
): Buffer {
  return createHash(algorithm).update(`${username}:${realm}:${password}`, 'utf8').digest();
}

/** One entry of RTCPeerConnection's `iceServers`. */
export interface IceServer {
  urls: string[];
  username?: string;
  credential?: string;
}

export interface IceServersOptions {
  /** Host name or IP address clients reach the TURN server at. */
  host: string;
  credentials: TurnCredentials;
  /** UDP and TCP port; default 3478. */
  port?: number;
  /** TLS port; the `turns:` URL is listed only when given (i.e. when TLS is configured). */
  tlsPort?: number;
  /** STUN Binding port; default `port` (the TURN server answers Binding requests too). */
  stunPort?: number;
}

/**
 * `iceServers` for `new RTCPeerConnection({ iceServers })`: the STUN URL, then TURN over UDP and TCP,
 * and TURN over TLS when a TLS port is given.
 */
export function iceServers(options: IceServersOptions): IceServer[] {
  const host = isIP(options.host) === 6 ? `[${options.host}]` : options.host;
  const port = options.port ?? 3478;
  const turn = [`turn:${host}:${port}?transport=udp`, `turn:${host}:${port}?transport=tcp`];
  if (options.tlsPort !== undefined) turn.push(`turns:${host}:${options.tlsPort}?transport=tcp`);
  return [
    { urls: [`stun:${host}:${options.stunPort ?? port}`] },
    { urls: turn, username: options.credentials.username, credential: options.credentials.credential },
  ];
}

const NONCE_TIME_HEX = 8;
const NONCE_MAC_BYTES = 12;

/**
 * Stateless nonces (as coturn's): the issue time and an HMAC of it and the client's IP address under a
 * server secret, so checking one needs no table that a flood could grow. A nonce is valid from the same
 * IP (any port, so a NAT rebinding keeps it) for `lifetimeSec`; after that the client gets 438.
 */
export class NonceIssuer {
  private readonly secret: Buffer;

  constructor(
    private readonly lifetimeSec: number,
    private readonly now: () => number,
    secret: Buffer = randomBytes(32),
  ) {
    this.secret = secret;
  }

  issue(ip: string): string {
    const issued = Math.floor(this.now() / 1000)
      .toString(16)
      .padStart(NONCE_TIME_HEX, '0');
    return issued + this.mac(issued, ip).toString('hex');
  }

  check(nonce: string, ip: string): boolean {
    if (nonce.length !== NONCE_TIME_HEX + 2 * NONCE_MAC_BYTES || !/^[0-9a-f]+$/.test(nonce)) return false;
    const issued = nonce.slice(0, NONCE_TIME_HEX);
    const age = Math.floor(this.now() / 1000) - Number.parseInt(issued, 16);
    if (age < 0 || age >= this.lifetimeSec) return false;
    return timingSafeEqual(this.mac(issued, ip), Buffer.from(nonce.slice(NONCE_TIME_HEX), 'hex'));
  }

  private mac(issued: string, ip: string): Buffer {
    return createHmac('sha256', this.secret).update(`${issued}|${ip}`).digest().subarray(0, NONCE_MAC_BYTES);
  }
}
