import type { FastifyInstance } from 'fastify';
import type { SessionCore } from '../core/sessions';

export interface HealthRouteOptions {
  core: SessionCore;
  nodeId: string;
  capacity: number;
}

/** Liveness (the process answers) and readiness (keys, mesh, not draining, not full). */
export async function healthRoutes(app: FastifyInstance, { core, nodeId, capacity }: HealthRouteOptions) {
  app.get('/healthz', async () => ({ status: 'ok', node: nodeId, uptimeS: Math.round(process.uptime()) }));

  app.get('/readyz', async (_request, reply) => {
    const state = core.readyState();
    reply.code(state.ready ? 200 : 503);
    return { ...state, node: nodeId, sessions: core.sessionCount, capacity };
  });
}
