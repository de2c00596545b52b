import type { FastifyInstance } from 'fastify';
import type { NodeMetrics } from '../metrics';

/** Prometheus text format: the product's metrics first, Node's process defaults last. */
export async function metricsRoutes(app: FastifyInstance, { metrics }: { metrics: NodeMetrics }) {
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', metrics.contentType);
    return metrics.text();
  });
}
