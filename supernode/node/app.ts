/**
 * The supernode as a Fastify plugin: one route file per concern (the session upgrade, health and
 * readiness, metrics, admin, the console's status).
 * Everything the routes do is in the core (core/sessions.ts) and the metrics module.
 */
import type { FastifyInstance } from 'fastify';
import type { SessionCore } from './core/sessions';
import type { NodeMetrics } from './metrics';
import { adminRoutes } from './routes/admin';
import { healthRoutes } from './routes/health';
import { metricsRoutes } from './routes/metrics';
import { sessionRoutes } from './routes/session';
import { statusRoutes } from './routes/status';

export interface SupernodeAppOptions {
  core: SessionCore;
  metrics: NodeMetrics;
  nodeId: string;
  capacity: number;
  maxFrameBytes: number;
  drainTimeoutMs: number;
  drain: () => Promise<void>;
}

export async function supernodeApp(app: FastifyInstance, options: SupernodeAppOptions): Promise<void> {
  const { core } = options;
  await app.register(sessionRoutes, { core, maxFrameBytes: options.maxFrameBytes });
  await app.register(healthRoutes, { core, nodeId: options.nodeId, capacity: options.capacity });
  await app.register(metricsRoutes, { metrics: options.metrics });
  await app.register(adminRoutes, { core, drainTimeoutMs: options.drainTimeoutMs, drain: options.drain });
  await app.register(statusRoutes, {
    core,
    metrics: options.metrics,
    nodeId: options.nodeId,
    capacity: options.capacity,
  });
}
// Not encapsulated (what fastify-plugin does): the routes and the session route's preClose goodbye
// belong to the root instance that server.ts listens with and closes.
Object.assign(supernodeApp, { [Symbol.for('skip-override')]: true });
