import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import {
  encodeBindingError,
  encodeBindingSuccess,
  parseBindingResponse,
  parseStunRequest,
  STUN_MAGIC_COOKIE,
  STUN_MAX_SOFTWARE_BYTES,
  type StunFamily,
} from '../../supernode/stun/codec';
import { mutate, runs } from './arbitraries';

/**
 * STUN datagrams (docs/stun.md, RFC 8489): requests and responses from random and mutated bytes
 * against an oracle written from the documentation, and the responses we build.
 */

const KNOWN = new Set([
  0x0001, 0x0006, 0x0008, 0x0009, 0x000a, 0x0014, 0x0015, 0x001c, 0x001d, 0x001e, 0x0020,
]);
const FINGERPRINT = 0x8028;
const INTEGRITY = [0x0008, 0x001c];

/** CRC-32 bit by bit (the codec uses a table): an independent check of FINGERPRINT. */
function crc32(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const byte of bytes) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const fingerprintOf = (bytes: Uint8Array) => (crc32(bytes) ^ 0x5354554e) >>> 0;

/** The outcome docs/stun.md gives for a datagram: a drop reason, or the unknown attributes to list. */
function expectedRequest(buf: Buffer): string | number[] {
  if (buf.length > 1500) return 'too_large';
  if (buf.length < 20) return 'too_short';
  if (buf[0] >> 6 !== 0) return 'not_stun';
  if (buf.readUInt32BE(4) !== STUN_MAGIC_COOKIE) return 'bad_cookie';
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0 || length !== buf.length - 20) return 'bad_length';
  if (buf.readUInt16BE(0) !== 0x0001) return 'not_binding_request';
  const unknown: number[] = [];
  let afterIntegrity = false;
  let offset = 20;
  while (offset < buf.length) {
    const type = buf.readUInt16BE(offset);
    const valueLength = buf.readUInt16BE(offset + 2);
    const next = offset + 4 + Math.ceil(valueLength / 4) * 4;
    if (next > buf.length) return 'bad_attribute';
    if (type === FINGERPRINT) {
      const last = valueLength === 4 && next === buf.length;
      if (!last || buf.readUInt32BE(offset + 4) !== fingerprintOf(buf.subarray(0, offset)))
        return 'bad_fingerprint';
    } else if (INTEGRITY.includes(type)) afterIntegrity = true;
    else if (!afterIntegrity && type < 0x8000 && !KNOWN.has(type) && !unknown.includes(type))
      unknown.push(type);
    offset = next;
  }
  return unknown;
}

type Attribute = { type: number; value: Uint8Array };

/** A STUN message from its parts, padded, with a correct FINGERPRINT when asked. */
function message(
  type: number,
  transactionId: Uint8Array,
  attributes: Attribute[],
  fingerprint: boolean,
): Buffer {
  const parts = attributes.map(({ type: t, value }) => {
    const out = Buffer.alloc(4 + Math.ceil(value.length / 4) * 4);
    out.writeUInt16BE(t, 0);
    out.writeUInt16BE(value.length, 2);
    out.set(value, 4);
    return out;
  });
  const body = Buffer.concat(parts);
  const out = Buffer.alloc(20 + body.length + (fingerprint ? 8 : 0));
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(out.length - 20, 2);
  out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  out.set(transactionId, 8);
  body.copy(out, 20);
  if (fingerprint) {
    const at = out.length - 8;
    out.writeUInt16BE(FINGERPRINT, at);
    out.writeUInt16BE(4, at + 2);
    out.writeUInt32BE(fingerprintOf(out.subarray(0, at)), at + 4);
  }
  return out;
}

const transactionId = fc.uint8Array({ minLength: 12, maxLength: 12 });
const attributeType = fc.oneof(
  fc.constantFrom(...KNOWN, FINGERPRINT, 0x8022, 0x0003, 0x0024, 0x8029, 0x7fff, 0x8000),
  fc.integer({ min: 0, max: 0xffff }),
);
const attribute = fc.record({ type: attributeType, value: fc.uint8Array({ maxLength: 24 }) });
const stunMessage = (type: fc.Arbitrary<number>) =>
  fc
    .record({
      type,
      transactionId,
      attributes: fc.array(attribute, { maxLength: 8 }),
      fingerprint: fc.boolean(),
    })
    .map((m) => message(m.type, m.transactionId, m.attributes, m.fingerprint));

const datagrams = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ minLength: 1490, maxLength: 1510 }).map((b) => Buffer.from(b)),
  stunMessage(fc.oneof(fc.constant(0x0001), fc.integer({ min: 0, max: 0xffff }))),
  stunMessage(fc.constant(0x0001)).chain((m) => mutate(m, m.length)),
);

/** The textual form WHATWG URL gives an IPv6 address: RFC 5952, like the codec's. */
const canonicalIpv6 = (address: string) => new URL(`http://[${address}]`).hostname.slice(1, -1);

/** An IPv6 address, sometimes IPv4-mapped (what a dual-stack socket reports for an IPv4 peer). */
const ipv6 = fc.oneof(
  fc.ipV6(),
  fc.ipV4().map((a) => `::ffff:${a}`),
);
const peer = fc.oneof(
  fc.record({ address: fc.ipV4(), family: fc.constant<StunFamily>('IPv4') }),
  fc.record({ address: ipv6, family: fc.constant<StunFamily>('IPv6') }),
);
const port = fc.integer({ min: 0, max: 0xffff });
const software = fc.option(
  fc
    .string({ unit: 'grapheme', maxLength: 127 })
    .filter((s) => Buffer.byteLength(s) <= STUN_MAX_SOFTWARE_BYTES),
  { nil: undefined },
);

/** What a Binding response should report for a peer: IPv4-mapped IPv6 as the IPv4 it is. */
function reported(address: string, family: StunFamily): { address: string; family: StunFamily } {
  if (family === 'IPv4') return { address, family };
  const canonical = canonicalIpv6(address);
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (!mapped) return { address: canonical, family };
  const [high, low] = [Number.parseInt(mapped[1], 16), Number.parseInt(mapped[2], 16)];
  return { address: `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`, family: 'IPv4' };
}

describe('STUN requests (fuzz)', () => {
  it('classifies any datagram as docs/stun.md says, without throwing', () => {
    fc.assert(
      fc.property(datagrams, (buf) => {
        const parsed = parseStunRequest(buf);
        const want = expectedRequest(buf);
        if (typeof want === 'string') expect(parsed).toEqual({ ok: false, reason: want });
        else {
          expect(parsed).toMatchObject({ ok: true, unknownRequired: want });
          if (parsed.ok) expect(parsed.transactionId.equals(buf.subarray(8, 20))).toBe(true);
        }
      }),
      { numRuns: runs },
    );
  });

  it('answers every accepted request with a well-formed response no more than 32/40 bytes larger', () => {
    fc.assert(
      fc.property(datagrams, peer, port, (buf, { address, family }, peerPort) => {
        const parsed = parseStunRequest(buf);
        if (!parsed.ok) return;
        const tid = Buffer.from(parsed.transactionId);
        if (parsed.unknownRequired.length > 0) {
          const reply = encodeBindingError(tid, 420, parsed.unknownRequired);
          expect(reply.length).toBeLessThanOrEqual(buf.length + 40);
          expect(reply.length).toBe(60 + 4 * Math.ceil(parsed.unknownRequired.length / 2));
          expect(reply.readUInt16BE(0)).toBe(0x0111);
          expect(parseStunRequest(reply)).toEqual({ ok: false, reason: 'not_binding_request' });
          expect(reply.readUInt32BE(reply.length - 4)).toBe(
            fingerprintOf(reply.subarray(0, reply.length - 8)),
          );
        } else {
          const reply = encodeBindingSuccess(tid, address, peerPort, family);
          expect(reply.length).toBeLessThanOrEqual(buf.length + 32);
          expect(parseBindingResponse(reply, tid)).toEqual({ ...reported(address, family), port: peerPort });
        }
      }),
      { numRuns: runs },
    );
  });
});

describe('STUN responses (fuzz)', () => {
  it('round-trips a success response for any peer, port and SOFTWARE', () => {
    fc.assert(
      fc.property(transactionId, peer, port, software, (tid, { address, family }, peerPort, text) => {
        const id = Buffer.from(tid);
        const reply = encodeBindingSuccess(id, address, peerPort, family, text);
        expect(parseBindingResponse(reply, id)).toEqual({ ...reported(address, family), port: peerPort });
        expect(reply.readUInt32BE(reply.length - 4)).toBe(fingerprintOf(reply.subarray(0, reply.length - 8)));
        // Not an answer to another transaction.
        const other = Buffer.from(id);
        other[0] ^= 1;
        expect(parseBindingResponse(reply, other)).toBeNull();
      }),
      { numRuns: runs },
    );
  });

  it('parses any response bytes without throwing; what it accepts is a real address and re-encodes', () => {
    const responses = fc.oneof(
      stunMessage(fc.oneof(fc.constant(0x0101), fc.integer({ min: 0, max: 0xffff }))),
      fc
        .tuple(transactionId, peer, port, software)
        .chain(([tid, p, pp, s]) =>
          mutate(encodeBindingSuccess(Buffer.from(tid), p.address, pp, p.family, s), 64),
        ),
      // MAPPED-ADDRESS / XOR-MAPPED-ADDRESS with any family byte and any 16 address bytes.
      fc
        .tuple(
          transactionId,
          fc.constantFrom(0x0001, 0x0020),
          fc.constantFrom(1, 2, 3),
          fc.uint8Array({ minLength: 20, maxLength: 20 }),
        )
        .map(([tid, type, familyCode, bytes]) => {
          const value = Buffer.from(bytes.subarray(0, familyCode === 1 ? 8 : 20));
          value[1] = familyCode;
          return message(0x0101, tid, [{ type, value }], true);
        }),
    );
    fc.assert(
      fc.property(responses, (buf) => {
        const tid = buf.length >= 20 ? Buffer.from(buf.subarray(8, 20)) : Buffer.alloc(12);
        const parsed = parseBindingResponse(buf, tid);
        if (!parsed) return;
        expect(parsed.family === 'IPv4' ? isIPv4(parsed.address) : isIPv6(parsed.address)).toBe(true);
        if (parsed.family === 'IPv6') expect(parsed.address).toBe(canonicalIpv6(parsed.address));
        expect(Number.isInteger(parsed.port) && parsed.port >= 0 && parsed.port <= 0xffff).toBe(true);
        // encode(decode(bytes)) reports the same peer (an IPv4-mapped address as the IPv4 it is).
        const again = parseBindingResponse(
          encodeBindingSuccess(tid, parsed.address, parsed.port, parsed.family),
          tid,
        );
        expect(again).toEqual({ ...reported(parsed.address, parsed.family), port: parsed.port });
      }),
      { numRuns: runs },
    );
  });

  it('takes any address text: a RangeError, or exactly the address net.isIP and URL read', () => {
    const unit = fc.constantFrom(...'0123456789abcdefABCDEF:.:%'.split(''));
    const text = fc.oneof(
      fc.ipV4(),
      fc.ipV4Extended(),
      fc.ipV6(),
      fc.string({ unit, maxLength: 45 }),
      fc.string({ maxLength: 10 }),
    );
    fc.assert(
      fc.property(text, fc.constantFrom<StunFamily>('IPv4', 'IPv6'), (address, family) => {
        const tid = Buffer.alloc(12, 1);
        let reply: Buffer;
        try {
          reply = encodeBindingSuccess(tid, address, 1, family);
        } catch (err) {
          expect(err).toBeInstanceOf(RangeError);
          expect(family === 'IPv4' ? isIPv4(address) : isIPv6(address)).toBe(false);
          return;
        }
        // The codec ignores an IPv6 zone ("%eth0") without checking it; net.isIP is stricter there.
        const bare = family === 'IPv6' ? address.split('%')[0] : address;
        expect(family === 'IPv4' ? isIPv4(bare) : isIPv6(bare)).toBe(true);
        expect(parseBindingResponse(reply, tid)).toEqual({ ...reported(bare, family), port: 1 });
      }),
      { numRuns: runs },
    );
  });

  // Finding: dotted quads with leading zeros were read as decimal ("010.0.0.1" as 10.0.0.1), where
  // inet_aton reads octal (8.0.0.1) and net.isIP refuses them: an ambiguous address, now refused.
  test.each([
    ['IPv4', '010.0.0.1'],
    ['IPv4', '1.2.3.04'],
    ['IPv4', '00.0.0.0'],
    ['IPv6', '::ffff:010.0.0.1'],
    ['IPv6', '5603:d72c::7.0.227.07'],
  ] as const)('regression: refuses the %s address %s with leading zeros', (family, address) => {
    expect(() => encodeBindingSuccess(Buffer.alloc(12), address, 1, family)).toThrow(RangeError);
  });

  test('regression: a single 0 octet is still fine', () => {
    const tid = Buffer.alloc(12);
    expect(parseBindingResponse(encodeBindingSuccess(tid, '10.0.0.0', 1, 'IPv4'), tid)).toMatchObject({
      address: '10.0.0.0',
    });
  });
});
