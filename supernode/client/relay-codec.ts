/**
 * The client's side of the relay frames (docs/protocol.md#relay-frames) on plain Uint8Arrays, so it
 * runs in browsers as well as in Node: protocol/frames.ts works on Buffers for the node's hot path.
 * test/browser/portable-sdk.test.ts checks that both produce and accept the same bytes.
 */
import { FLAG_ACK, FRAME_DELIVER, FRAME_HEADER_BYTES, FRAME_SEND } from '../protocol/frames';

const MAX_ID_BYTES = 128;

/** A send frame to `to` (printable ASCII, one byte per character) around `payload`. */
export function encodeSendFrame(ack: boolean, msgId: number, to: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_BYTES + to.length + payload.length);
  out[0] = FRAME_SEND;
  out[1] = ack ? FLAG_ACK : 0;
  new DataView(out.buffer).setUint32(2, msgId >>> 0);
  out[6] = to.length;
  for (let i = 0; i < to.length; i++) out[FRAME_HEADER_BYTES + i] = to.charCodeAt(i);
  out.set(payload, FRAME_HEADER_BYTES + to.length);
  return out;
}

export interface DeliverFrame<Bytes extends Uint8Array> {
  from: string;
  msgId: number;
  /** A view into the frame, of the frame's own type (a Buffer in Node). */
  payload: Bytes;
}

/** A deliver frame from the node, or undefined when the bytes are not a well-formed one. */
export function parseDeliverFrame<Bytes extends Uint8Array>(data: Bytes): DeliverFrame<Bytes> | undefined {
  if (data.length < FRAME_HEADER_BYTES + 1 || data[0] !== FRAME_DELIVER) return undefined;
  if ((data[1] & ~FLAG_ACK) !== 0) return undefined;
  const idLength = data[6];
  if (idLength === 0 || idLength > MAX_ID_BYTES || FRAME_HEADER_BYTES + idLength > data.length)
    return undefined;
  let from = '';
  for (let i = FRAME_HEADER_BYTES; i < FRAME_HEADER_BYTES + idLength; i++) {
    const c = data[i];
    if (c < 0x21 || c > 0x7e) return undefined;
    from += String.fromCharCode(c);
  }
  const msgId = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(2);
  return { from, msgId, payload: data.subarray(FRAME_HEADER_BYTES + idLength) as Bytes };
}
