import { createHmac } from 'node:crypto';
import {
  crc32,
  encodeBindingError,
  encodeBindingRequest,
  encodeBindingSuccess,
  parseBindingResponse,
  parseStunRequest,
  STUN_MAGIC_COOKIE,
  type StunDropReason,
} from '../../supernode/stun/codec';
import {
  hex,
  RFC5769_IPV4_RESPONSE,
  RFC5769_IPV6_RESPONSE,
  RFC5769_PASSWORD,
  RFC5769_REQUEST,
  RFC5769_TRANSACTION_ID,
} from './rfc5769';

const TRANSACTION_ID = hex('000102030405060708090a0b');

/** A request built by hand: header plus raw attribute bytes, optional FINGERPRINT computed over it. */
function request(
  attributes: Buffer = Buffer.alloc(0),
  options: { fingerprint?: boolean; type?: number } = {},
) {
  const fingerprintBytes = options.fingerprint ? 8 : 0;
  const out = Buffer.alloc(20 + attributes.length + fingerprintBytes);
  out.writeUInt16BE(options.type ?? 0x0001, 0);
  out.writeUInt16BE(attributes.length + fingerprintBytes, 2);
  out.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  TRANSACTION_ID.copy(out, 8);
  attributes.copy(out, 20);
  if (options.fingerprint) {
    const offset = out.length - 8;
    out.writeUInt32BE(0x80280004, offset);
    out.writeUInt32BE((crc32(out, 0, offset) ^ 0x5354554e) >>> 0, offset + 4);
  }
  return out;
}

/** One TLV attribute, zero-padded to 4 bytes. */
function attribute(type: number, value: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.alloc(4 + ((value.length + 3) & ~3));
  out.writeUInt16BE(type, 0);
  out.writeUInt16BE(value.length, 2);
  value.copy(out, 4);
  return out;
}

/** Decodes a message's attributes for assertions, independently of the code under test. */
function attributesOf(message: Buffer): Array<{ type: number; value: Buffer }> {
  const found: Array<{ type: number; value: Buffer }> = [];
  for (let offset = 20; offset < message.length; ) {
    const length = message.readUInt16BE(offset + 2);
    found.push({
      type: message.readUInt16BE(offset),
      value: message.subarray(offset + 4, offset + 4 + length),
    });
    offset += 4 + ((length + 3) & ~3);
  }
  return found;
}

function expectValidFingerprint(message: Buffer): void {
  const offset = message.length - 8;
  expect(message.readUInt32BE(offset)).toBe(0x80280004);
  expect(message.readUInt32BE(offset + 4)).toBe((crc32(message, 0, offset) ^ 0x5354554e) >>> 0);
}

function expectDrop(buf: Buffer, reason: StunDropReason): void {
  expect(parseStunRequest(buf)).toEqual({ ok: false, reason });
}

describe('crc32', () => {
  it('matches the standard check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });
});

describe('RFC 5769 test vectors', () => {
  it('the transcribed samples are byte-exact (their MESSAGE-INTEGRITY verifies)', () => {
    for (const sample of [RFC5769_REQUEST, RFC5769_IPV4_RESPONSE, RFC5769_IPV6_RESPONSE]) {
      const integrityOffset = sample.length - 8 - 24;
      const signed = Buffer.from(sample.subarray(0, integrityOffset));
      signed.writeUInt16BE(integrityOffset + 24 - 20, 2);
      const hmac = createHmac('sha1', RFC5769_PASSWORD).update(signed).digest();
      expect(hmac.equals(sample.subarray(integrityOffset + 4, integrityOffset + 24))).toBe(true);
    }
  });

  it('§2.1 request: fingerprint accepted, integrity ignored, ICE PRIORITY reported as unknown', () => {
    const parsed = parseStunRequest(RFC5769_REQUEST);
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(parsed.transactionId.equals(RFC5769_TRANSACTION_ID)).toBe(true);
    // PRIORITY (0x0024) is ICE's, not RFC 8489's; a plain Binding server answers it with 420.
    expect(parsed.unknownRequired).toEqual([0x0024]);
  });

  it('§2.1 request with one flipped bit fails the fingerprint', () => {
    const corrupted = Buffer.from(RFC5769_REQUEST);
    corrupted[30] ^= 0x01; // inside SOFTWARE
    expectDrop(corrupted, 'bad_fingerprint');
  });

  it('§2.2 IPv4 response decodes to 192.0.2.1:32853', () => {
    expect(parseBindingResponse(RFC5769_IPV4_RESPONSE, RFC5769_TRANSACTION_ID)).toEqual({
      address: '192.0.2.1',
      port: 32853,
      family: 'IPv4',
    });
  });

  it('§2.3 IPv6 response decodes to 2001:db8:1234:5678:11:2233:4455:6677 port 32853', () => {
    expect(parseBindingResponse(RFC5769_IPV6_RESPONSE, RFC5769_TRANSACTION_ID)).toEqual({
      address: '2001:db8:1234:5678:11:2233:4455:6677',
      port: 32853,
      family: 'IPv6',
    });
  });

  it('our encoder produces the same XOR-MAPPED-ADDRESS and SOFTWARE as §2.2 and §2.3', () => {
    // Attribute order and padding bytes may differ (the RFC pads with spaces), so compare by attribute.
    const attributeMap = (message: Buffer) =>
      new Map(attributesOf(message).map(({ type, value }) => [type, value.toString('hex')]));
    const rfcIpv4 = attributeMap(RFC5769_IPV4_RESPONSE);
    const ourIpv4 = attributeMap(
      encodeBindingSuccess(RFC5769_TRANSACTION_ID, '192.0.2.1', 32853, 'IPv4', 'test vector'),
    );
    expect(ourIpv4.get(0x0020)).toBe('0001a147e112a643');
    expect(ourIpv4.get(0x0020)).toBe(rfcIpv4.get(0x0020));
    expect(ourIpv4.get(0x8022)).toBe(rfcIpv4.get(0x8022));

    const ourIpv6 = attributeMap(
      encodeBindingSuccess(RFC5769_TRANSACTION_ID, '2001:db8:1234:5678:11:2233:4455:6677', 32853, 'IPv6'),
    );
    expect(ourIpv6.get(0x0020)).toBe(attributeMap(RFC5769_IPV6_RESPONSE).get(0x0020));
  });

  it('responses are rejected for another transaction or a broken fingerprint', () => {
    expect(parseBindingResponse(RFC5769_IPV4_RESPONSE, TRANSACTION_ID)).toBeNull();
    const corrupted = Buffer.from(RFC5769_IPV4_RESPONSE);
    corrupted[corrupted.length - 1] ^= 0xff;
    expect(parseBindingResponse(corrupted, RFC5769_TRANSACTION_ID)).toBeNull();
  });
});

describe('Binding request round trip', () => {
  it('parses a request from encodeBindingRequest, with and without FINGERPRINT', () => {
    for (const fingerprint of [false, true]) {
      const encoded = encodeBindingRequest(TRANSACTION_ID, { fingerprint });
      expect(encoded.length).toBe(fingerprint ? 28 : 20);
      const parsed = parseStunRequest(encoded);
      expect(parsed).toEqual({ ok: true, transactionId: TRANSACTION_ID, unknownRequired: [] });
    }
  });

  it('generates a fresh random transaction id by default', () => {
    const first = encodeBindingRequest();
    const second = encodeBindingRequest();
    expect(first.subarray(8, 20).equals(second.subarray(8, 20))).toBe(false);
    expect(parseStunRequest(first).ok).toBe(true);
  });

  it('rejects a transaction id that is not 12 bytes', () => {
    expect(() => encodeBindingRequest(Buffer.alloc(11))).toThrow(RangeError);
    expect(() => encodeBindingSuccess(Buffer.alloc(13), '1.2.3.4', 1, 'IPv4')).toThrow(RangeError);
  });
});

describe('XOR-MAPPED-ADDRESS', () => {
  it('encodes IPv4 (40 bytes without SOFTWARE) and decodes it back', () => {
    const response = encodeBindingSuccess(TRANSACTION_ID, '203.0.113.7', 54321, 'IPv4');
    expect(response.length).toBe(40);
    expect(response.readUInt16BE(0)).toBe(0x0101);
    expect(response.readUInt16BE(2)).toBe(20);
    expectValidFingerprint(response);
    const [xorMapped] = attributesOf(response);
    expect(xorMapped.type).toBe(0x0020);
    // Independently XOR back: port with the cookie's top 16 bits, address with the cookie.
    expect(xorMapped.value.readUInt16BE(2) ^ 0x2112).toBe(54321);
    expect((xorMapped.value.readUInt32BE(4) ^ STUN_MAGIC_COOKIE) >>> 0).toBe(0xcb007107);
    expect(parseBindingResponse(response, TRANSACTION_ID)).toEqual({
      address: '203.0.113.7',
      port: 54321,
      family: 'IPv4',
    });
  });

  it('encodes IPv6 (52 bytes without SOFTWARE) and decodes it back', () => {
    const response = encodeBindingSuccess(TRANSACTION_ID, '2001:db8::1', 443, 'IPv6');
    expect(response.length).toBe(52);
    const [xorMapped] = attributesOf(response);
    expect(xorMapped.value[1]).toBe(0x02);
    expect(parseBindingResponse(response, TRANSACTION_ID)).toEqual({
      address: '2001:db8::1',
      port: 443,
      family: 'IPv6',
    });
  });

  it.each([
    ['::', '::'],
    ['::1', '::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['1:0:0:2:0:0:0:3', '1:0:0:2::3'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
  ])('IPv6 %s round trips as %s', (input, canonical) => {
    const response = encodeBindingSuccess(TRANSACTION_ID, input, 1, 'IPv6');
    expect(parseBindingResponse(response, TRANSACTION_ID)).toEqual({
      address: canonical,
      port: 1,
      family: 'IPv6',
    });
  });

  it('reports an IPv4-mapped IPv6 peer as IPv4', () => {
    const response = encodeBindingSuccess(TRANSACTION_ID, '::ffff:198.51.100.9', 7000, 'IPv6');
    expect(response.length).toBe(40);
    expect(parseBindingResponse(response, TRANSACTION_ID)).toEqual({
      address: '198.51.100.9',
      port: 7000,
      family: 'IPv4',
    });
  });

  it.each([
    ['IPv4', '1.2.3'],
    ['IPv4', '1.2.3.256'],
    ['IPv4', '1.2.3.4.5'],
    ['IPv4', '1..3.4'],
    ['IPv6', '1:2:3:4:5:6:7:8:9'],
    ['IPv6', '1::2::3'],
    ['IPv6', '12345::'],
    ['IPv6', '1:2:3:4:5:6:7'],
    ['IPv6', ':1::'],
    ['IPv6', '1::2:'],
    ['IPv6', 'g::1'],
  ] as const)('throws on invalid %s address %s', (family, address) => {
    expect(() => encodeBindingSuccess(TRANSACTION_ID, address, 1, family)).toThrow(RangeError);
  });

  it('adds SOFTWARE before FINGERPRINT, padded', () => {
    const response = encodeBindingSuccess(TRANSACTION_ID, '127.0.0.1', 9, 'IPv4', 'supernode');
    expect(response.length).toBe(40 + 4 + 12);
    expect(attributesOf(response).map((a) => a.type)).toEqual([0x0020, 0x8022, 0x8028]);
    expect(attributesOf(response)[1].value.toString()).toBe('supernode');
    expectValidFingerprint(response);
  });

  it('falls back to legacy MAPPED-ADDRESS when there is no XOR-MAPPED-ADDRESS', () => {
    const response = request(attribute(0x0001, hex('0001 1f90 0a000001')), {
      type: 0x0101,
      fingerprint: true,
    });
    expect(parseBindingResponse(response, TRANSACTION_ID)).toEqual({
      address: '10.0.0.1',
      port: 8080,
      family: 'IPv4',
    });
  });

  it('discards responses that are not usable success responses', () => {
    const success = encodeBindingSuccess(TRANSACTION_ID, '127.0.0.1', 9, 'IPv4');
    const asError = Buffer.from(success);
    asError.writeUInt16BE(0x0111, 0);
    expect(parseBindingResponse(asError, TRANSACTION_ID)).toBeNull();
    expect(parseBindingResponse(success.subarray(0, 30), TRANSACTION_ID)).toBeNull();
    // No address at all, an unknown comprehension-required attribute, a bad address family.
    expect(parseBindingResponse(request(Buffer.alloc(0), { type: 0x0101 }), TRANSACTION_ID)).toBeNull();
    const xorMapped = success.subarray(20, 32);
    expect(parseBindingResponse(request(xorMapped, { type: 0x0101 }), TRANSACTION_ID)).not.toBeNull();
    const unknown = request(Buffer.concat([attribute(0x0003, Buffer.alloc(4)), xorMapped]), { type: 0x0101 });
    expect(parseBindingResponse(unknown, TRANSACTION_ID)).toBeNull();
    const badFamily = request(attribute(0x0020, hex('0003 0000 00000000')), { type: 0x0101 });
    expect(parseBindingResponse(badFamily, TRANSACTION_ID)).toBeNull();
  });
});

describe('parseStunRequest drops', () => {
  const valid = () => encodeBindingRequest(TRANSACTION_ID, { fingerprint: true });

  it('too_large: anything over 1500 bytes', () => {
    expectDrop(request(attribute(0x8055, Buffer.alloc(1500 - 24 + 4))), 'too_large');
    expect(parseStunRequest(request(attribute(0x8055, Buffer.alloc(1500 - 24)))).ok).toBe(true);
  });

  it('too_short: under the 20-byte header, including empty', () => {
    expectDrop(Buffer.alloc(0), 'too_short');
    expectDrop(valid().subarray(0, 19), 'too_short');
  });

  it('not_stun: the first two bits are set', () => {
    const message = valid();
    message[0] |= 0x40;
    expectDrop(message, 'not_stun');
  });

  it('bad_cookie: wrong magic cookie (including RFC 3489 style requests)', () => {
    const message = valid();
    message.writeUInt32BE(0x12345678, 4);
    expectDrop(message, 'bad_cookie');
  });

  it('bad_length: length not a multiple of 4, or not matching the datagram', () => {
    const unaligned = valid();
    unaligned.writeUInt16BE(6, 2);
    expectDrop(Buffer.concat([unaligned.subarray(0, 20), Buffer.alloc(6)]), 'bad_length');
    expectDrop(Buffer.concat([valid(), Buffer.alloc(4)]), 'bad_length');
    expectDrop(valid().subarray(0, 24), 'bad_length');
  });

  it.each([
    ['a success response', 0x0101],
    ['an error response', 0x0111],
    ['a Binding indication', 0x0011],
    ['a request for another method (Allocate)', 0x0003],
  ])('not_binding_request: %s', (_name, type) => {
    expectDrop(request(Buffer.alloc(0), { type }), 'not_binding_request');
  });

  it('bad_attribute: an attribute that overruns the message', () => {
    const overrun = attribute(0x8055, Buffer.alloc(4));
    overrun.writeUInt16BE(5, 2); // padded to 8, but only 4 bytes of value follow
    expectDrop(request(overrun), 'bad_attribute');
  });

  it('bad_fingerprint: wrong CRC, not last, or wrong length', () => {
    const wrongCrc = valid();
    wrongCrc[wrongCrc.length - 1] ^= 0x01;
    expectDrop(wrongCrc, 'bad_fingerprint');

    const notLast = request(Buffer.concat([valid().subarray(20), attribute(0x8022, Buffer.from('x'))]));
    expectDrop(notLast, 'bad_fingerprint');

    expectDrop(request(attribute(0x8028, Buffer.alloc(8))), 'bad_fingerprint');
  });
});

describe('unknown attributes and 420', () => {
  it('ignores known and comprehension-optional attributes', () => {
    const attributes = Buffer.concat([
      attribute(0x0006, Buffer.from('user')),
      attribute(0x8022, Buffer.from('client')),
      attribute(0x8055, Buffer.alloc(3)),
    ]);
    expect(parseStunRequest(request(attributes, { fingerprint: true }))).toMatchObject({
      ok: true,
      unknownRequired: [],
    });
  });

  it('collects distinct unknown comprehension-required attributes in order', () => {
    const attributes = Buffer.concat([
      attribute(0x0003, Buffer.alloc(4)), // RFC 5780 CHANGE-REQUEST
      attribute(0x7fff),
      attribute(0x0003, Buffer.alloc(4)),
    ]);
    expect(parseStunRequest(request(attributes))).toMatchObject({
      ok: true,
      unknownRequired: [0x0003, 0x7fff],
    });
  });

  it('ignores whatever follows MESSAGE-INTEGRITY, as RFC 8489 requires', () => {
    const attributes = Buffer.concat([
      attribute(0x0008, Buffer.alloc(20)),
      attribute(0x0003, Buffer.alloc(4)),
    ]);
    expect(parseStunRequest(request(attributes, { fingerprint: true }))).toMatchObject({
      ok: true,
      unknownRequired: [],
    });
  });

  it('encodes a 420 with ERROR-CODE, UNKNOWN-ATTRIBUTES and FINGERPRINT', () => {
    const response = encodeBindingError(TRANSACTION_ID, 420, [0x0003, 0x7fff, 0x0024]);
    expect(response.readUInt16BE(0)).toBe(0x0111);
    expect(response.readUInt16BE(2)).toBe(response.length - 20);
    expect(response.subarray(8, 20).equals(TRANSACTION_ID)).toBe(true);
    // 60 + 4 * ceil(n / 2) bytes, as docs/stun.md says.
    expect(response.length).toBe(60 + 4 * 2);
    const [errorCode, unknownAttributes, fingerprint] = attributesOf(response);
    expect(errorCode.type).toBe(0x0009);
    expect(errorCode.value[2] & 0x07).toBe(4);
    expect(errorCode.value[3]).toBe(20);
    expect(errorCode.value.subarray(4).toString()).toBe('Unknown Attribute');
    expect(unknownAttributes.type).toBe(0x000a);
    expect(unknownAttributes.value.toString('hex')).toBe('00037fff0024');
    expect(fingerprint.type).toBe(0x8028);
    expectValidFingerprint(response);
    // A client must not mistake it for a success response.
    expect(parseBindingResponse(response, TRANSACTION_ID)).toBeNull();
  });

  it('a single unknown attribute gives a 64-byte 420', () => {
    expect(encodeBindingError(TRANSACTION_ID, 420, [0x0003]).length).toBe(64);
    expect(() => encodeBindingError(TRANSACTION_ID, 420, [])).toThrow(RangeError);
  });

  it('SOFTWARE goes before FINGERPRINT in a 420 and is length-checked', () => {
    const response = encodeBindingError(TRANSACTION_ID, 420, [0x0003], 'sn');
    expect(attributesOf(response).map((a) => a.type)).toEqual([0x0009, 0x000a, 0x8022, 0x8028]);
    expectValidFingerprint(response);
    expect(() => encodeBindingError(TRANSACTION_ID, 420, [3], 'x'.repeat(764))).toThrow(RangeError);
  });
});
