import type { FastifyInstance } from 'fastify';
import type { AuthMetrics } from '../metrics';

/** Prometheus text format: the service's metrics first, Node's process defaults last. */
export async function metricsRoutes(app: FastifyInstance, { metrics }: { metrics: AuthMetrics }) {
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.contentType);
    return metrics.text();
  });
}
