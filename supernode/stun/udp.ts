import type dgram from 'node:dgram';

/**
 * Binds `socket` exclusively to `address:port` and resolves once it listens. A bind error (EADDRINUSE,
 * or invalid arguments, which throw instead of emitting) rejects after closing the socket, since nothing
 * else will ever use it and it would keep the process alive. Errors after that go to `onError`.
 */
export function bindUdpSocket(
  socket: dgram.Socket,
  address: string,
  port: number,
  onError: (err: Error) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    let listening = false;
    socket.on('error', (err) => {
      if (listening) {
        onError(err);
        return;
      }
      closeQuietly(socket);
      reject(err);
    });
    socket.once('listening', () => {
      listening = true;
      resolve();
    });
    try {
      socket.bind({ address, port, exclusive: true });
    } catch (err) {
      closeQuietly(socket);
      reject(err);
    }
  });
}

export function closeQuietly(socket: dgram.Socket): void {
  try {
    socket.close();
  } catch {
    // Already closed.
  }
}

/**
 * dgram's `lookup` for sockets that only ever send to IP literals (checked before they get here): it
 * answers at once, where dns.lookup would defer every send by a tick.
 */
export function literalLookup(
  address: string,
  _family: unknown,
  callback: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  callback(null, address, address.includes(':') ? 6 : 4);
}
