import fc from 'fast-check';
import { encodeForwardFrame, FRAME_FORWARD, parseForwardFrame } from '../../supernode/mesh/wire';
import {
  encodeRelayFrame,
  FLAG_ACK,
  FRAME_DELIVER,
  FRAME_HEADER_BYTES,
  FRAME_SEND,
  parseRelayFrame,
} from '../../supernode/protocol/frames';
import { mutate, runs, userId } from './arbitraries';

/**
 * Binary relay frames (docs/protocol.md#relay-frames) and the mesh forward frame
 * (docs/architecture.md#relay-across-nodes): random bytes, valid frames, and valid frames with
 * bytes changed, against oracles written from the layouts.
 */

const printable = (bytes: Uint8Array) => bytes.every((c) => c >= 0x21 && c <= 0x7e);

/** The layout of docs/protocol.md, as a yes/no. */
function relayFrameValid(data: Buffer, kind: number): boolean {
  if (data.length < 8 || data[0] !== kind || (data[1] & ~FLAG_ACK) !== 0) return false;
  const idLength = data[6];
  return (
    idLength >= 1 &&
    idLength <= 128 &&
    7 + idLength <= data.length &&
    printable(data.subarray(7, 7 + idLength))
  );
}

function forwardFrameValid(data: Buffer): boolean {
  if (data.length < 12 || data[0] !== FRAME_FORWARD) return false;
  const fromLength = data[10];
  if (fromLength < 1 || fromLength > 128 || 12 + fromLength > data.length) return false;
  const toLength = data[11 + fromLength];
  const end = 12 + fromLength + toLength;
  return (
    toLength >= 1 &&
    toLength <= 128 &&
    end <= data.length &&
    printable(data.subarray(11, 11 + fromLength)) &&
    printable(data.subarray(12 + fromLength, end))
  );
}

const payload = fc.uint8Array({ maxLength: 64 });
const msgId = fc.oneof(fc.constantFrom(0, 0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
const kind = fc.constantFrom(FRAME_SEND, FRAME_DELIVER);

const relayFields = fc.record({ kind, ack: fc.boolean(), msgId, userId, payload });
const forwardFields = fc.record({
  ack: fc.boolean(),
  msgId,
  session: msgId,
  from: userId,
  to: userId,
  payload,
});

const anyBytes = fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b));

describe('relay frames (fuzz)', () => {
  const relayFrames = fc.oneof(
    anyBytes,
    relayFields.chain((f) =>
      mutate(encodeRelayFrame(f.kind, f.ack ? FLAG_ACK : 0, f.msgId, f.userId, f.payload)),
    ),
  );

  it('parses any bytes without throwing, accepting exactly the documented layout', () => {
    fc.assert(
      fc.property(relayFrames, kind, (data, expectedKind) => {
        const parsed = parseRelayFrame(data, expectedKind);
        expect(parsed.ok).toBe(relayFrameValid(data, expectedKind));
        if (parsed.ok) {
          const { frame } = parsed;
          expect(frame.kind).toBe(expectedKind);
          expect(frame.msgId).toBe(data.readUInt32BE(2));
          expect(frame.payloadOffset).toBe(FRAME_HEADER_BYTES + frame.userId.length);
          // encode(decode(bytes)) gives the same bytes back.
          const again = encodeRelayFrame(
            frame.kind,
            frame.flags,
            frame.msgId,
            frame.userId,
            data.subarray(frame.payloadOffset),
          );
          expect(again.equals(data)).toBe(true);
        } else {
          expect(typeof parsed.message).toBe('string');
          // The refusal names the frame it refuses whenever the msgId was readable.
          if (data.length >= 8) expect(parsed.msgId).toBe(data.readUInt32BE(2));
        }
      }),
      { numRuns: runs },
    );
  });

  it('round-trips every valid frame, payload untouched', () => {
    fc.assert(
      fc.property(relayFields, (f) => {
        const flags = f.ack ? FLAG_ACK : 0;
        const data = encodeRelayFrame(f.kind, flags, f.msgId, f.userId, f.payload);
        expect(parseRelayFrame(data, f.kind)).toEqual({
          ok: true,
          frame: {
            kind: f.kind,
            flags,
            msgId: f.msgId,
            userId: f.userId,
            payloadOffset: 7 + f.userId.length,
          },
        });
        expect(new Uint8Array(data.subarray(7 + f.userId.length))).toEqual(f.payload);
        // A send frame is never taken for a deliver frame, nor the other way round.
        expect(parseRelayFrame(data, f.kind === FRAME_SEND ? FRAME_DELIVER : FRAME_SEND).ok).toBe(false);
      }),
      { numRuns: runs },
    );
  });
});

describe('mesh forward frames (fuzz)', () => {
  const forwardFrames = fc.oneof(
    anyBytes,
    anyBytes.map((b) => (b.length ? Buffer.concat([Buffer.from([FRAME_FORWARD]), b.subarray(1)]) : b)),
    forwardFields.chain((f) =>
      mutate(encodeForwardFrame(f.ack ? 1 : 0, f.msgId, f.session, f.from, f.to, f.payload)),
    ),
  );

  it('parses any bytes without throwing, accepting exactly the documented layout', () => {
    fc.assert(
      fc.property(forwardFrames, (data) => {
        const frame = parseForwardFrame(data);
        expect(frame !== undefined).toBe(forwardFrameValid(data));
        if (frame) {
          const again = encodeForwardFrame(
            frame.flags,
            frame.msgId,
            frame.session,
            frame.from,
            frame.to,
            data.subarray(frame.payloadOffset),
          );
          expect(again.equals(data)).toBe(true);
        }
      }),
      { numRuns: runs },
    );
  });

  it('round-trips every valid frame', () => {
    fc.assert(
      fc.property(forwardFields, (f) => {
        const flags = f.ack ? 1 : 0;
        const data = encodeForwardFrame(flags, f.msgId, f.session, f.from, f.to, f.payload);
        const payloadOffset = 12 + f.from.length + f.to.length;
        expect(parseForwardFrame(data)).toEqual({
          flags,
          msgId: f.msgId,
          session: f.session,
          from: f.from,
          to: f.to,
          payloadOffset,
        });
        expect(new Uint8Array(data.subarray(payloadOffset))).toEqual(f.payload);
      }),
      { numRuns: runs },
    );
  });

  // Finding: the forward frame's ids were not checked, so a peer's frame from "a b" (or from 200
  // bytes of anything) reached the recipient as a deliver frame that clients refuse as malformed.
  test.each([
    ['a sender id with a space', '0301000000050000000103612062' + '03626f62' + '6869'],
    ['a sender id with a non-ASCII byte', '030100000005000000010261c8' + '03626f62'],
    ['a recipient id with a control byte', '0300000000050000000101' + '61' + '02620a'],
    ['a sender id over 128 bytes', `030000000005000000018a${'61'.repeat(138)}0162`],
  ])('regression: refuses a forward frame with %s', (_name, hex) => {
    expect(parseForwardFrame(Buffer.from(hex, 'hex'))).toBeUndefined();
  });
});
