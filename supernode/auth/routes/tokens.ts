import type { FastifyInstance } from 'fastify';
import type { Gates } from '../core/gates';
import { success } from '../core/outcome';
import type { TokenIssuer } from '../core/tokens';
import type { AuthMetrics } from '../metrics';
import { RefreshBody, type RefreshTokenBody, TokenAnswer } from '../schemas';
import { answer } from './reply';

export interface TokenRouteOptions {
  tokens: TokenIssuer;
  gates: Gates;
  metrics: AuthMetrics;
}

/** Refresh and logout: the cheap class, never waiting behind hashes. */
export async function tokenRoutes(app: FastifyInstance, { tokens, gates, metrics }: TokenRouteOptions) {
  app.post<{ Body: RefreshTokenBody }>(
    '/v1/token/refresh',
    { schema: { body: RefreshBody, response: { 200: TokenAnswer } } },
    async (request, reply) =>
      answer(
        reply,
        await gates.cheap(request.ip, 'refresh', async () => {
          const { outcome, answer: result } = await tokens.refresh(request.body.refreshToken);
          metrics.requests.inc({ route: 'refresh', outcome });
          if (outcome === 'ok') metrics.totals.refreshes++;
          return result;
        }),
      ),
  );

  app.post<{ Body: RefreshTokenBody }>(
    '/v1/logout',
    { schema: { body: RefreshBody } },
    async (request, reply) =>
      answer(
        reply,
        await gates.cheap(request.ip, 'logout', async () => {
          await tokens.logout(request.body.refreshToken);
          return success(undefined, 204);
        }),
      ),
  );
}
