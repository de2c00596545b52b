import type { FastifyInstance } from 'fastify';
import { isLoopback } from '../../shared/files';
import type { SessionCore } from '../core/sessions';

export interface AdminRouteOptions {
  core: SessionCore;
  drainTimeoutMs: number;
  drain: () => Promise<void>;
}

/** Called by the instance itself (lifecycle hook, operator on the box): loopback only. */
export async function adminRoutes(app: FastifyInstance, { core, drainTimeoutMs, drain }: AdminRouteOptions) {
  app.post('/admin/drain', async (request, reply) => {
    if (!isLoopback(request.socket.remoteAddress)) {
      reply.code(403);
      return { error: 'forbidden', message: 'admin calls are accepted from loopback only' };
    }
    // Begin once the answer is out, so closing the listener does not wait on this connection.
    reply.raw.once('finish', () => void drain());
    reply.code(202);
    return { draining: true, sessions: core.sessionCount, deadlineMs: drainTimeoutMs };
  });
}
