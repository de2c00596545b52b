/**
 * Binary relay frames. The payload is opaque bytes: the node copies it once into the outgoing frame
 * and never parses or re-encodes it.
 *
 *   0      kind      0x01 send (client -> node), 0x02 deliver (node -> client)
 *   1      flags     bit 0: the sender asks for an `ack`
 *   2..5   msgId     uint32 big-endian, chosen by the sender, echoed in ack/error/deliver
 *   6      idLength  1..128
 *   7..    user id   recipient (send) or sender (deliver), printable ASCII
 *   ...    payload   the rest of the frame
 */
export const FRAME_SEND = 0x01;
export const FRAME_DELIVER = 0x02;
export const FLAG_ACK = 0x01;
export const FRAME_HEADER_BYTES = 7;
const MAX_ID_BYTES = 128;

export interface RelayFrame {
  kind: number;
  flags: number;
  msgId: number;
  userId: string;
  payloadOffset: number;
}

export type FrameParseResult =
  | { ok: true; frame: RelayFrame }
  | { ok: false; message: string; msgId?: number };

export function parseRelayFrame(data: Buffer, expectedKind: number): FrameParseResult {
  if (data.length < FRAME_HEADER_BYTES + 1)
    return { ok: false, message: 'relay frame shorter than its header' };
  const msgId = data.readUInt32BE(2);
  if (data[0] !== expectedKind)
    return { ok: false, message: `relay frame kind ${data[0]} not allowed here`, msgId };
  const flags = data[1];
  if ((flags & ~FLAG_ACK) !== 0) return { ok: false, message: 'relay frame has unknown flags', msgId };
  const idLength = data[6];
  if (idLength === 0 || idLength > MAX_ID_BYTES || FRAME_HEADER_BYTES + idLength > data.length) {
    return { ok: false, message: 'relay frame user id length out of range', msgId };
  }
  for (let i = FRAME_HEADER_BYTES; i < FRAME_HEADER_BYTES + idLength; i++) {
    const c = data[i];
    if (c < 0x21 || c > 0x7e)
      return { ok: false, message: 'relay frame user id is not printable ASCII', msgId };
  }
  const userId = data.toString('latin1', FRAME_HEADER_BYTES, FRAME_HEADER_BYTES + idLength);
  return {
    ok: true,
    frame: { kind: data[0], flags, msgId, userId, payloadOffset: FRAME_HEADER_BYTES + idLength },
  };
}

/** Builds a frame around `payload` (a view into the incoming frame: one copy, no re-encoding). */
export function encodeRelayFrame(
  kind: number,
  flags: number,
  msgId: number,
  userId: string,
  payload: Uint8Array,
): Buffer {
  const idLength = Buffer.byteLength(userId, 'latin1');
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + idLength + payload.length);
  out[0] = kind;
  out[1] = flags;
  out.writeUInt32BE(msgId >>> 0, 2);
  out[6] = idLength;
  out.write(userId, FRAME_HEADER_BYTES, 'latin1');
  out.set(payload, FRAME_HEADER_BYTES + idLength);
  return out;
}
