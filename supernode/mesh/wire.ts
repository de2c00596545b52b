import { isIP } from 'node:net';
import { type Endpoint, MAX_ENDPOINTS, USER_ID_REGEX } from '../protocol/messages';

/**
 * What one node accepts from another over a mesh link, as pure functions: the handshake messages,
 * the JSON directory and relay messages, and the binary forward frame. Peers hold the mesh secret,
 * but a bug or a mixed-version fleet must not put malformed records in front of clients, so every
 * message is checked here once and the mesh works on typed values only. Nothing here throws: a bad
 * message is `undefined`, and the mesh drops it.
 */

/** Node ids, as `--node-id` allows them. */
export const NODE_ID_REGEX = /^[A-Za-z0-9._:-]{1,64}$/;
/** Nonces are 32 random bytes, base64url. */
export const NONCE_CHARS = 43;

export type HandshakeMessage =
  | { t: 'challenge'; node: string; nonce: string }
  | { t: 'auth'; node: string; nonce: string; mac: string }
  | { t: 'accept'; mac: string };

type Json = Record<string, unknown>;

function parseObject(text: string): Json | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
  } catch {
    return undefined;
  }
}

/** One handshake message, its shape checked; the MACs and who may send what are the caller's to check. */
export function parseHandshake(text: string): HandshakeMessage | undefined {
  const m = parseObject(text);
  if (!m) return undefined;
  switch (m.t) {
    case 'challenge':
      return isNodeId(m.node) && typeof m.nonce === 'string'
        ? { t: 'challenge', node: m.node, nonce: m.nonce }
        : undefined;
    case 'auth':
      return isNodeId(m.node) &&
        typeof m.nonce === 'string' &&
        m.nonce.length === NONCE_CHARS &&
        typeof m.mac === 'string'
        ? { t: 'auth', node: m.node, nonce: m.nonce, mac: m.mac }
        : undefined;
    case 'accept':
      return typeof m.mac === 'string' ? { t: 'accept', mac: m.mac } : undefined;
    default:
      return undefined;
  }
}

/** A user's presence on one home node, as the directory's owners hold it. */
export interface DirectoryRecord {
  user: string;
  home: string;
  url: string;
  sessions: number;
  endpoints: Endpoint[];
  /** Per-home version, so a late publish never overwrites a newer one. */
  v: number;
}

export type RelayResultCode = 'unknown_recipient' | 'recipient_busy';

export type MeshMessage =
  | { t: 'hb' }
  | { t: 'pub'; r: DirectoryRecord }
  | { t: 'unpub'; user: string; home: string; v: number }
  | { t: 'lookup'; id: number; user: string }
  | { t: 'found'; id: number; records: DirectoryRecord[] }
  | { t: 'relay_r'; session: number; msgId: number; delivered: number }
  | { t: 'relay_r'; session: number; msgId: number; code: RelayResultCode; user?: string };

/**
 * One JSON mesh message, or undefined when it is not one this node understands (dropped). Records
 * come back as fresh objects holding only their fields, so nothing else a peer put in them is kept
 * or served to clients.
 */
export function parseMeshMessage(text: string): MeshMessage | undefined {
  const m = parseObject(text);
  if (!m) return undefined;
  switch (m.t) {
    case 'hb':
      return { t: 'hb' };
    case 'pub': {
      const r = toRecord(m.r);
      return r && { t: 'pub', r };
    }
    case 'unpub':
      return isUserId(m.user) && isNodeId(m.home) && Number.isFinite(m.v)
        ? { t: 'unpub', user: m.user, home: m.home, v: m.v as number }
        : undefined;
    case 'lookup':
      return isRequestId(m.id) && isUserId(m.user) ? { t: 'lookup', id: m.id, user: m.user } : undefined;
    case 'found': {
      if (!isRequestId(m.id)) return undefined;
      // A malformed record is dropped, not the whole answer: the others are still true.
      const records: DirectoryRecord[] = [];
      if (Array.isArray(m.records)) {
        for (const item of m.records) {
          const r = toRecord(item);
          if (r) records.push(r);
        }
      }
      return { t: 'found', id: m.id, records };
    }
    case 'relay_r': {
      if (!isUint32(m.session) || !isUint32(m.msgId)) return undefined;
      // The home acks only a delivery to at least one session (none is an error code), so any
      // other count would reach the client as a meaningless ack.
      if (m.delivered !== undefined)
        return Number.isSafeInteger(m.delivered) && (m.delivered as number) >= 1
          ? { t: 'relay_r', session: m.session, msgId: m.msgId, delivered: m.delivered as number }
          : undefined;
      if (m.code !== 'unknown_recipient' && m.code !== 'recipient_busy') return undefined;
      return isUserId(m.user)
        ? { t: 'relay_r', session: m.session, msgId: m.msgId, code: m.code, user: m.user }
        : { t: 'relay_r', session: m.session, msgId: m.msgId, code: m.code };
    }
    default:
      return undefined;
  }
}

/**
 * A directory record as the client protocol allows its parts (lookups serve them to clients): a
 * user id, a node id, at least one session, at most MAX_ENDPOINTS valid endpoints.
 */
function toRecord(value: unknown): DirectoryRecord | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const r = value as Json;
  if (
    !isUserId(r.user) ||
    !isNodeId(r.home) ||
    typeof r.url !== 'string' ||
    !Number.isSafeInteger(r.sessions) ||
    (r.sessions as number) < 1 ||
    !Array.isArray(r.endpoints) ||
    r.endpoints.length > MAX_ENDPOINTS ||
    !Number.isFinite(r.v)
  )
    return undefined;
  const endpoints: Endpoint[] = [];
  for (const item of r.endpoints) {
    const endpoint = toEndpoint(item);
    if (!endpoint) return undefined;
    endpoints.push(endpoint);
  }
  return {
    user: r.user,
    home: r.home,
    url: r.url,
    sessions: r.sessions as number,
    endpoints,
    v: r.v as number,
  };
}

/** The rules of docs/protocol.md#endpoint. */
function toEndpoint(value: unknown): Endpoint | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const e = value as Json;
  const { address, port, kind } = e;
  if (
    typeof address !== 'string' ||
    address.length < 2 ||
    address.length > 45 ||
    isIP(address) === 0 ||
    !Number.isInteger(port) ||
    (port as number) < 1 ||
    (port as number) > 65535
  )
    return undefined;
  if (kind === undefined) return { address, port: port as number };
  return kind === 'host' || kind === 'srflx' || kind === 'relay'
    ? { address, port: port as number, kind }
    : undefined;
}

function isUserId(value: unknown): value is string {
  return typeof value === 'string' && USER_ID_REGEX.test(value);
}

function isNodeId(value: unknown): value is string {
  return typeof value === 'string' && NODE_ID_REGEX.test(value);
}

function isUint32(value: unknown): value is number {
  return Number.isInteger(value) && (value as number) >= 0 && (value as number) <= 0xffffffff;
}

function isRequestId(value: unknown): value is number {
  return Number.isSafeInteger(value) && (value as number) >= 0;
}

/**
 * Relay across nodes, one hop to the recipient's home:
 *
 *   0       kind        0x03
 *   1       flags       the sender's relay frame flags (bit 0: ack)
 *   2..5    msgId       uint32 big-endian
 *   6..9    session     uint32: the sender's session serial on the origin node, for the result
 *   10      fromLength  1..128, then the sender's user id
 *   ..      toLength    1..128, then the recipient's user id
 *   ...     payload     the rest
 */
export const FRAME_FORWARD = 0x03;
const MAX_ID_BYTES = 128;

export interface ForwardFrame {
  flags: number;
  msgId: number;
  session: number;
  from: string;
  to: string;
  payloadOffset: number;
}

/** Builds a forward frame around `payload` (copied once); the ids must be valid user ids. */
export function encodeForwardFrame(
  flags: number,
  msgId: number,
  session: number,
  from: string,
  to: string,
  payload: Uint8Array,
): Buffer {
  const fromLength = Buffer.byteLength(from, 'latin1');
  const toLength = Buffer.byteLength(to, 'latin1');
  const frame = Buffer.allocUnsafe(12 + fromLength + toLength + payload.length);
  frame[0] = FRAME_FORWARD;
  frame[1] = flags;
  frame.writeUInt32BE(msgId >>> 0, 2);
  frame.writeUInt32BE(session >>> 0, 6);
  frame[10] = fromLength;
  frame.write(from, 11, 'latin1');
  frame[11 + fromLength] = toLength;
  frame.write(to, 12 + fromLength, 'latin1');
  frame.set(payload, 12 + fromLength + toLength);
  return frame;
}

/**
 * A forward frame, or undefined. Both ids must be user ids (1-128 printable ASCII): the home node
 * puts `from` into the deliver frame its client reads, and a client refuses a deliver frame whose
 * sender id is not one.
 */
export function parseForwardFrame(data: Buffer): ForwardFrame | undefined {
  if (data.length < 14 || data[0] !== FRAME_FORWARD) return undefined;
  const fromLength = data[10];
  if (fromLength === 0 || fromLength > MAX_ID_BYTES || 12 + fromLength > data.length) return undefined;
  const toLength = data[11 + fromLength];
  const payloadOffset = 12 + fromLength + toLength;
  if (toLength === 0 || toLength > MAX_ID_BYTES || payloadOffset > data.length) return undefined;
  if (!printable(data, 11, 11 + fromLength) || !printable(data, 12 + fromLength, payloadOffset))
    return undefined;
  return {
    flags: data[1],
    msgId: data.readUInt32BE(2),
    session: data.readUInt32BE(6),
    from: data.toString('latin1', 11, 11 + fromLength),
    to: data.toString('latin1', 12 + fromLength, payloadOffset),
    payloadOffset,
  };
}

function printable(data: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (data[i] < 0x21 || data[i] > 0x7e) return false;
  return true;
}
