/**
 * The baseline: a bare `ws` server (child process of bench/run.ts) with no auth, no presence, no
 * framework. Modes: idle (holds connections), echo (sends every message back), relay (forwards every
 * message of client `?pair=N&role=a` to client `?pair=N&role=b`).
 */
import { type WebSocket, WebSocketServer } from 'ws';
import {
  type BareListening,
  type BareServerConfig,
  type BareStats,
  exitWithParent,
  readChildConfig,
  report,
} from './lib/messages';

const config = readChildConfig<BareServerConfig>();
exitWithParent();

const wss = new WebSocketServer({ port: config.port, host: '127.0.0.1' });
const receivers = new Map<string, WebSocket>();

wss.on('connection', (socket, request) => {
  socket.on('error', () => {});
  if (config.mode === 'echo') {
    socket.on('message', (data, isBinary) => socket.send(data as Buffer, { binary: isBinary }));
  } else if (config.mode === 'relay') {
    const query = new URL(request.url ?? '/', 'ws://bench').searchParams;
    const pair = query.get('pair') ?? '0';
    if (query.get('role') === 'b') {
      receivers.set(pair, socket);
      socket.on('close', () => receivers.delete(pair));
    } else {
      socket.on('message', (data, isBinary) =>
        receivers.get(pair)?.send(data as Buffer, { binary: isBinary }),
      );
    }
  }
});

wss.on('listening', () => report({ type: 'listening', port: config.port } satisfies BareListening));
wss.on('error', (err) => {
  process.stderr.write(`bare-ws-server: ${err.message}\n`);
  process.exit(1);
});

process.on('message', (message: { type?: string }) => {
  if (message?.type === 'stats') report({ type: 'stats', clients: wss.clients.size } satisfies BareStats);
  else if (message?.type === 'exit') process.exit(0);
});
process.on('SIGTERM', () => process.exit(0));
