/**
 * A minimal WebSocket client for load generators: one `net.Socket`, a fixed upgrade request, frames
 * encoded and parsed by hand. On 2 cores the `ws` client (http.ClientRequest, handshake checks,
 * Receiver/Sender streams) costs more CPU per connection than the server it is measuring, which then
 * measures the generator; this client does the same protocol steps with a fraction of the work.
 * Server-side work is unchanged: the node sees an ordinary RFC 6455 client.
 */
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';

export interface RawTarget {
  host: string;
  port: number;
  path: string;
  localAddress?: string;
}

const MASK = randomBytes(4);
const MAX_HEADER_BYTES = 8192;
const MAX_FRAME_BYTES = 1024 * 1024;

export function upgradeRequest(target: RawTarget): Buffer {
  return Buffer.from(
    `GET ${target.path} HTTP/1.1\r\n` +
      `Host: ${target.host}:${target.port}\r\n` +
      'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n` +
      'Sec-WebSocket-Version: 13\r\n\r\n',
    'latin1',
  );
}

/** A masked client frame (FIN set); opcode 0x1 text, 0x2 binary, 0xA pong. */
export function clientFrame(payload: Buffer, opcode = 0x1): Buffer {
  const length = payload.length;
  const headerBytes = length < 126 ? 2 : length < 65536 ? 4 : 10;
  const out = Buffer.allocUnsafe(headerBytes + 4 + length);
  out[0] = 0x80 | opcode;
  if (length < 126) out[1] = 0x80 | length;
  else if (length < 65536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(length, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeBigUInt64BE(BigInt(length), 2);
  }
  MASK.copy(out, headerBytes);
  const body = headerBytes + 4;
  for (let i = 0; i < length; i++) out[body + i] = payload[i] ^ MASK[i & 3];
  return out;
}

export interface ServerFrame {
  opcode: number;
  payload: Buffer;
}

/** Parses unmasked server frames from a growing buffer; returns the frames and the unread rest. */
export function parseServerFrames(buffer: Buffer): { frames: ServerFrame[]; rest: Buffer } {
  const frames: ServerFrame[] = [];
  let offset = 0;
  while (buffer.length - offset >= 2) {
    const opcode = buffer[offset] & 0x0f;
    let length = buffer[offset + 1] & 0x7f;
    let header = 2;
    if (length === 126) {
      if (buffer.length - offset < 4) break;
      length = buffer.readUInt16BE(offset + 2);
      header = 4;
    } else if (length === 127) {
      if (buffer.length - offset < 10) break;
      length = Number(buffer.readBigUInt64BE(offset + 2));
      header = 10;
    }
    if (length > MAX_FRAME_BYTES) throw new Error('server frame too large');
    if (buffer.length - offset < header + length) break;
    frames.push({ opcode, payload: buffer.subarray(offset + header, offset + header + length) });
    offset += header + length;
  }
  return { frames, rest: offset === 0 ? buffer : buffer.subarray(offset) };
}

export type Established = (socket: Socket, first: Buffer | undefined) => void;
export type Failed = (code: string) => void;

/**
 * Opens a WebSocket: upgrade, then (if `hello` is given) one text frame, then waits for the first
 * server frame. Calls exactly one of `ok` / `fail`. After `ok` the socket answers pings and ends on a
 * close frame; `onLost` runs when it closes.
 */
export function openRawSession(
  target: RawTarget,
  hello: Buffer | undefined,
  waitForFirstFrame: boolean,
  timeoutMs: number,
  ok: Established,
  fail: Failed,
  onLost: () => void,
): void {
  let settled = false;
  let upgraded = false;
  let pending: Buffer = Buffer.alloc(0);
  const socket = connect(
    target.localAddress
      ? { host: target.host, port: target.port, localAddress: target.localAddress }
      : { host: target.host, port: target.port },
  );
  const settle = (
    code: string | undefined,
    first?: Buffer,
    more: ReturnType<typeof parseServerFrames>['frames'] = [],
  ): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.removeAllListeners('data');
    socket.removeAllListeners('close');
    if (code !== undefined) {
      socket.destroy();
      fail(code);
      return;
    }
    let rest = pending;
    const onControl = (frame: (typeof more)[number]): void => {
      if (frame.opcode === 0x9) socket.write(clientFrame(frame.payload, 0xa));
      else if (frame.opcode === 0x8) socket.end(clientFrame(frame.payload.subarray(0, 2), 0x8));
    };
    socket.on('data', (chunk: Buffer) => {
      rest = rest.length ? Buffer.concat([rest, chunk]) : chunk;
      let parsed: ReturnType<typeof parseServerFrames>;
      try {
        parsed = parseServerFrames(rest);
      } catch {
        socket.destroy();
        return;
      }
      rest = parsed.rest.length ? Buffer.from(parsed.rest) : Buffer.alloc(0);
      for (const frame of parsed.frames) onControl(frame);
    });
    socket.on('close', onLost);
    ok(socket, first);
    // Frames that came in the same read as the first one (a server may ping right after its welcome).
    for (const frame of more) onControl(frame);
  };
  const timer = setTimeout(() => settle('timeout'), timeoutMs);
  socket.on('error', (err: NodeJS.ErrnoException) => settle(err.code ?? 'socket_error'));
  socket.on('close', () => settle(upgraded ? 'closed_after_upgrade' : 'closed_before_upgrade'));
  socket.on('connect', () => socket.write(upgradeRequest(target)));
  socket.on('data', (chunk: Buffer) => {
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    if (!upgraded) {
      const end = pending.indexOf('\r\n\r\n');
      if (end < 0) {
        if (pending.length > MAX_HEADER_BYTES) settle('bad_upgrade_response');
        return;
      }
      const status = pending.toString('latin1', 0, Math.min(end, 64));
      if (!status.startsWith('HTTP/1.1 101')) {
        settle(`http_${status.slice(9, 12)}`);
        return;
      }
      upgraded = true;
      pending = pending.subarray(end + 4);
      if (hello) socket.write(hello);
      if (!waitForFirstFrame) {
        settle(undefined);
        return;
      }
    }
    let parsed: ReturnType<typeof parseServerFrames>;
    try {
      parsed = parseServerFrames(pending);
    } catch {
      settle('bad_frame');
      return;
    }
    const first = parsed.frames[0];
    if (!first) return;
    const payload = Buffer.from(first.payload);
    pending = parsed.rest.length ? Buffer.from(parsed.rest) : Buffer.alloc(0);
    settle(undefined, payload, parsed.frames.slice(1));
  });
}

/**
 * A session for a generator that reads the socket itself: upgrade, the `hello` (if given) answered by
 * a welcome, then the socket with no data listener of ours. Rejects on a failed connect or any other
 * first message.
 */
export function openGeneratorSocket(
  url: string,
  path: string,
  hello: string | undefined,
  localAddress: string | undefined,
  timeoutMs: number,
): Promise<Socket> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    openRawSession(
      { host: hostname, port: Number(port), path, localAddress },
      hello === undefined ? undefined : clientFrame(Buffer.from(hello, 'utf8')),
      hello !== undefined,
      timeoutMs,
      (socket, first) => {
        if (hello !== undefined && !first?.toString('utf8').includes('"welcome"')) {
          socket.destroy();
          reject(new Error(`first message is not a welcome: ${first?.toString('utf8').slice(0, 200)}`));
          return;
        }
        socket.removeAllListeners('data');
        resolve(socket);
      },
      (code) => reject(new Error(`connect failed: ${code}`)),
      () => {},
    );
  });
}
