/**
 * The session endpoint, outside Fastify's router: each upgrade request for the session path goes from
 * the HTTP server's `upgrade` event straight to ws and then to the core. A session set-up is what a
 * login storm is made of, and routing it through Fastify (request, reply, hooks, the WebSocket
 * plugin's handler) cost a quarter of the set-up's CPU for nothing the session uses.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { WebSocket, WebSocketServer } from 'ws';
import { SESSION_PATH } from '../../protocol/messages';
import type { SessionCore } from '../core/sessions';

/** Time a client gets to answer our close frame before its socket is cut. */
const CLOSE_HANDSHAKE_MS = 5000;

/**
 * Close reasons for the codes ws sends by itself when a client breaks the protocol (it sends them with
 * no reason text), so a client can tell a frame over the limit from other failures.
 */
const PROTOCOL_CLOSE_REASONS: Record<number, string> = {
  1002: 'protocol_error',
  1007: 'invalid_payload',
  1009: 'frame_too_large',
};

class SessionSocket extends WebSocket {
  close(code?: number, reason?: string | Buffer): void {
    super.close(code, reason ?? (code === undefined ? undefined : PROTOCOL_CLOSE_REASONS[code]));
  }
}

export interface SessionRouteOptions {
  core: SessionCore;
  maxFrameBytes: number;
}

export async function sessionRoutes(app: FastifyInstance, { core, maxFrameBytes }: SessionRouteOptions) {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // How long a refused or closed session may take to answer our close frame. ws waits 30 s by
    // default, so a client that never answers (a hello-less slow loris) kept its place in the
    // connection count 30 s past its auth timeout (found by test/hostile/slow.test.ts). A variable,
    // not a literal: @types/ws does not list this ws 8 option yet.
    ...{ closeTimeout: CLOSE_HANDSHAKE_MS },
    WebSocket: SessionSocket,
  });
  const onUpgrade = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    if (request.url !== SESSION_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => core.accept(ws));
  };
  app.server.on('upgrade', onUpgrade);
  // On close: no new sessions; every connection gets 1001, and any that does not answer is cut off.
  app.addHook('preClose', (done) => {
    app.server.off('upgrade', onUpgrade);
    core.closeAll();
    done();
  });
}
