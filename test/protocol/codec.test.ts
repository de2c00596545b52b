import {
  encodeRelayFrame,
  FLAG_ACK,
  FRAME_DELIVER,
  FRAME_SEND,
  parseRelayFrame,
} from '../../supernode/protocol/frames';
import { MAX_CONTROL_BYTES, parseClientMessage } from '../../supernode/protocol/messages';

describe('relay frames', () => {
  it('encodes the worked example of docs/protocol.md byte for byte', () => {
    expect(encodeRelayFrame(FRAME_SEND, FLAG_ACK, 5, 'bob', Buffer.from('hi')).toString('hex')).toBe(
      '010100000005' + '03' + '626f62' + '6869',
    );
    expect(encodeRelayFrame(FRAME_DELIVER, 0, 5, 'alice', Buffer.from('hi')).toString('hex')).toBe(
      '020000000005' + '05' + '616c696365' + '6869',
    );
  });

  it('round-trips what it accepts, payload untouched', () => {
    const payload = Buffer.from([0, 255, 1, 254]);
    const frame = encodeRelayFrame(FRAME_SEND, 0, 0xffffffff, 'u@x', payload);
    const parsed = parseRelayFrame(frame, FRAME_SEND);
    expect(parsed).toEqual({
      ok: true,
      frame: { kind: 1, flags: 0, msgId: 0xffffffff, userId: 'u@x', payloadOffset: 10 },
    });
    expect(frame.subarray(10)).toEqual(payload);
  });

  it.each([
    ['empty', Buffer.alloc(0)],
    ['header only', Buffer.from([1, 0, 0, 0, 0, 1, 1])],
    ['wrong kind', encodeRelayFrame(FRAME_DELIVER, 0, 1, 'bob', Buffer.alloc(0))],
    ['unknown flag', encodeRelayFrame(FRAME_SEND, 2, 1, 'bob', Buffer.alloc(0))],
    ['zero id length', Buffer.from([1, 0, 0, 0, 0, 1, 0, 65])],
    ['id length past the end', Buffer.from([1, 0, 0, 0, 0, 1, 9, 65])],
    ['id with a space', Buffer.from([1, 0, 0, 0, 0, 1, 2, 65, 32])],
    ['id with a non-ASCII byte', Buffer.from([1, 0, 0, 0, 0, 1, 2, 65, 200])],
  ])('refuses a frame with %s', (_name, frame) => {
    const parsed = parseRelayFrame(frame, FRAME_SEND);
    expect(parsed.ok).toBe(false);
  });
});

describe('control messages', () => {
  it('accepts each client message type', () => {
    expect(parseClientMessage('{"type":"hello","token":"t"}')).toMatchObject({ ok: true });
    expect(parseClientMessage('{"type":"lookup","id":1,"user":"bob"}')).toMatchObject({ ok: true });
    expect(parseClientMessage('{"type":"ping","id":0}')).toMatchObject({ ok: true });
    expect(
      parseClientMessage('{"type":"endpoints","endpoints":[{"address":"::1","port":1,"kind":"host"}]}'),
    ).toMatchObject({ ok: true });
  });

  it.each([
    ['not JSON', '{', true],
    ['an array', '[]', true],
    ['a string', '"hello"', true],
    ['null', 'null', true],
    ['oversized', `{"type":"ping","id":1,"x":"${'a'.repeat(MAX_CONTROL_BYTES)}"}`, true],
    ['unknown type', '{"type":"fly","id":3}', false],
    ['missing field', '{"type":"lookup","id":1}', false],
    ['extra field', '{"type":"ping","id":1,"x":1}', false],
    ['negative id', '{"type":"ping","id":-1}', false],
    ['id past uint32', '{"type":"ping","id":4294967296}', false],
    ['user with space', '{"type":"lookup","id":1,"user":"a b"}', false],
    [
      'too many endpoints',
      `{"type":"endpoints","endpoints":${JSON.stringify(Array(9).fill({ address: '::1', port: 1 }))}}`,
      false,
    ],
    ['endpoint not an IP', '{"type":"endpoints","endpoints":[{"address":"example.com","port":1}]}', false],
    ['port 0', '{"type":"endpoints","endpoints":[{"address":"::1","port":0}]}', false],
    ['__proto__ type', '{"type":"__proto__"}', false],
    ['toString type', '{"type":"toString"}', false],
  ])('refuses %s with a typed error (fatal: %s)', (_name, text, fatal) => {
    const parsed = parseClientMessage(text as string);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) {
      expect(['bad_message', 'unsupported']).toContain(parsed.code);
      expect(parsed.fatal).toBe(fatal);
    }
  });

  it('echoes the id of a refused request so the client can match it', () => {
    expect(parseClientMessage('{"type":"lookup","id":42,"user":""}')).toMatchObject({ ok: false, id: 42 });
  });
});
