import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import fc from 'fast-check';
import {
  attributeValue,
  // Table-driven; test/fuzz/stun.test.ts checks FINGERPRINT against a bit-by-bit CRC-32.
  crc32,
  decodeXorAddress,
  encodeStunMessage,
  encodeXorAddress,
  parseStunMessage,
  STUN_MAGIC_COOKIE,
  type StunAttributeValue,
  stunMessageType,
  verifyIntegrity,
} from '../../supernode/stun/codec';
import { TurnClient } from '../../supernode/turn/client';
import {
  encodeChannelData,
  parseChannelData,
  TURN_KNOWN_ATTRIBUTES,
  TurnAttribute,
  TurnMethod,
  TurnStreamFramer,
} from '../../supernode/turn/codec';
import { longTermKey, turnCredentials } from '../../supernode/turn/credentials';
import { TurnServer } from '../../supernode/turn/server';
import { relayPortRange, sleep } from '../turn/helpers';
import { mutate, runs } from './arbitraries';

/**
 * TURN messages (docs/turn.md, RFC 8656 on RFC 8489): the generic STUN parser against an oracle written
 * from the framing rules, integrity, XOR addresses, ChannelData and the TCP framing; then a live server
 * fed hostile datagrams and streams must neither throw nor stop serving.
 */

const FINGERPRINT = 0x8028;
const MAX = 4096;

type Expected =
  | string
  | { types: number[]; unknown: number[]; integrityAt: number; sha256At: number; fingerprint: boolean };

/** What the framing rules (RFC 8489 §5, §14) say a buffer is. */
function expected(buf: Buffer): Expected {
  if (buf.length > MAX) return 'too_large';
  if (buf.length < 20) return 'too_short';
  if (buf[0] >> 6 !== 0) return 'not_stun';
  if (buf.readUInt32BE(4) !== STUN_MAGIC_COOKIE) return 'bad_cookie';
  const length = buf.readUInt16BE(2);
  if (length % 4 !== 0 || length !== buf.length - 20) return 'bad_length';
  const result = {
    types: [] as number[],
    unknown: [] as number[],
    integrityAt: -1,
    sha256At: -1,
    fingerprint: false,
  };
  for (let offset = 20; offset < buf.length; ) {
    const type = buf.readUInt16BE(offset);
    const valueLength = buf.readUInt16BE(offset + 2);
    const next = offset + 4 + Math.ceil(valueLength / 4) * 4;
    if (next > buf.length) return 'bad_attribute';
    const signed = result.integrityAt !== -1 || result.sha256At !== -1;
    if (type === FINGERPRINT) {
      const ok = valueLength === 4 && next === buf.length;
      if (!ok || buf.readUInt32BE(offset + 4) !== (crc32(buf, 0, offset) ^ 0x5354554e) >>> 0)
        return 'bad_fingerprint';
      result.fingerprint = true;
    } else if (type === 0x0008) {
      if (!signed) result.integrityAt = offset;
    } else if (type === 0x001c) {
      if (result.sha256At === -1) result.sha256At = offset;
    } else if (!signed) {
      result.types.push(type);
      if (type < 0x8000 && !TURN_KNOWN_ATTRIBUTES.has(type) && !result.unknown.includes(type))
        result.unknown.push(type);
    }
    offset = next;
  }
  return result;
}

const transactionId = fc.uint8Array({ minLength: 12, maxLength: 12 }).map((b) => Buffer.from(b));
const turnType = fc.constantFrom(
  ...Object.values(TurnAttribute),
  0x0006,
  0x0014,
  0x0015,
  0x0020,
  0x8022,
  0x8028,
);
const attribute = fc.record({
  type: fc.oneof(turnType, fc.integer({ min: 0, max: 0xffff })),
  value: fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
});
const messageType = fc.oneof(
  fc.constantFrom(0x0003, 0x0004, 0x0008, 0x0009, 0x0016, 0x0017, 0x0001, 0x0103, 0x0113),
  fc.integer({ min: 0, max: 0x3fff }),
);
const key = fc.uint8Array({ minLength: 1, maxLength: 32 }).map((b) => Buffer.from(b));
const signing = fc.option(
  fc.record({ key, integrity: fc.constantFrom('sha1' as const, 'sha256' as const) }),
  {
    nil: undefined,
  },
);
const message = fc
  .record({
    type: messageType,
    transactionId,
    attributes: fc.array(attribute, { maxLength: 8 }),
    signing,
    fingerprint: fc.boolean(),
  })
  .map((m) =>
    encodeStunMessage(m.type, m.transactionId, m.attributes, {
      key: m.signing?.key,
      integrity: m.signing?.integrity,
      fingerprint: m.fingerprint,
    }),
  );
const datagrams = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ minLength: MAX - 8, maxLength: MAX + 8 }).map((b) => Buffer.from(b)),
  message,
  message.chain((m) => mutate(m, m.length)),
);

describe('TURN messages (fuzz)', () => {
  it('classifies any datagram as the framing rules say, without throwing', () => {
    fc.assert(
      fc.property(datagrams, (buf) => {
        const parsed = parseStunMessage(buf, TURN_KNOWN_ATTRIBUTES, MAX);
        const want = expected(buf);
        if (typeof want === 'string') {
          expect(parsed).toEqual({ ok: false, reason: want });
          return;
        }
        if (!parsed.ok) throw new Error(`dropped ${parsed.reason}, expected a message`);
        expect(parsed.attributes.map((a) => a.type)).toEqual(want.types);
        expect(parsed.unknownRequired).toEqual(want.unknown);
        expect([parsed.integrityAt, parsed.integritySha256At, parsed.fingerprint]).toEqual([
          want.integrityAt,
          want.sha256At,
          want.fingerprint,
        ]);
        expect(parsed.transactionId.equals(buf.subarray(8, 20))).toBe(true);
      }),
      { numRuns: runs },
    );
  });

  it('re-encodes what it accepts to the same attributes', () => {
    fc.assert(
      fc.property(datagrams, (buf) => {
        const parsed = parseStunMessage(buf, TURN_KNOWN_ATTRIBUTES, MAX);
        if (!parsed.ok) return;
        const attributes: StunAttributeValue[] = parsed.attributes.map((view) => ({
          type: view.type,
          value: Buffer.from(attributeValue(parsed, view)),
        }));
        const again = parseStunMessage(
          encodeStunMessage(parsed.type, Buffer.from(parsed.transactionId), attributes),
          TURN_KNOWN_ATTRIBUTES,
          65_535,
        );
        if (!again.ok) throw new Error(`re-encoded message dropped: ${again.reason}`);
        expect(
          again.attributes.map((view) => [view.type, attributeValue(again, view).toString('hex')]),
        ).toEqual(attributes.map(({ type, value }) => [type, value.toString('hex')]));
      }),
      { numRuns: runs },
    );
  });

  it('verifies a signed message with its key only, and no message with one changed byte', () => {
    fc.assert(
      fc.property(
        messageType,
        transactionId,
        fc.array(
          attribute.filter((a) => a.type !== 0x0008 && a.type !== 0x001c && a.type !== FINGERPRINT),
          {
            maxLength: 6,
          },
        ),
        key,
        fc.constantFrom('sha1' as const, 'sha256' as const),
        fc.nat(),
        fc.integer({ min: 1, max: 255 }),
        (type, id, attributes, secret, integrity, at, flip) => {
          const signed = encodeStunMessage(type, id, attributes, {
            key: secret,
            integrity,
            fingerprint: false,
          });
          const parsed = parseStunMessage(signed, TURN_KNOWN_ATTRIBUTES, 65_535);
          if (!parsed.ok) throw new Error(parsed.reason);
          expect(verifyIntegrity(parsed, secret)).toBe(integrity);
          expect(verifyIntegrity(parsed, Buffer.concat([secret, Buffer.from([1])]))).toBeNull();
          const tampered = Buffer.from(signed);
          tampered[at % signed.length] ^= flip;
          const again = parseStunMessage(tampered, TURN_KNOWN_ATTRIBUTES, 65_535);
          if (again.ok) expect(verifyIntegrity(again, secret)).toBeNull();
        },
      ),
      { numRuns: runs },
    );
  });

  it('round-trips XOR-PEER-ADDRESS for any IPv4 or IPv6 address, port and transaction', () => {
    const canonical = (address: string) =>
      address.includes(':') ? new URL(`http://[${address}]`).hostname.slice(1, -1) : address;
    fc.assert(
      fc.property(
        fc.oneof(fc.ipV4(), fc.ipV6()),
        fc.integer({ min: 0, max: 0xffff }),
        transactionId,
        (address, port, id) => {
          const buf = encodeStunMessage(stunMessageType(TurnMethod.Send, 1), id, [
            { type: TurnAttribute.XorPeerAddress, value: encodeXorAddress(address, port, id) },
          ]);
          const parsed = parseStunMessage(buf, TURN_KNOWN_ATTRIBUTES, MAX);
          if (!parsed.ok) throw new Error(parsed.reason);
          const decoded = decodeXorAddress(parsed, parsed.attributes[0]);
          const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical(address));
          const want = mapped
            ? [Number.parseInt(mapped[1], 16), Number.parseInt(mapped[2], 16)]
                .flatMap((g) => [g >> 8, g & 255])
                .join('.')
            : canonical(address);
          expect(decoded).toMatchObject({ address: want, port });
        },
      ),
      { numRuns: runs },
    );
  });
});

describe('ChannelData (fuzz)', () => {
  it('parses any bytes without throwing, accepting exactly well-formed ChannelData', () => {
    const frames = fc.oneof(
      fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
      fc
        .tuple(fc.integer({ min: 0x4000, max: 0x7fff }), fc.uint8Array({ maxLength: 40 }), fc.boolean())
        .chain(([channel, data, pad]) => mutate(encodeChannelData(channel, Buffer.from(data), pad), 8)),
    );
    fc.assert(
      fc.property(frames, (buf) => {
        const parsed = parseChannelData(buf, 64);
        if (buf.length > 64) expect(parsed).toEqual({ ok: false, reason: 'too_large' });
        else if (buf.length < 4) expect(parsed).toEqual({ ok: false, reason: 'too_short' });
        else if (buf[0] >> 6 !== 1) expect(parsed).toEqual({ ok: false, reason: 'not_channel_data' });
        else if (4 + buf.readUInt16BE(2) > buf.length)
          expect(parsed).toEqual({ ok: false, reason: 'bad_length' });
        else {
          expect(parsed).toMatchObject({ ok: true, channel: buf.readUInt16BE(0) });
          if (parsed.ok) expect(parsed.data).toEqual(buf.subarray(4, 4 + buf.readUInt16BE(2)));
        }
      }),
      { numRuns: runs },
    );
  });

  it('reassembles any sequence of STUN and ChannelData messages however the stream is cut', () => {
    const frame = fc.oneof(
      fc
        .tuple(fc.integer({ min: 0x4000, max: 0x7fff }), fc.uint8Array({ maxLength: 30 }))
        .map(([channel, data]) => ({
          kind: 'channel' as const,
          bytes: encodeChannelData(channel, Buffer.from(data), true),
          body: encodeChannelData(channel, Buffer.from(data)),
        })),
      message.map((bytes) => ({ kind: 'stun' as const, bytes, body: bytes })),
    );
    fc.assert(
      fc.property(fc.array(frame, { maxLength: 8 }), fc.array(fc.nat(), { maxLength: 10 }), (sent, cuts) => {
        const stream = Buffer.concat(sent.map((f) => f.bytes));
        const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
        const framer = new TurnStreamFramer(65_535 + 20);
        const got: Array<{ kind: string; body: string }> = [];
        let from = 0;
        for (const to of [...points, stream.length]) {
          const failure = framer.push(stream.subarray(from, to), (f, kind) =>
            got.push({ kind, body: f.toString('hex') }),
          );
          expect(failure).toBeNull();
          from = to;
        }
        expect(got).toEqual(sent.map((f) => ({ kind: f.kind, body: f.body.toString('hex') })));
        expect(framer.buffered).toBe(0);
      }),
      { numRuns: runs },
    );
  });

  it('takes garbage without throwing: frames, or a typed failure, never more held than the limit', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 80 }), { maxLength: 8 }), (chunks) => {
        const framer = new TurnStreamFramer(128);
        for (const chunk of chunks) {
          const failure = framer.push(Buffer.from(chunk), (f) => expect(f.length).toBeLessThanOrEqual(128));
          if (failure !== null) {
            expect(['bad_framing', 'too_large']).toContain(failure);
            return;
          }
          expect(framer.buffered).toBeLessThan(128 + 4);
        }
      }),
      { numRuns: runs },
    );
  });
});

describe('TurnServer under hostile input (fuzz)', () => {
  const secret = 'fuzz-secret';
  const realm = 'fuzz';
  let server: TurnServer;
  let port: number;
  let sources: dgram.Socket[];

  beforeAll(async () => {
    server = new TurnServer({
      host: '127.0.0.1',
      port: 0,
      realm,
      secrets: [secret],
      ...relayPortRange(32),
      maxAllocations: 8,
      maxAllocationsPerUser: 4,
      allowPeers: ['127.0.0.1'],
      tcpIdleTimeoutMs: 2000,
    });
    ({ port } = await server.start());
    // Real sockets as sources, so replies go somewhere that exists.
    sources = await Promise.all(
      [0, 1, 2].map(
        () =>
          new Promise<dgram.Socket>((resolve) => {
            const socket = dgram.createSocket('udp4');
            socket.bind(0, '127.0.0.1', () => resolve(socket));
          }),
      ),
    );
  });

  afterAll(async () => {
    await server.close();
    for (const socket of sources) socket.close();
  });

  /** TURN attributes, mostly well-formed, for the transaction id they are encoded in. */
  const u32 = (n: number) => Buffer.from([n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255]);
  const turnAttribute: fc.Arbitrary<(id: Buffer) => StunAttributeValue> = fc.oneof(
    fc.constant(() => ({ type: TurnAttribute.RequestedTransport, value: Buffer.from([17, 0, 0, 0]) })),
    fc.nat().map((n) => () => ({ type: TurnAttribute.Lifetime, value: u32(n % 4000) })),
    fc
      .integer({ min: 0x3ff0, max: 0x8010 })
      .map((n) => () => ({ type: TurnAttribute.ChannelNumber, value: u32(n << 16) })),
    fc
      .tuple(
        fc.oneof(
          fc.constantFrom('127.0.0.1', '198.51.100.1', '169.254.169.254', '10.0.0.1'),
          fc.ipV4(),
          fc.ipV6(),
        ),
        fc.integer({ min: 0, max: 0xffff }),
      )
      .map(([address, peerPort]) => (id: Buffer) => ({
        type: TurnAttribute.XorPeerAddress,
        value: encodeXorAddress(address, peerPort, id),
      })),
    fc.constant(() => ({ type: TurnAttribute.EvenPort, value: Buffer.from([0x80]) })),
    attribute.map((a) => () => a),
  );

  /** Signed TURN requests with random (often malformed) TURN attributes, sometimes mutated after signing. */
  const signedRequest = fc
    .record({
      method: fc.constantFrom(
        TurnMethod.Allocate,
        TurnMethod.Refresh,
        TurnMethod.CreatePermission,
        TurnMethod.ChannelBind,
        TurnMethod.Send,
      ),
      attributes: fc.oneof(
        fc.array(turnAttribute, { maxLength: 5 }),
        // Often well-formed enough to get past validation: a loopback peer (allowed here) and a channel.
        fc.tuple(fc.integer({ min: 0x4000, max: 0x4010 }), fc.integer({ min: 1, max: 3 })).map(
          ([channel, peerPort]): Array<(id: Buffer) => StunAttributeValue> => [
            () => ({ type: TurnAttribute.RequestedTransport, value: Buffer.from([17, 0, 0, 0]) }),
            () => ({ type: TurnAttribute.ChannelNumber, value: u32(channel << 16) }),
            (id: Buffer) => ({
              type: TurnAttribute.XorPeerAddress,
              value: encodeXorAddress('127.0.0.1', peerPort, id),
            }),
            () => ({ type: TurnAttribute.Data, value: Buffer.from('x') }),
          ],
        ),
      ),
      user: fc.constantFrom('a', 'b'),
      indication: fc.boolean(),
      source: fc.nat(2),
      mutation: fc.option(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 255 })), { nil: undefined }),
    })
    .map((r) => {
      const { username, credential } = turnCredentials(secret, r.user, 600);
      const id = randomBytes(12);
      const nonce = (server as unknown as { nonces: { issue(ip: string): string } }).nonces.issue(
        '127.0.0.1',
      );
      const cls = r.method === TurnMethod.Send || r.indication ? 1 : 0;
      const bytes = encodeStunMessage(
        stunMessageType(r.method, cls),
        id,
        [
          ...r.attributes.map((make) => make(id)),
          { type: 0x0006, value: Buffer.from(username) },
          { type: 0x0014, value: Buffer.from(realm) },
          { type: 0x0015, value: Buffer.from(nonce) },
        ],
        cls === 0 ? { key: longTermKey(username, realm, credential) } : {},
      );
      if (r.mutation) bytes[r.mutation[0] % bytes.length] ^= r.mutation[1];
      return { bytes, source: r.source };
    });

  const input = fc.oneof(
    signedRequest,
    datagrams.map((bytes) => ({ bytes, source: 0 })),
    fc
      .tuple(fc.integer({ min: 0x4000, max: 0x7fff }), fc.uint8Array({ maxLength: 64 }), fc.nat(2))
      .map(([channel, data, source]) => ({ bytes: encodeChannelData(channel, Buffer.from(data)), source })),
  );

  it('takes any bytes on a TCP connection: frames are handled, garbage closes it, nothing leaks', async () => {
    const chunks = fc.array(
      fc.oneof(
        datagrams,
        signedRequest.map((r) => r.bytes),
        fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
      ),
      { maxLength: 6 },
    );
    await fc.assert(
      fc.asyncProperty(chunks, async (writes) => {
        const socket = net.connect({ host: '127.0.0.1', port });
        socket.on('error', () => undefined);
        await new Promise<void>((resolve) =>
          socket.once('connect', () => resolve()).once('error', () => resolve()),
        );
        for (const bytes of writes) socket.write(bytes);
        await new Promise<void>((resolve) => socket.end(() => resolve()));
        socket.destroy();
      }),
      { numRuns: Math.min(runs, 500) },
    );
    for (let i = 0; i < 200 && server.stats.tcpConnections > 0; i++) await sleep(10);
    expect(server.stats.tcpConnections).toBe(0);
    expect(server.stats.dropped.internal_error).toBe(0);
  });

  it('never throws out of a socket callback, keeps within its limits, and keeps serving', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(input, { minLength: 1, maxLength: 10 }), async (batch) => {
        for (const { bytes, source } of batch) {
          (
            server as unknown as { onUdpMessage(b: Buffer, address: string, port: number): void }
          ).onUdpMessage(bytes, '127.0.0.1', sources[source].address().port);
        }
        // Let Allocates finish binding their relay sockets.
        for (let i = 0; i < 50 && (server as unknown as { pending: Set<string> }).pending.size > 0; i++)
          await sleep(2);
        expect(server.stats.dropped.internal_error).toBe(0);
        expect(server.stats.allocationsActive).toBeLessThanOrEqual(8);
      }),
      { numRuns: runs },
    );
    if (process.env.FUZZ_DEBUG) console.log(JSON.stringify(server.stats));
    const { username, credential } = turnCredentials(secret, 'honest', 600);
    const client = await TurnClient.connect({ host: '127.0.0.1', port, username, password: credential });
    try {
      // Capacity may be used up by the fuzzer's own allocations; either answer proves it still serves.
      await client.allocate().catch((err) => expect(err).toMatchObject({ code: 508 }));
    } finally {
      await client.close();
    }
  });
});
