import { KNOWN_REQUIRED_ATTRIBUTES, STUN_MAGIC_COOKIE } from '../stun/codec';

/**
 * TURN (RFC 8656) on the STUN codec: method and attribute numbers, error reasons, ChannelData, and the
 * framing of STUN and ChannelData messages in a TCP or TLS stream. Pure functions, no I/O.
 */

export const TurnMethod = {
  Binding: 0x001,
  Allocate: 0x003,
  Refresh: 0x004,
  Send: 0x006,
  Data: 0x007,
  CreatePermission: 0x008,
  ChannelBind: 0x009,
} as const;

export const TurnAttribute = {
  ChannelNumber: 0x000c,
  Lifetime: 0x000d,
  XorPeerAddress: 0x0012,
  Data: 0x0013,
  XorRelayedAddress: 0x0016,
  RequestedAddressFamily: 0x0017,
  EvenPort: 0x0018,
  RequestedTransport: 0x0019,
  DontFragment: 0x001a,
  ReservationToken: 0x0022,
} as const;

/**
 * The comprehension-required attributes the TURN server understands: RFC 8489's and RFC 8656's, except
 * DONT-FRAGMENT (Node's dgram cannot set the DF bit, so an Allocate asking for it gets a 420, as §7.2 says
 * a server without DF support must answer).
 */
export const TURN_KNOWN_ATTRIBUTES: ReadonlySet<number> = new Set([
  ...KNOWN_REQUIRED_ATTRIBUTES,
  TurnAttribute.ChannelNumber,
  TurnAttribute.Lifetime,
  TurnAttribute.XorPeerAddress,
  TurnAttribute.Data,
  TurnAttribute.XorRelayedAddress,
  TurnAttribute.RequestedAddressFamily,
  TurnAttribute.EvenPort,
  TurnAttribute.RequestedTransport,
  TurnAttribute.ReservationToken,
]);

/** The error codes this server sends, with RFC 8656 / RFC 8489 reason phrases. */
export const TURN_ERROR_REASONS = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  420: 'Unknown Attribute',
  437: 'Allocation Mismatch',
  438: 'Stale Nonce',
  440: 'Address Family not Supported',
  441: 'Wrong Credentials',
  442: 'Unsupported Transport Protocol',
  443: 'Peer Address Family Mismatch',
  486: 'Allocation Quota Reached',
  508: 'Insufficient Capacity',
} as const;
export type TurnErrorCode = keyof typeof TURN_ERROR_REASONS;
export const TURN_ERROR_CODES = Object.keys(TURN_ERROR_REASONS).map(Number) as TurnErrorCode[];

/** REQUESTED-TRANSPORT protocol number for UDP, the only relayed transport. */
export const TRANSPORT_UDP = 17;
export const FAMILY_IPV4 = 0x01;
export const FAMILY_IPV6 = 0x02;

/**
 * Channel numbers: RFC 8656 §12 allows 0x4000-0x4FFF, RFC 5766 allowed up to 0x7FFF and coturn's clients
 * still pick from that range, so we accept it. It is exactly the ChannelData first bytes 0x40-0x7F.
 */
export const CHANNEL_MIN = 0x4000;
export const CHANNEL_MAX = 0x7fff;
export const CHANNEL_DATA_HEADER_BYTES = 4;

/** RFC 7983 demultiplexing on the first byte: 0-3 STUN, 64-127 TURN ChannelData, anything else neither. */
export function frameKind(firstByte: number): 'stun' | 'channel' | null {
  const top = firstByte >> 6;
  return top === 0 ? 'stun' : top === 1 ? 'channel' : null;
}

export type ChannelDataDropReason = 'too_short' | 'too_large' | 'not_channel_data' | 'bad_length';
export type ChannelData = { ok: true; channel: number; data: Buffer };
export type ChannelDataDrop = { readonly ok: false; readonly reason: ChannelDataDropReason };

const CHANNEL_DROPS: Readonly<Record<ChannelDataDropReason, ChannelDataDrop>> = Object.freeze({
  too_short: Object.freeze({ ok: false, reason: 'too_short' }),
  too_large: Object.freeze({ ok: false, reason: 'too_large' }),
  not_channel_data: Object.freeze({ ok: false, reason: 'not_channel_data' }),
  bad_length: Object.freeze({ ok: false, reason: 'bad_length' }),
});

/**
 * A ChannelData message (RFC 8656 §12.4). Over UDP the padding is optional and anything after the
 * declared length is ignored; the length must not exceed what is there. `data` is a view, not a copy.
 */
export function parseChannelData(buf: Buffer, maxBytes: number): ChannelData | ChannelDataDrop {
  if (buf.length > maxBytes) return CHANNEL_DROPS.too_large;
  if (buf.length < CHANNEL_DATA_HEADER_BYTES) return CHANNEL_DROPS.too_short;
  if (frameKind(buf[0]) !== 'channel') return CHANNEL_DROPS.not_channel_data;
  const length = buf.readUInt16BE(2);
  if (CHANNEL_DATA_HEADER_BYTES + length > buf.length) return CHANNEL_DROPS.bad_length;
  return {
    ok: true,
    channel: buf.readUInt16BE(0),
    data: buf.subarray(CHANNEL_DATA_HEADER_BYTES, CHANNEL_DATA_HEADER_BYTES + length),
  };
}

/**
 * The 4-byte ChannelData header, plus zero padding to a multiple of 4 when `stream` (mandatory over TCP
 * and TLS, §12.5). Returned separately so the payload can be sent without a copy (scatter send).
 */
export function channelDataHeader(channel: number, length: number): Buffer {
  if (channel < CHANNEL_MIN || channel > CHANNEL_MAX) throw new RangeError(`invalid channel ${channel}`);
  if (length > 0xffff) throw new RangeError('ChannelData over 65535 bytes');
  const header = Buffer.allocUnsafe(CHANNEL_DATA_HEADER_BYTES);
  header.writeUInt16BE(channel, 0);
  header.writeUInt16BE(length, 2);
  return header;
}

const PADDING = Buffer.alloc(3);

/** Zero bytes that pad `length` bytes of ChannelData payload to a multiple of 4. */
export function channelDataPadding(length: number): Buffer {
  return PADDING.subarray(0, (4 - (length & 3)) & 3);
}

/** One ChannelData message as a single buffer (clients and tests; the server sends header and data apart). */
export function encodeChannelData(channel: number, data: Buffer, pad = false): Buffer {
  const parts = [channelDataHeader(channel, data.length), data];
  if (pad) parts.push(channelDataPadding(data.length));
  return Buffer.concat(parts);
}

export type StreamDropReason = 'bad_framing' | 'too_large';

/**
 * Splits a TCP or TLS byte stream into STUN messages and ChannelData messages (RFC 8656 §12.5: STUN is
 * framed by its length field, ChannelData by its length plus padding to 4). A first byte that is neither,
 * a STUN length that is not a multiple of 4 or a wrong magic cookie, or a message over `maxFrameBytes`
 * is unrecoverable: the caller must close the connection. Memory held is bounded by `maxFrameBytes`
 * plus one chunk.
 */
export class TurnStreamFramer {
  private pending: Buffer = Buffer.alloc(0);

  constructor(private readonly maxFrameBytes: number) {}

  /** Feeds a chunk; calls `onFrame` for each complete message (ChannelData without its padding). */
  push(chunk: Buffer, onFrame: (frame: Buffer, kind: 'stun' | 'channel') => void): StreamDropReason | null {
    let buf = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    while (buf.length > 0) {
      const kind = frameKind(buf[0]);
      if (kind === null) return this.fail('bad_framing');
      const headerBytes = kind === 'stun' ? 20 : CHANNEL_DATA_HEADER_BYTES;
      // The length field is at bytes 2-3 of both, so 4 bytes are enough to know the frame's size.
      if (buf.length < 4) break;
      const length = buf.readUInt16BE(2);
      if (kind === 'stun' && length % 4 !== 0) return this.fail('bad_framing');
      // A wrong magic cookie is garbage (e.g. a TLS ClientHello on the TCP port): no need to wait for it.
      if (kind === 'stun' && buf.length >= 8 && buf.readUInt32BE(4) !== STUN_MAGIC_COOKIE) {
        return this.fail('bad_framing');
      }
      const frameBytes = headerBytes + length;
      const consumed = kind === 'stun' ? frameBytes : frameBytes + ((4 - (length & 3)) & 3);
      if (frameBytes > this.maxFrameBytes) return this.fail('too_large');
      if (buf.length < consumed) break;
      onFrame(buf.subarray(0, frameBytes), kind);
      buf = buf.subarray(consumed);
    }
    // Copy the remainder so a large chunk is not kept alive by a few trailing bytes.
    this.pending = buf.length === 0 ? Buffer.alloc(0) : Buffer.from(buf);
    return null;
  }

  /** Bytes waiting for the rest of their message. */
  get buffered(): number {
    return this.pending.length;
  }

  private fail(reason: StreamDropReason): StreamDropReason {
    this.pending = Buffer.alloc(0);
    return reason;
  }
}
