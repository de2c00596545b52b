import WebSocket from 'ws';
import type { OpenTransport } from './transport';

/** The Node transport: `ws`, no compression, an optional source address; pause/resume and terminate. */
export const wsTransport: OpenTransport = (url, listener, options) => {
  const socket = new WebSocket(url, { localAddress: options.localAddress, perMessageDeflate: false });
  socket.on('open', () => listener.onOpen());
  socket.on('error', (err) => listener.onError(err.message));
  socket.on('close', (code, reason) => listener.onClose(code, reason.toString()));
  socket.on('message', (data, isBinary) =>
    listener.onMessage(isBinary ? (data as Buffer) : (data as Buffer).toString()),
  );
  return {
    get readyState() {
      return socket.readyState;
    },
    send: (data) => socket.send(data),
    close: (code) => socket.close(code),
    terminate: () => socket.terminate(),
    pause: () => socket.pause(),
    resume: () => socket.resume(),
  };
};
