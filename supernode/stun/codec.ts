import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * STUN (RFC 8489) wire format: pure functions, no I/O. The one message codec of the project: the
 * Binding server uses the Binding functions below, TURN (supernode/turn/) the generic message layer
 * (parseStunMessage, encodeStunMessage, integrity, XOR addresses) on the same framing code.
 *
 * The Binding server never authenticates: MESSAGE-INTEGRITY(-SHA256) is accepted and ignored because a
 * Binding response reveals nothing but the sender's own transport address, so there is nothing to protect.
 */

export const STUN_HEADER_BYTES = 20;
export const STUN_MAGIC_COOKIE = 0x2112a442;
/** Largest datagram we parse: one Ethernet MTU. Anything bigger is not a plausible Binding request. */
export const STUN_MAX_DATAGRAM_BYTES = 1500;

export const StunMessageType = {
  BindingRequest: 0x0001,
  BindingSuccess: 0x0101,
  BindingError: 0x0111,
} as const;

export const StunAttribute = {
  MappedAddress: 0x0001,
  Username: 0x0006,
  MessageIntegrity: 0x0008,
  ErrorCode: 0x0009,
  UnknownAttributes: 0x000a,
  Realm: 0x0014,
  Nonce: 0x0015,
  MessageIntegritySha256: 0x001c,
  PasswordAlgorithm: 0x001d,
  UserHash: 0x001e,
  XorMappedAddress: 0x0020,
  Software: 0x8022,
  Fingerprint: 0x8028,
} as const;

/**
 * The comprehension-required attributes (type < 0x8000) we "understand": exactly those RFC 8489 itself
 * defines (§14). Understanding them means ignoring them, which is right for an unauthenticated Binding
 * server. Anything else in that range (e.g. RFC 5780 CHANGE-REQUEST, ICE PRIORITY) gets a 420.
 */
export const KNOWN_REQUIRED_ATTRIBUTES: ReadonlySet<number> = new Set([
  StunAttribute.MappedAddress,
  StunAttribute.Username,
  StunAttribute.MessageIntegrity,
  StunAttribute.ErrorCode,
  StunAttribute.UnknownAttributes,
  StunAttribute.Realm,
  StunAttribute.Nonce,
  StunAttribute.MessageIntegritySha256,
  StunAttribute.PasswordAlgorithm,
  StunAttribute.UserHash,
  StunAttribute.XorMappedAddress,
]);

const FINGERPRINT_XOR = 0x5354554e;
const TRANSACTION_ID_BYTES = 12;
/** RFC 8489 §14.14: SOFTWARE is fewer than 128 characters, at most 763 bytes of UTF-8. */
export const STUN_MAX_SOFTWARE_BYTES = 763;
const FAMILY_IPV4 = 0x01;
const FAMILY_IPV6 = 0x02;
const UNKNOWN_ATTRIBUTE_REASON = 'Unknown Attribute';

export type StunDropReason =
  | 'too_large'
  | 'too_short'
  | 'not_stun'
  | 'bad_cookie'
  | 'bad_length'
  | 'not_binding_request'
  | 'bad_attribute'
  | 'bad_fingerprint';

export type StunDrop = { readonly ok: false; readonly reason: StunDropReason };
export type StunRequest = {
  ok: true;
  /** A view into the parsed buffer (not a copy): use it before the buffer is reused. */
  transactionId: Buffer;
  /** Distinct unknown comprehension-required attribute types, in order of appearance. */
  unknownRequired: number[];
};

export type StunFamily = 'IPv4' | 'IPv6';
export type StunMappedAddress = { address: string; port: number; family: StunFamily };

// One frozen result per reason, so a flood of junk costs no allocation per datagram.
const DROPS: Readonly<Record<StunDropReason, StunDrop>> = Object.freeze({
  too_large: drop('too_large'),
  too_short: drop('too_short'),
  not_stun: drop('not_stun'),
  bad_cookie: drop('bad_cookie'),
  bad_length: drop('bad_length'),
  not_binding_request: drop('not_binding_request'),
  bad_attribute: drop('bad_attribute'),
  bad_fingerprint: drop('bad_fingerprint'),
});

function drop(reason: StunDropReason): StunDrop {
  return Object.freeze({ ok: false, reason });
}

const CRC32_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309, the zlib one) of bytes [start, end); Node 20 has no zlib.crc32. */
export function crc32(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let crc = 0xffffffff;
  for (let i = start; i < end; i++) crc = CRC32_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function padded(length: number): number {
  return (length + 3) & ~3;
}

/** Header checks shared by requests and responses (RFC 8489 §5, §6.3). */
function checkFraming(buf: Buffer): StunDropReason | null {
  if (buf.length < STUN_HEADER_BYTES) return 'too_short';
  if ((buf[0] & 0xc0) !== 0) return 'not_stun';
  if (buf.readUInt32BE(4) !== STUN_MAGIC_COOKIE) return 'bad_cookie';
  const messageLength = buf.readUInt16BE(2);
  if (messageLength % 4 !== 0 || messageLength !== buf.length - STUN_HEADER_BYTES) return 'bad_length';
  return null;
}

/** FINGERPRINT at `offset` must be the last attribute and match CRC32 of everything before it. */
function fingerprintValid(buf: Buffer, offset: number, length: number): boolean {
  if (length !== 4 || offset + 8 !== buf.length) return false;
  return (crc32(buf, 0, offset) ^ FINGERPRINT_XOR) >>> 0 === buf.readUInt32BE(offset + 4);
}

/** Where the attributes of a framed message are, as `scanAttributes` found them. */
export interface StunAttributeScan {
  /** Attributes before MESSAGE-INTEGRITY(-SHA256), in order, duplicates included. */
  attributes: StunAttributeView[];
  /** Distinct unknown comprehension-required attribute types before any integrity attribute, in order. */
  unknownRequired: number[];
  /** Offset of the first MESSAGE-INTEGRITY attribute, or -1. */
  integrityAt: number;
  /** Offset of the first MESSAGE-INTEGRITY-SHA256 attribute, or -1. */
  integritySha256At: number;
  fingerprint: boolean;
}

/** One attribute of a message: its type and where its value is (`buf.subarray(offset, offset + length)`). */
export interface StunAttributeView {
  type: number;
  offset: number;
  length: number;
}

/**
 * Walks the attributes of a framed message. Attributes after MESSAGE-INTEGRITY(-SHA256) other than
 * FINGERPRINT (and MESSAGE-INTEGRITY-SHA256 after MESSAGE-INTEGRITY) are ignored (RFC 8489 §9, §14.6),
 * so they never count as unknown; an overrun anywhere is still malformed.
 */
function scanAttributes(buf: Buffer, known: ReadonlySet<number>): StunAttributeScan | StunDropReason {
  const attributes: StunAttributeView[] = [];
  const unknownRequired: number[] = [];
  let integrityAt = -1;
  let integritySha256At = -1;
  let fingerprint = false;
  // Framing guarantees buf.length - offset is a multiple of 4, so a 4-byte attribute header always fits.
  for (let offset = STUN_HEADER_BYTES; offset < buf.length; ) {
    const type = buf.readUInt16BE(offset);
    const length = buf.readUInt16BE(offset + 2);
    const next = offset + 4 + padded(length);
    if (next > buf.length) return 'bad_attribute';
    const afterIntegrity = integrityAt !== -1 || integritySha256At !== -1;
    if (type === StunAttribute.Fingerprint) {
      if (!fingerprintValid(buf, offset, length)) return 'bad_fingerprint';
      fingerprint = true;
    } else if (type === StunAttribute.MessageIntegrity) {
      if (!afterIntegrity) integrityAt = offset;
    } else if (type === StunAttribute.MessageIntegritySha256) {
      if (integritySha256At === -1) integritySha256At = offset;
    } else if (!afterIntegrity) {
      attributes.push({ type, offset: offset + 4, length });
      if (type < 0x8000 && !known.has(type) && !unknownRequired.includes(type)) unknownRequired.push(type);
    }
    offset = next;
  }
  return { attributes, unknownRequired, integrityAt, integritySha256At, fingerprint };
}

/**
 * Validates a datagram as a Binding request. Attributes after MESSAGE-INTEGRITY(-SHA256) other than
 * FINGERPRINT are ignored (RFC 8489 §9), so they never count as unknown.
 */
export function parseStunRequest(buf: Buffer): StunRequest | StunDrop {
  if (buf.length > STUN_MAX_DATAGRAM_BYTES) return DROPS.too_large;
  const framing = checkFraming(buf);
  if (framing !== null) return DROPS[framing];
  if (buf.readUInt16BE(0) !== StunMessageType.BindingRequest) return DROPS.not_binding_request;
  const scan = scanAttributes(buf, KNOWN_REQUIRED_ATTRIBUTES);
  if (typeof scan === 'string') return DROPS[scan];
  return {
    ok: true,
    transactionId: buf.subarray(8, STUN_HEADER_BYTES),
    unknownRequired: scan.unknownRequired,
  };
}

function checkTransactionId(transactionId: Buffer): void {
  if (transactionId.length !== TRANSACTION_ID_BYTES) {
    throw new RangeError(`STUN transaction id must be ${TRANSACTION_ID_BYTES} bytes`);
  }
}

function writeHeader(out: Buffer, type: number, transactionId: Buffer): void {
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(out.length - STUN_HEADER_BYTES, 2);
  out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(out, 8);
}

/** Writes FINGERPRINT into the last 8 bytes; the header length must already count them. */
function writeFingerprint(out: Buffer): void {
  const offset = out.length - 8;
  out.writeUInt16BE(StunAttribute.Fingerprint, offset);
  out.writeUInt16BE(4, offset + 2);
  out.writeUInt32BE((crc32(out, 0, offset) ^ FINGERPRINT_XOR) >>> 0, offset + 4);
}

function softwareBytes(software: string | undefined): number {
  if (!software) return 0;
  const length = Buffer.byteLength(software, 'utf8');
  if (length > STUN_MAX_SOFTWARE_BYTES)
    throw new RangeError(`SOFTWARE must be at most ${STUN_MAX_SOFTWARE_BYTES} bytes`);
  return length;
}

/** Writes SOFTWARE at `offset` and returns the offset after it (padding is already zero). */
function writeSoftware(out: Buffer, offset: number, software: string, length: number): number {
  out.writeUInt16BE(StunAttribute.Software, offset);
  out.writeUInt16BE(length, offset + 2);
  out.write(software, offset + 4, length, 'utf8');
  return offset + 4 + padded(length);
}

/** A fresh Binding request (20 bytes, or 28 with FINGERPRINT), for clients and tests. */
export function encodeBindingRequest(
  transactionId: Buffer = randomBytes(TRANSACTION_ID_BYTES),
  options: { fingerprint?: boolean } = {},
): Buffer {
  checkTransactionId(transactionId);
  const out = Buffer.alloc(STUN_HEADER_BYTES + (options.fingerprint ? 8 : 0));
  writeHeader(out, StunMessageType.BindingRequest, transactionId);
  if (options.fingerprint) writeFingerprint(out);
  return out;
}

// Scratch space for address parsing: safe to share because encoding is synchronous.
const addressScratch = Buffer.alloc(16);

/**
 * Parses `address` into `addressScratch` and returns its length there (4 or 16), throwing a RangeError
 * for anything else. An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) comes out
 * as IPv4, because that is the address the peer actually has.
 */
function addressToScratch(address: string, family: StunFamily): 4 | 16 {
  if (family === 'IPv4') {
    if (!parseIpv4(address, addressScratch, 0)) throw new RangeError(`invalid IPv4 address ${address}`);
    return 4;
  }
  if (!parseIpv6(address, addressScratch)) throw new RangeError(`invalid IPv6 address ${address}`);
  if (!isIpv4Mapped(addressScratch)) return 16;
  addressScratch.copy(addressScratch, 0, 12, 16);
  return 4;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 0 || port > 0xffff) throw new RangeError(`invalid port ${port}`);
}

/**
 * Writes an XOR-*-ADDRESS value (RFC 8489 §14.2) for the address in `addressScratch` at `out[offset]`:
 * XOR with the cookie, and for IPv6 also the transaction id, both taken from `header` bytes 4..19.
 */
function writeXorAddressValue(
  out: Buffer,
  offset: number,
  addressBytes: 4 | 16,
  port: number,
  header: Buffer,
): void {
  out[offset] = 0;
  out[offset + 1] = addressBytes === 4 ? FAMILY_IPV4 : FAMILY_IPV6;
  out.writeUInt16BE(port ^ (STUN_MAGIC_COOKIE >>> 16), offset + 2);
  for (let i = 0; i < addressBytes; i++) out[offset + 4 + i] = addressScratch[i] ^ header[4 + i];
}

/**
 * Binding success response: XOR-MAPPED-ADDRESS, optional SOFTWARE, FINGERPRINT last.
 * An IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4 peer) is reported as IPv4,
 * because that is the address the peer actually has.
 */
export function encodeBindingSuccess(
  transactionId: Buffer,
  address: string,
  port: number,
  family: StunFamily,
  software?: string,
): Buffer {
  checkTransactionId(transactionId);
  checkPort(port);
  const addressBytes = addressToScratch(address, family);
  const softwareLength = softwareBytes(software);
  const out = Buffer.alloc(
    STUN_HEADER_BYTES + 8 + addressBytes + (softwareLength > 0 ? 4 + padded(softwareLength) : 0) + 8,
  );
  writeHeader(out, StunMessageType.BindingSuccess, transactionId);

  let offset = STUN_HEADER_BYTES;
  out.writeUInt16BE(StunAttribute.XorMappedAddress, offset);
  out.writeUInt16BE(4 + addressBytes, offset + 2);
  writeXorAddressValue(out, offset + 4, addressBytes, port, out);
  offset += 8 + addressBytes;

  if (software && softwareLength > 0) writeSoftware(out, offset, software, softwareLength);
  writeFingerprint(out);
  return out;
}

/**
 * 420 error response (RFC 8489 §6.3.1) listing the unknown comprehension-required attributes.
 * Size is 60 + 4 * ceil(n / 2) bytes (plus SOFTWARE), never more than 40 bytes above the request.
 */
export function encodeBindingError(
  transactionId: Buffer,
  code: 420,
  unknown: number[],
  software?: string,
): Buffer {
  checkTransactionId(transactionId);
  if (unknown.length === 0) throw new RangeError('a 420 response must list at least one attribute');
  const reasonBytes = Buffer.byteLength(UNKNOWN_ATTRIBUTE_REASON);
  const errorCodeBytes = 4 + padded(4 + reasonBytes);
  const unknownBytes = 4 + padded(2 * unknown.length);
  if (unknownBytes - 4 > 0xffff) throw new RangeError('too many unknown attributes');
  const softwareLength = softwareBytes(software);
  const out = Buffer.alloc(
    STUN_HEADER_BYTES +
      errorCodeBytes +
      unknownBytes +
      (softwareLength > 0 ? 4 + padded(softwareLength) : 0) +
      8,
  );
  writeHeader(out, StunMessageType.BindingError, transactionId);

  let offset = STUN_HEADER_BYTES;
  out.writeUInt16BE(StunAttribute.ErrorCode, offset);
  out.writeUInt16BE(4 + reasonBytes, offset + 2);
  out[offset + 6] = Math.floor(code / 100);
  out[offset + 7] = code % 100;
  out.write(UNKNOWN_ATTRIBUTE_REASON, offset + 8, reasonBytes, 'utf8');
  offset += errorCodeBytes;

  out.writeUInt16BE(StunAttribute.UnknownAttributes, offset);
  out.writeUInt16BE(2 * unknown.length, offset + 2);
  for (let i = 0; i < unknown.length; i++) out.writeUInt16BE(unknown[i], offset + 4 + 2 * i);
  offset += unknownBytes;

  if (software && softwareLength > 0) writeSoftware(out, offset, software, softwareLength);
  writeFingerprint(out);
  return out;
}

/**
 * Decodes a Binding success response to our transaction: XOR-MAPPED-ADDRESS, falling back to the legacy
 * MAPPED-ADDRESS. Returns null for anything else, including a bad FINGERPRINT or an unknown
 * comprehension-required attribute (RFC 8489 §6.3.3 says to discard such a response).
 */
export function parseBindingResponse(buf: Buffer, expectedTransactionId: Buffer): StunMappedAddress | null {
  if (checkFraming(buf) !== null) return null;
  if (buf.readUInt16BE(0) !== StunMessageType.BindingSuccess) return null;
  if (!buf.subarray(8, STUN_HEADER_BYTES).equals(expectedTransactionId)) return null;
  const scan = scanAttributes(buf, KNOWN_REQUIRED_ATTRIBUTES);
  if (typeof scan === 'string' || scan.unknownRequired.length > 0) return null;

  let xorMapped: StunMappedAddress | null = null;
  let mapped: StunMappedAddress | null = null;
  for (const { type, offset, length } of scan.attributes) {
    if (type === StunAttribute.XorMappedAddress) xorMapped ??= decodeAddress(buf, offset, length, true);
    else if (type === StunAttribute.MappedAddress) mapped ??= decodeAddress(buf, offset, length, false);
  }
  return xorMapped ?? mapped;
}

/** STUN message classes (RFC 8489 §5): the C1 and C0 bits of the message type. */
export const StunClass = { Request: 0, Indication: 1, Success: 2, Error: 3 } as const;
export type StunClassValue = (typeof StunClass)[keyof typeof StunClass];

/** The message type for a method and class: the 12 method bits with C1 at bit 8 and C0 at bit 4. */
export function stunMessageType(method: number, cls: StunClassValue): number {
  return (
    ((method & 0xf80) << 2) | ((method & 0x70) << 1) | (method & 0xf) | ((cls & 2) << 7) | ((cls & 1) << 4)
  );
}

export function stunMethodOf(type: number): number {
  return ((type & 0x3e00) >> 2) | ((type & 0xe0) >> 1) | (type & 0xf);
}

export function stunClassOf(type: number): StunClassValue {
  return (((type >> 7) & 2) | ((type >> 4) & 1)) as StunClassValue;
}

/** A well-framed message of any method and class. Views point into `buf`, which is not copied. */
export interface StunMessage extends StunAttributeScan {
  ok: true;
  buf: Buffer;
  type: number;
  method: number;
  cls: StunClassValue;
  transactionId: Buffer;
}

/**
 * Validates framing, attribute bounds and FINGERPRINT of any STUN message up to `maxBytes`, and lists
 * its attributes; `known` are the comprehension-required types the caller understands. The drop reasons
 * are the Binding parser's, without `not_binding_request`.
 */
export function parseStunMessage(
  buf: Buffer,
  known: ReadonlySet<number>,
  maxBytes: number,
): StunMessage | StunDrop {
  if (buf.length > maxBytes) return DROPS.too_large;
  const framing = checkFraming(buf);
  if (framing !== null) return DROPS[framing];
  const scan = scanAttributes(buf, known);
  if (typeof scan === 'string') return DROPS[scan];
  const type = buf.readUInt16BE(0);
  return {
    ok: true,
    buf,
    type,
    method: stunMethodOf(type),
    cls: stunClassOf(type),
    transactionId: buf.subarray(8, STUN_HEADER_BYTES),
    ...scan,
  };
}

/** The first attribute of `type` (RFC 8489 §14: later duplicates are ignored), or undefined. */
export function findAttribute(message: StunMessage, type: number): StunAttributeView | undefined {
  for (const attribute of message.attributes) if (attribute.type === type) return attribute;
  return undefined;
}

export function attributeValue(message: StunMessage, view: StunAttributeView): Buffer {
  return message.buf.subarray(view.offset, view.offset + view.length);
}

/** An XOR-*-ADDRESS attribute's address, or null when its family or length is wrong. */
export function decodeXorAddress(message: StunMessage, view: StunAttributeView): StunMappedAddress | null {
  return decodeAddress(message.buf, view.offset, view.length, true);
}

/** The value of an XOR-*-ADDRESS attribute (8 or 20 bytes) for a message with `transactionId`. */
export function encodeXorAddress(address: string, port: number, transactionId: Buffer): Buffer {
  checkTransactionId(transactionId);
  checkPort(port);
  const addressBytes = addressToScratch(address, address.includes(':') ? 'IPv6' : 'IPv4');
  const header = Buffer.alloc(STUN_HEADER_BYTES);
  header.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  const value = Buffer.alloc(4 + addressBytes);
  writeXorAddressValue(value, 0, addressBytes, port, header);
  return value;
}

/** ERROR-CODE value (RFC 8489 §14.8): class and number, then the reason phrase. */
export function encodeErrorCode(code: number, reason: string): Buffer {
  if (!Number.isInteger(code) || code < 300 || code > 699) throw new RangeError(`invalid error code ${code}`);
  const value = Buffer.alloc(4 + Buffer.byteLength(reason));
  value[2] = Math.floor(code / 100);
  value[3] = code % 100;
  value.write(reason, 4);
  return value;
}

/** An ERROR-CODE attribute's code and reason, or null when malformed. */
export function decodeErrorCode(
  message: StunMessage,
  view: StunAttributeView,
): { code: number; reason: string } | null {
  if (view.length < 4) return null;
  const { buf } = message;
  const number = buf[view.offset + 3];
  const code = (buf[view.offset + 2] & 0x07) * 100 + number;
  if (number > 99 || code < 300 || code > 699) return null;
  return { code, reason: attributeValue(message, view).subarray(4).toString('utf8') };
}

export type StunIntegrity = 'sha1' | 'sha256';
const SHA1_BYTES = 20;
const SHA256_BYTES = 32;

/**
 * HMAC over the message up to the integrity attribute at `at`, with the header's length field counting
 * up to the end of that attribute (RFC 8489 §14.5, §14.6), without copying the message.
 */
function integrityHmac(
  buf: Buffer,
  at: number,
  valueLength: number,
  kind: StunIntegrity,
  key: Buffer,
): Buffer {
  const header = Buffer.from(buf.subarray(0, STUN_HEADER_BYTES));
  header.writeUInt16BE(at + 4 + valueLength - STUN_HEADER_BYTES, 2);
  return createHmac(kind === 'sha1' ? 'sha1' : 'sha256', key)
    .update(header)
    .update(buf.subarray(STUN_HEADER_BYTES, at))
    .digest();
}

/**
 * Checks the message's integrity with `key`: MESSAGE-INTEGRITY-SHA256 when present (it may be truncated
 * to 16..32 bytes in steps of 4), else MESSAGE-INTEGRITY. Returns the kind verified, or null.
 */
export function verifyIntegrity(message: StunMessage, key: Buffer): StunIntegrity | null {
  const { buf } = message;
  if (message.integritySha256At !== -1) {
    const at = message.integritySha256At;
    const length = buf.readUInt16BE(at + 2);
    if (length < 16 || length > SHA256_BYTES || length % 4 !== 0) return null;
    const mac = integrityHmac(buf, at, length, 'sha256', key).subarray(0, length);
    return timingSafeEqual(mac, buf.subarray(at + 4, at + 4 + length)) ? 'sha256' : null;
  }
  if (message.integrityAt === -1) return null;
  const at = message.integrityAt;
  if (buf.readUInt16BE(at + 2) !== SHA1_BYTES) return null;
  const mac = integrityHmac(buf, at, SHA1_BYTES, 'sha1', key);
  return timingSafeEqual(mac, buf.subarray(at + 4, at + 4 + SHA1_BYTES)) ? 'sha1' : null;
}

export interface StunAttributeValue {
  type: number;
  value: Buffer;
}

export interface StunEncodeOptions {
  /** Adds MESSAGE-INTEGRITY (or -SHA256, see `integrity`) computed with this key. */
  key?: Buffer;
  integrity?: StunIntegrity;
  /** FINGERPRINT last; default true. */
  fingerprint?: boolean;
}

/** Any STUN message: the attributes in order, then integrity and FINGERPRINT as asked. */
export function encodeStunMessage(
  type: number,
  transactionId: Buffer,
  attributes: readonly StunAttributeValue[],
  options: StunEncodeOptions = {},
): Buffer {
  checkTransactionId(transactionId);
  let length = STUN_HEADER_BYTES;
  for (const { value } of attributes) {
    if (value.length > 0xffff) throw new RangeError('STUN attribute value over 65535 bytes');
    length += 4 + padded(value.length);
  }
  const integrityAt = length;
  const macBytes = options.integrity === 'sha256' ? SHA256_BYTES : SHA1_BYTES;
  if (options.key) length += 4 + macBytes;
  const fingerprint = options.fingerprint ?? true;
  if (fingerprint) length += 8;
  if (length - STUN_HEADER_BYTES > 0xffff) throw new RangeError('STUN message over 65535 bytes');

  const out = Buffer.alloc(length);
  writeHeader(out, type, transactionId);
  let offset = STUN_HEADER_BYTES;
  for (const { type: attributeType, value } of attributes) {
    out.writeUInt16BE(attributeType, offset);
    out.writeUInt16BE(value.length, offset + 2);
    value.copy(out, offset + 4);
    offset += 4 + padded(value.length);
  }
  if (options.key) {
    const kind = options.integrity ?? 'sha1';
    out.writeUInt16BE(
      kind === 'sha1' ? StunAttribute.MessageIntegrity : StunAttribute.MessageIntegritySha256,
      offset,
    );
    out.writeUInt16BE(macBytes, offset + 2);
    integrityHmac(out, integrityAt, macBytes, kind, options.key).copy(out, offset + 4);
  }
  if (fingerprint) writeFingerprint(out);
  return out;
}

/** The 4 or 16 bytes of an IP address in text (strict: no leading zeros, zone ignored), or null. */
export function ipAddressBytes(address: string): Buffer | null {
  const out = Buffer.alloc(address.includes(':') ? 16 : 4);
  const ok = out.length === 4 ? parseIpv4(address, out, 0) : parseIpv6(address, out);
  return ok ? out : null;
}

/** Canonical text of 4 or 16 address bytes (dotted quad, or RFC 5952). */
export function formatIpAddress(bytes: Buffer): string {
  return bytes.length === 4 ? `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}` : formatIpv6(bytes);
}

function decodeAddress(
  buf: Buffer,
  valueOffset: number,
  length: number,
  xor: boolean,
): StunMappedAddress | null {
  const familyCode = buf[valueOffset + 1];
  const addressBytes = familyCode === FAMILY_IPV4 ? 4 : familyCode === FAMILY_IPV6 ? 16 : 0;
  if (addressBytes === 0 || length !== 4 + addressBytes) return null;
  const port = buf.readUInt16BE(valueOffset + 2) ^ (xor ? STUN_MAGIC_COOKIE >>> 16 : 0);
  const bytes = Buffer.allocUnsafe(addressBytes);
  for (let i = 0; i < addressBytes; i++) bytes[i] = buf[valueOffset + 4 + i] ^ (xor ? buf[4 + i] : 0);
  return addressBytes === 4
    ? { address: `${bytes[0]}.${bytes[1]}.${bytes[2]}.${bytes[3]}`, port, family: 'IPv4' }
    : { address: formatIpv6(bytes), port, family: 'IPv6' };
}

/** Parses dotted-quad `text[start, end)` into 4 bytes at `out[offset]`; false if it is not one. */
function parseIpv4(text: string, out: Buffer, offset: number, start = 0, end = text.length): boolean {
  let octet = 0;
  let digits = 0;
  let index = 0;
  for (let i = start; i <= end; i++) {
    const c = i < end ? text.charCodeAt(i) : 0x2e; // a virtual trailing '.' closes the last octet
    if (c >= 0x30 && c <= 0x39) {
      // No leading zeros: "010" is 8 to inet_aton (octal) and 10 to others, so it is refused (as net.isIP does).
      if (digits > 0 && octet === 0) return false;
      octet = octet * 10 + (c - 0x30);
      if (++digits > 3 || octet > 255) return false;
    } else if (c === 0x2e) {
      if (digits === 0 || index > 3) return false;
      out[offset + index++] = octet;
      octet = 0;
      digits = 0;
    } else {
      return false;
    }
  }
  return index === 4;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Parses RFC 4291 text (with '::', an embedded dotted quad, and an ignored '%zone') into 16 bytes.
 * Written by hand because Node has no public text-to-bytes IPv6 parser.
 */
function parseIpv6(text: string, out: Buffer): boolean {
  const zone = text.indexOf('%');
  const end = zone === -1 ? text.length : zone;
  let groups = 0;
  let gapAt = -1;
  let i = 0;
  if (text.startsWith('::')) {
    gapAt = 0;
    i = 2;
  }
  while (i < end) {
    const groupStart = i;
    let value = 0;
    while (i < end && i - groupStart < 5) {
      const digit = hexValue(text.charCodeAt(i));
      if (digit === -1) break;
      value = value * 16 + digit;
      i++;
    }
    if (i < end && text.charCodeAt(i) === 0x2e) {
      // Embedded IPv4 takes the last two groups.
      if (groups > 6 || !parseIpv4(text, out, groups * 2, groupStart, end)) return false;
      groups += 2;
      i = end;
      break;
    }
    if (i === groupStart || i - groupStart > 4 || groups === 8) return false;
    out.writeUInt16BE(value, groups * 2);
    groups++;
    if (i === end) break;
    if (text.charCodeAt(i) !== 0x3a) return false;
    i++;
    if (i < end && text.charCodeAt(i) === 0x3a) {
      if (gapAt !== -1) return false;
      gapAt = groups;
      i++;
    } else if (i === end) {
      return false; // trailing single ':'
    }
  }
  if (gapAt === -1) return groups === 8;
  if (groups > 7) return false;
  // Slide the groups after '::' to the end and zero the gap.
  const tailBytes = (groups - gapAt) * 2;
  out.copyWithin(16 - tailBytes, gapAt * 2, groups * 2);
  out.fill(0, gapAt * 2, 16 - tailBytes);
  return true;
}

function isIpv4Mapped(bytes: Buffer): boolean {
  for (let i = 0; i < 10; i++) if (bytes[i] !== 0) return false;
  return bytes[10] === 0xff && bytes[11] === 0xff;
}

/** RFC 5952 canonical text: lowercase, no leading zeros, the longest (leftmost) run of 2+ zero groups as '::'. */
function formatIpv6(bytes: Buffer): string {
  let bestStart = -1;
  let bestLength = 1;
  for (let group = 0; group < 8; ) {
    if (bytes.readUInt16BE(group * 2) !== 0) {
      group++;
      continue;
    }
    const start = group;
    while (group < 8 && bytes.readUInt16BE(group * 2) === 0) group++;
    if (group - start > bestLength) {
      bestStart = start;
      bestLength = group - start;
    }
  }
  let text = '';
  for (let group = 0; group < 8; group++) {
    if (group === bestStart) {
      text += '::';
      group += bestLength - 1;
      continue;
    }
    if (text !== '' && !text.endsWith(':')) text += ':';
    text += bytes.readUInt16BE(group * 2).toString(16);
  }
  return text;
}
