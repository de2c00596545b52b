import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/**
 * Frames sent to one socket during one turn of the event loop leave in one write. ws writes each
 * frame with its own syscall, and on loopback a write also pays for the receiver's network stack:
 * under 10,000 lookups/s that was most of a mesh node's CPU and the queueing behind the p99. The socket
 * is corked at its first send of a turn and uncorked once, after this turn's I/O callbacks.
 */
const corked = new Set<Duplex>();
let flushScheduled = false;

function flush(): void {
  flushScheduled = false;
  for (const socket of corked) socket.uncork();
  corked.clear();
}

/** Call before `ws.send`; nested corks (ws corks a frame's header and body itself) are fine. */
export function batchWrites(ws: WebSocket): void {
  // ws keeps its TCP socket in `_socket` (ws 8); without it, nothing is batched and nothing breaks.
  const socket = (ws as unknown as { _socket?: Duplex | null })._socket;
  if (!socket || corked.has(socket) || socket.destroyed) return;
  socket.cork();
  corked.add(socket);
  if (!flushScheduled) {
    flushScheduled = true;
    setImmediate(flush);
  }
}
