import type { FastifyInstance } from 'fastify';
import { AuthStatus, type AuthStatusBody } from '../../status/schemas';
import type { HashPool } from '../core/admission';
import { refusal } from '../core/outcome';
import type { AuthMetrics } from '../metrics';
import { isAdmin } from './admin';
import { answer } from './reply';

/** The outcomes of auth_requests_total that are not refusals (sign-ups count as `created`). */
const SUCCESS = new Set(['ok', 'created']);

export interface StatusRouteOptions {
  pool: HashPool;
  metrics: AuthMetrics;
  hashQueue: number;
  adminToken: string | undefined;
}

/**
 * What the operator console shows of admission, as JSON (supernode/status/schemas.ts). Same rule as
 * the admin routes: the bearer of the admin token when one is configured, else loopback callers.
 */
export async function statusRoutes(
  app: FastifyInstance,
  { pool, metrics, hashQueue, adminToken }: StatusRouteOptions,
) {
  app.get('/status', { schema: { response: { 200: AuthStatus } } }, async (request, reply) => {
    if (!isAdmin(request, adminToken))
      return answer(reply, refusal(403, 'forbidden', 'admin credentials required'));
    const stats = pool.stats;
    const shed: Record<string, number> = {};
    for (const { labels, value } of (await metrics.shed.get()).values)
      shed[`${labels.class}:${labels.reason}`] = value;
    // Every outcome but success, summed over routes: what callers were told "no" for.
    const refusals: Record<string, number> = {};
    for (const { labels, value } of (await metrics.requests.get()).values) {
      const outcome = String(labels.outcome);
      if (!SUCCESS.has(outcome)) refusals[outcome] = (refusals[outcome] ?? 0) + value;
    }
    const body: AuthStatusBody = {
      service: 'auth',
      uptimeS: Math.round(process.uptime()),
      hashPool: {
        concurrency: pool.size,
        maxQueue: hashQueue,
        inFlight: stats.inFlight,
        queued: stats.queued,
        runMsEwma: stats.runMsEwma,
        capacityPerSec: pool.capacityPerSec(),
        completed: stats.completed,
        failed: stats.failed,
      },
      logins: { ...metrics.totals },
      shed,
      refusals,
    };
    return body;
  });
}
