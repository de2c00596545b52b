/**
 * The supernode as a Fastify plugin: the WebSocket plugin first, then one route file per concern.
 * Everything the routes do is in the core (core/sessions.ts) and the metrics module.
 */
import websocket from '@fastify/websocket';
import type { FastifyInstance } from 'fastify';
import { WebSocket } from 'ws';
import type { Logger } from '../shared/log';
import type { SessionCore } from './core/sessions';
import type { NodeMetrics } from './metrics';
import { adminRoutes } from './routes/admin';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { sessionRoutes } from './routes/session';

export interface SupernodeAppOptions {
  core: SessionCore;
  metrics: NodeMetrics;
  nodeId: string;
  capacity: number;
  maxFrameBytes: number;
  drainTimeoutMs: number;
  drain: () => Promise<void>;
  log: Logger;
}

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

/** A client's protocol error (ws has already closed the session with the right code): not ours to log. */
function isClientProtocolError(error: Error & { code?: string }): boolean {
  return typeof error.code === 'string' && error.code.startsWith('WS_ERR_');
}

export async function supernodeApp(app: FastifyInstance, options: SupernodeAppOptions): Promise<void> {
  const { core, log } = options;
  const wsServerOptions = {
    maxPayload: options.maxFrameBytes,
    perMessageDeflate: false,
    clientTracking: false,
    // How long a refused or closed session may take to answer our close frame. ws waits 30 s by
    // default, so a client that never answers (a hello-less slow loris) kept its place in the
    // connection count 30 s past its auth timeout (found by test/hostile/slow.test.ts). A variable,
    // not a literal: @types/ws does not list this ws 8 option yet.
    closeTimeout: CLOSE_HANDSHAKE_MS,
    WebSocket: SessionSocket,
  };
  await app.register(websocket, {
    options: wsServerOptions,
    errorHandler(error, socket) {
      // The core counts and logs these in one line; a stack trace per oversized frame helps nobody.
      if (isClientProtocolError(error)) return;
      log.warn({ err: error }, 'websocket handler error');
      socket.terminate();
    },
    // On close: say goodbye with 1001 to every connection, and cut off any that do not answer.
    preClose(done) {
      app.server.removeAllListeners('upgrade');
      core.closeAll();
      done();
    },
  });
  await app.register(sessionRoutes, { core });
  await app.register(healthRoutes, { core, nodeId: options.nodeId, capacity: options.capacity });
  await app.register(metricsRoutes, { metrics: options.metrics });
  await app.register(adminRoutes, { core, drainTimeoutMs: options.drainTimeoutMs, drain: options.drain });
}
// Not encapsulated (what fastify-plugin does): the WebSocket plugin and routes belong to the root
// instance, whose close runs the preClose goodbye above.
Object.assign(supernodeApp, { [Symbol.for('skip-override')]: true });
