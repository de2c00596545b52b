/**
 * A STUN load generator (child process of bench/run.ts): one UDP socket keeping `window` Binding
 * requests in flight against one server for `seconds`, counting success responses whose transaction
 * id it sent (answers, not sends). The requests are built here byte by byte from RFC 8489 (a 20-byte
 * header, no attributes), so the generator shares no code with the server it measures.
 */
import { createSocket } from 'node:dgram';
import { exitWithParent, readChildConfig, report } from './lib/messages';

export interface StunGenConfig {
  host: string;
  port: number;
  seconds: number;
  window: number;
  /** Distinguishes this generator's transaction ids from the others'. */
  id: number;
}

export interface StunGenDone {
  type: 'stun-done';
  sent: number;
  answers: number;
  seconds: number;
}

const config = readChildConfig<StunGenConfig>();
exitWithParent();

const MAGIC_COOKIE = 0x2112a442;
const socket = createSocket('udp4');
let serial = 0;
let sent = 0;
let answers = 0;
/** Every answer, warm-up included, for the refill check. */
let received = 0;
let receivedAtLastCheck = 0;
let measuring = false;
/** Serials in flight by their low 16 bits: an answer counts once, for a request really sent. */
const inFlight = new Uint8Array(65_536);

function request(): Buffer {
  const message = Buffer.alloc(20);
  message.writeUInt16BE(0x0001, 0); // Binding request
  message.writeUInt16BE(0, 2); // no attributes
  message.writeUInt32BE(MAGIC_COOKIE, 4);
  message.writeUInt32BE(config.id, 8);
  message.writeUInt32BE(0x5354554e, 12); // "STUN"
  serial = (serial + 1) >>> 0;
  message.writeUInt32BE(serial, 16);
  inFlight[serial & 0xffff] = 1;
  return message;
}

function send(): void {
  socket.send(request(), config.port, config.host);
  sent++;
}

socket.on('message', (message) => {
  // A Binding success response carrying our cookie and one of our transaction ids.
  if (message.length < 20 || message.readUInt16BE(0) !== 0x0101) return;
  if (message.readUInt32BE(4) !== MAGIC_COOKIE || message.readUInt32BE(8) !== config.id) return;
  const key = message.readUInt32BE(16) & 0xffff;
  if (!inFlight[key]) return;
  inFlight[key] = 0;
  received++;
  if (measuring) answers++;
  send();
});

socket.bind(0, '127.0.0.1', () => {
  for (let i = 0; i < config.window; i++) send();
  // Lost datagrams shrink the window; refill it whenever a period brings no answer at all.
  const refill = setInterval(() => {
    if (received === receivedAtLastCheck) for (let i = 0; i < config.window; i++) send();
    receivedAtLastCheck = received;
  }, 100);
  // A short warm-up before counting.
  setTimeout(() => {
    measuring = true;
    const started = performance.now();
    const sentBefore = sent;
    setTimeout(() => {
      measuring = false;
      clearInterval(refill);
      const seconds = (performance.now() - started) / 1000;
      report({ type: 'stun-done', sent: sent - sentBefore, answers, seconds } satisfies StunGenDone);
      socket.close();
      setTimeout(() => process.exit(0), 100);
    }, config.seconds * 1000);
  }, 500);
});
