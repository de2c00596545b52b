import { createHash, createHmac } from 'node:crypto';
import {
  attributeValue,
  crc32,
  decodeErrorCode,
  decodeXorAddress,
  encodeErrorCode,
  encodeStunMessage,
  encodeXorAddress,
  findAttribute,
  formatIpAddress,
  ipAddressBytes,
  parseStunMessage,
  StunAttribute,
  StunClass,
  type StunMessage,
  stunClassOf,
  stunMessageType,
  stunMethodOf,
  verifyIntegrity,
} from '../../supernode/stun/codec';
import { hex, RFC5769_LONG_TERM, RFC5769_PASSWORD, RFC5769_REQUEST } from './rfc5769';

/** The generic message layer of the STUN codec (used by TURN): framing, attributes, integrity. */

const KNOWN = new Set<number>([0x0006, 0x0008, 0x0014, 0x0015, 0x001c, 0x0020]);

function parsed(buf: Buffer): StunMessage {
  const message = parseStunMessage(buf, KNOWN, 65_535);
  if (!message.ok) throw new Error(message.reason);
  return message;
}

describe('message type', () => {
  it.each([
    [0x001, StunClass.Request, 0x0001],
    [0x001, StunClass.Success, 0x0101],
    [0x001, StunClass.Error, 0x0111],
    [0x003, StunClass.Request, 0x0003],
    [0x003, StunClass.Success, 0x0103],
    [0x003, StunClass.Error, 0x0113],
    [0x006, StunClass.Indication, 0x0016],
    [0x007, StunClass.Indication, 0x0017],
    [0x009, StunClass.Request, 0x0009],
  ] as const)('method 0x%s class %i is type 0x%s', (method, cls, type) => {
    expect(stunMessageType(method, cls)).toBe(type);
    expect(stunMethodOf(type)).toBe(method);
    expect(stunClassOf(type)).toBe(cls);
  });

  it('round-trips every 12-bit method in every class', () => {
    for (let method = 0; method < 0x1000; method++) {
      for (const cls of [0, 1, 2, 3] as const) {
        const type = stunMessageType(method, cls);
        expect(type >> 14).toBe(0);
        expect([stunMethodOf(type), stunClassOf(type)]).toEqual([method, cls]);
      }
    }
  });
});

describe('parseStunMessage', () => {
  it('lists the attributes before MESSAGE-INTEGRITY, with where integrity and FINGERPRINT are', () => {
    const message = parsed(RFC5769_REQUEST);
    expect(message).toMatchObject({ type: 0x0001, method: 1, cls: StunClass.Request, fingerprint: true });
    expect(message.attributes.map((a) => a.type)).toEqual([0x8022, 0x0024, 0x8029, 0x0006]);
    expect(message.unknownRequired).toEqual([0x0024]);
    expect(message.integrityAt).toBe(RFC5769_REQUEST.length - 8 - 24);
    expect(message.integritySha256At).toBe(-1);
    const username = findAttribute(message, StunAttribute.Username);
    expect(username && attributeValue(message, username).toString()).toBe('evtj:h6vY');
  });

  it('takes any method and class, and drops by the same framing rules as the Binding parser', () => {
    const allocate = encodeStunMessage(0x0003, Buffer.alloc(12), [{ type: 0x0019, value: hex('11000000') }]);
    expect(parsed(allocate)).toMatchObject({ method: 3, cls: StunClass.Request });
    expect(parseStunMessage(allocate, KNOWN, allocate.length - 1)).toEqual({
      ok: false,
      reason: 'too_large',
    });
    expect(parseStunMessage(allocate.subarray(0, 19), KNOWN, 100)).toEqual({
      ok: false,
      reason: 'too_short',
    });
    const badFingerprint = Buffer.from(allocate);
    badFingerprint[badFingerprint.length - 1] ^= 1;
    expect(parseStunMessage(badFingerprint, KNOWN, 100)).toEqual({ ok: false, reason: 'bad_fingerprint' });
  });

  it('keeps the first duplicate, ignores what follows integrity, but records MESSAGE-INTEGRITY-SHA256 after it', () => {
    const message = encodeStunMessage(0x0003, Buffer.alloc(12), [
      { type: 0x0006, value: Buffer.from('first') },
      { type: 0x0006, value: Buffer.from('second') },
      { type: 0x0008, value: Buffer.alloc(20) },
      { type: 0x001c, value: Buffer.alloc(32) },
      { type: 0x7777, value: Buffer.alloc(4) },
    ]);
    const view = parsed(message);
    expect(view.attributes.map((a) => a.type)).toEqual([0x0006, 0x0006]);
    expect(view.unknownRequired).toEqual([]);
    expect(view.integrityAt).toBeGreaterThan(0);
    expect(view.integritySha256At).toBe(view.integrityAt + 24);
    const first = findAttribute(view, 0x0006);
    expect(first && attributeValue(view, first).toString()).toBe('first');
  });
});

describe('MESSAGE-INTEGRITY', () => {
  it('verifies RFC 5769 §2.1 with the short-term password, and not after a flipped bit', () => {
    const key = Buffer.from(RFC5769_PASSWORD);
    expect(verifyIntegrity(parsed(RFC5769_REQUEST), key)).toBe('sha1');
    const flipped = Buffer.from(RFC5769_REQUEST);
    flipped[30] ^= 1;
    flipped.writeUInt32BE(
      ((crc32(flipped, 0, flipped.length - 8) ^ 0x5354554e) >>> 0) as number,
      flipped.length - 4,
    );
    expect(verifyIntegrity(parsed(flipped), key)).toBeNull();
    expect(verifyIntegrity(parsed(RFC5769_REQUEST), Buffer.from('wrong'))).toBeNull();
  });

  it('verifies RFC 5769 §2.4 with the long-term key MD5(username:realm:password)', () => {
    const message = parsed(RFC5769_LONG_TERM);
    const username = attributeValue(
      message,
      findAttribute(message, StunAttribute.Username) as never,
    ).toString();
    expect(username).toBe('\u30de\u30c8\u30ea\u30c3\u30af\u30b9');
    const key = createHash('md5').update(`${username}:example.org:TheMatrIX`).digest();
    expect(verifyIntegrity(message, key)).toBe('sha1');
  });

  it('signs with HMAC-SHA1 or HMAC-SHA256 as RFC 8489 §14.5/§14.6 computes it', () => {
    const key = Buffer.from('0123456789abcdef');
    for (const integrity of ['sha1', 'sha256'] as const) {
      const message = encodeStunMessage(
        0x0103,
        Buffer.alloc(12, 7),
        [{ type: 0x0006, value: Buffer.from('user') }],
        { key, integrity },
      );
      const view = parsed(message);
      expect(verifyIntegrity(view, key)).toBe(integrity);
      expect(verifyIntegrity(view, Buffer.from('other'))).toBeNull();
      // Independently: HMAC over the message up to the attribute, length counting through it.
      const at = integrity === 'sha1' ? view.integrityAt : view.integritySha256At;
      const macBytes = integrity === 'sha1' ? 20 : 32;
      const signed = Buffer.from(message.subarray(0, at));
      signed.writeUInt16BE(at + 4 + macBytes - 20, 2);
      const mac = createHmac(integrity, key).update(signed).digest();
      expect(message.subarray(at + 4, at + 4 + macBytes)).toEqual(mac);
      expect(message.readUInt16BE(message.length - 8)).toBe(StunAttribute.Fingerprint);
    }
  });

  it('accepts MESSAGE-INTEGRITY-SHA256 truncated to 16 bytes, not to 12 or an odd length', () => {
    const key = Buffer.from('k');
    const build = (macBytes: number) => {
      const base = encodeStunMessage(0x0001, Buffer.alloc(12), [], { fingerprint: false });
      const out = Buffer.alloc(base.length + 4 + ((macBytes + 3) & ~3));
      base.copy(out);
      out.writeUInt16BE(out.length - 20, 2);
      out.writeUInt16BE(0x001c, 20);
      out.writeUInt16BE(macBytes, 22);
      const signed = Buffer.from(out.subarray(0, 20));
      signed.writeUInt16BE(4 + macBytes, 2);
      createHmac('sha256', key).update(signed).digest().copy(out, 24, 0, macBytes);
      return parsed(out);
    };
    expect(verifyIntegrity(build(16), key)).toBe('sha256');
    expect(verifyIntegrity(build(12), key)).toBeNull();
    expect(verifyIntegrity(build(18), key)).toBeNull();
  });

  it('finds no integrity in an unsigned message', () => {
    expect(
      verifyIntegrity(parsed(encodeStunMessage(0x0001, Buffer.alloc(12), [])), Buffer.alloc(1)),
    ).toBeNull();
  });
});

describe('attribute values', () => {
  it.each([
    ['192.0.2.1', 32853],
    ['2001:db8:1234:5678:11:2233:4455:6677', 32853],
    ['::ffff:198.51.100.2', 1],
  ])('XOR-encodes %s:%i and decodes it back', (address, port) => {
    const transactionId = hex('b7e7a701 bc34d686 fa87dfae');
    const message = parsed(
      encodeStunMessage(0x0101, transactionId, [
        { type: 0x0020, value: encodeXorAddress(address, port, transactionId) },
      ]),
    );
    const decoded = decodeXorAddress(message, message.attributes[0]);
    const expected = address.startsWith('::ffff:') ? address.slice(7) : address;
    expect(decoded).toMatchObject({ address: expected, port });
  });

  it('matches the RFC 5769 §2.2 XOR-MAPPED-ADDRESS bytes', () => {
    expect(encodeXorAddress('192.0.2.1', 32853, hex('b7e7a701 bc34d686 fa87dfae'))).toEqual(
      hex('0001a147 e112a643'),
    );
  });

  it('encodes and decodes ERROR-CODE', () => {
    const value = encodeErrorCode(438, 'Stale Nonce');
    expect(value.subarray(0, 4)).toEqual(hex('00000426'));
    const message = parsed(encodeStunMessage(0x0113, Buffer.alloc(12), [{ type: 0x0009, value }]));
    expect(decodeErrorCode(message, message.attributes[0])).toEqual({ code: 438, reason: 'Stale Nonce' });
    expect(() => encodeErrorCode(200, 'OK')).toThrow(RangeError);
  });

  it('refuses values and messages over 65535 bytes', () => {
    expect(() =>
      encodeStunMessage(1, Buffer.alloc(12), [{ type: 0x8000, value: Buffer.alloc(65_536) }]),
    ).toThrow(RangeError);
    expect(() => encodeStunMessage(1, Buffer.alloc(11), [])).toThrow(RangeError);
  });

  it.each([
    ['10.0.0.1', '10.0.0.1'],
    ['2001:DB8::0:1', '2001:db8::1'],
    ['::ffff:1.2.3.4', '::ffff:102:304'],
  ])('reads %s as bytes and formats them as %s', (text, canonical) => {
    const bytes = ipAddressBytes(text);
    expect(bytes && formatIpAddress(bytes)).toBe(canonical);
  });

  it.each(['1.2.3', '010.0.0.1', 'host', '1::2::3', ''])('reads no bytes from %p', (text) => {
    expect(ipAddressBytes(text)).toBeNull();
  });
});
