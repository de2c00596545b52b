import type { FastifyInstance } from 'fastify';
import type { HashPool } from '../core/admission';

/**
 * Liveness, and readiness that stays 200 when the hash pool is saturated: a full pool sheds logins
 * cheaply, and taking the instance out of the load balancer would only move the storm elsewhere.
 */
export async function healthRoutes(
  app: FastifyInstance,
  { pool, hashQueue }: { pool: HashPool; hashQueue: number },
) {
  app.get('/healthz', async () => ({ status: 'ok', uptimeS: Math.round(process.uptime()) }));
  app.get('/readyz', async (_request, reply) => {
    const saturated = pool.stats.queued >= hashQueue;
    reply.code(200);
    return { ready: true, hashPool: { inFlight: pool.stats.inFlight, queued: pool.stats.queued, saturated } };
  });
}
