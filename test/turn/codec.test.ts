import { encodeStunMessage } from '../../supernode/stun/codec';
import {
  channelDataHeader,
  channelDataPadding,
  encodeChannelData,
  frameKind,
  parseChannelData,
  TURN_ERROR_REASONS,
  TURN_KNOWN_ATTRIBUTES,
  TurnAttribute,
  TurnStreamFramer,
} from '../../supernode/turn/codec';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

describe('demultiplexing (RFC 7983)', () => {
  it.each([
    [0x00, 'stun'],
    [0x03, 'stun'],
    [0x3f, 'stun'],
    [0x40, 'channel'],
    [0x7f, 'channel'],
    [0x80, null],
    [0x16, 'stun'], // a DTLS record starts 20-63, which has top bits 00 too: STUN parsing rejects it
    [0xff, null],
  ])('first byte 0x%s is %p', (byte, kind) => {
    expect(frameKind(byte)).toBe(kind);
  });
});

describe('ChannelData', () => {
  it('parses header, length and data; ignores padding and anything after the length', () => {
    const parsed = parseChannelData(hex('4001 0003 616263 00 ffff'), 100);
    expect(parsed).toMatchObject({ ok: true, channel: 0x4001 });
    expect(parsed.ok && parsed.data.toString()).toBe('abc');
    expect(parseChannelData(hex('7fff 0000'), 100)).toMatchObject({ ok: true, channel: 0x7fff });
  });

  it.each([
    ['shorter than the header', hex('4001 00'), 'too_short'],
    ['not ChannelData', hex('8001 0000'), 'not_channel_data'],
    ['STUN', hex('0001 0000'), 'not_channel_data'],
    ['a length beyond the datagram', hex('4001 0005 61626364'), 'bad_length'],
  ])('drops %s', (_name, buf, reason) => {
    expect(parseChannelData(buf, 100)).toEqual({ ok: false, reason });
  });

  it('drops anything over the size limit', () => {
    expect(parseChannelData(encodeChannelData(0x4000, Buffer.alloc(97)), 100)).toEqual({
      ok: false,
      reason: 'too_large',
    });
  });

  it('encodes with padding to 4 for streams, and without for datagrams', () => {
    expect(encodeChannelData(0x4000, Buffer.from('abcde'))).toEqual(hex('4000 0005 6162636465'));
    expect(encodeChannelData(0x4000, Buffer.from('abcde'), true)).toEqual(hex('4000 0005 6162636465 000000'));
    expect(encodeChannelData(0x4000, Buffer.from('abcd'), true)).toEqual(hex('4000 0004 61626364'));
    expect(channelDataPadding(6)).toHaveLength(2);
  });

  it('refuses channel numbers outside 0x4000-0x7FFF and payloads over 65535 bytes', () => {
    expect(() => channelDataHeader(0x3fff, 1)).toThrow(RangeError);
    expect(() => channelDataHeader(0x8000, 1)).toThrow(RangeError);
    expect(() => channelDataHeader(0x4000, 65_536)).toThrow(RangeError);
  });
});

describe('TurnStreamFramer', () => {
  const stun = encodeStunMessage(0x0003, Buffer.alloc(12, 1), [
    { type: TurnAttribute.RequestedTransport, value: hex('11000000') },
  ]);
  const channel = encodeChannelData(0x4001, Buffer.from('hello'), true);

  function frames(chunks: Buffer[], max = 4096): { frames: string[]; failure: string | null } {
    const framer = new TurnStreamFramer(max);
    const out: string[] = [];
    let failure: string | null = null;
    for (const chunk of chunks) {
      failure = framer.push(chunk, (frame, kind) => out.push(`${kind}:${frame.toString('hex')}`));
      if (failure) break;
    }
    return { frames: out, failure };
  }

  it('splits STUN and padded ChannelData, however the bytes are chunked', () => {
    const stream = Buffer.concat([stun, channel, stun, encodeChannelData(0x4002, Buffer.alloc(0), true)]);
    const expected = [
      `stun:${stun.toString('hex')}`,
      `channel:${channel.subarray(0, 9).toString('hex')}`,
      `stun:${stun.toString('hex')}`,
      'channel:40020000',
    ];
    expect(frames([stream])).toEqual({ frames: expected, failure: null });
    const oneByOne = [...stream].map((byte) => Buffer.from([byte]));
    expect(frames(oneByOne)).toEqual({ frames: expected, failure: null });
  });

  it('holds an incomplete message and reports how much it holds', () => {
    const framer = new TurnStreamFramer(4096);
    const got: Buffer[] = [];
    expect(framer.push(stun.subarray(0, 10), (f) => got.push(f))).toBeNull();
    expect(framer.buffered).toBe(10);
    expect(framer.push(stun.subarray(10), (f) => got.push(f))).toBeNull();
    expect(got).toEqual([stun]);
    expect(framer.buffered).toBe(0);
  });

  it.each([
    ['a first byte that is neither STUN nor ChannelData', hex('8000 0000'), 'bad_framing'],
    ['TLS sent to the TCP port', hex('16030100a5010000a103'), 'bad_framing'],
    ['a STUN length that is not a multiple of 4', hex('0001 0003 2112a442'), 'bad_framing'],
    ['a message over the limit', hex('4000 ffff'), 'too_large'],
  ])('fails on %s', (_name, bytes, failure) => {
    const result = frames([Buffer.concat([stun, bytes])], 1024);
    expect(result.failure).toBe(failure);
    expect(result.frames).toHaveLength(1);
  });
});

describe('constants', () => {
  it('names every error code it can send, with RFC reason phrases', () => {
    expect(Object.keys(TURN_ERROR_REASONS).map(Number)).toEqual([
      400, 401, 403, 420, 437, 438, 440, 441, 442, 443, 486, 508,
    ]);
    expect(TURN_ERROR_REASONS[437]).toBe('Allocation Mismatch');
  });

  it('understands RFC 8656 attributes but not DONT-FRAGMENT', () => {
    for (const type of [0x000c, 0x000d, 0x0012, 0x0013, 0x0016, 0x0017, 0x0018, 0x0019, 0x0022]) {
      expect(TURN_KNOWN_ATTRIBUTES.has(type)).toBe(true);
    }
    expect(TURN_KNOWN_ATTRIBUTES.has(TurnAttribute.DontFragment)).toBe(false);
  });
});
