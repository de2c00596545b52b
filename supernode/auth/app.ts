/**
 * The auth service as a Fastify plugin: typed errors for every bad request, then one route file per
 * concern. What the routes decide is in core/ (accounts, lockout, tokens, admission).
 */
import cors from '@fastify/cors';
import type { FastifyError, FastifyInstance } from 'fastify';
import type { Accounts } from './core/accounts';
import type { HashPool } from './core/admission';
import type { Gates } from './core/gates';
import { refusal } from './core/outcome';
import type { RevocationPublisher } from './core/revocations';
import type { TokenIssuer } from './core/tokens';
import type { KeyRing } from './key-ring';
import type { AuthMetrics } from './metrics';
import { accountRoutes } from './routes/accounts';
import { adminRoutes } from './routes/admin';
import { healthRoutes } from './routes/health';
import { keyRoutes } from './routes/keys';
import { metricsRoutes } from './routes/metrics';
import { answer } from './routes/reply';
import { statusRoutes } from './routes/status';
import { tokenRoutes } from './routes/tokens';
import { validationMessage } from './schemas';

export const MAX_BODY_BYTES = 4096;

export interface AuthAppOptions {
  accounts: Accounts;
  tokens: TokenIssuer;
  gates: Gates;
  keys: KeyRing;
  revocations: RevocationPublisher;
  pool: HashPool;
  metrics: AuthMetrics;
  hashQueue: number;
  adminToken: string | undefined;
  /** Origins allowed to call from a browser (--cors-origins); none: no CORS headers at all. */
  corsOrigins?: readonly string[];
}

export async function authApp(app: FastifyInstance, options: AuthAppOptions): Promise<void> {
  // JSON only: a text/plain body is a wrong content type, not a string to validate.
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) {
      const message = validationMessage(
        error.validation,
        error.validationContext ?? 'request',
        error.message,
      );
      return reply.send(answer(reply, refusal(400, 'bad_request', message)));
    }
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.send(
          answer(reply, refusal(413, 'payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`)),
        );
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply.send(answer(reply, refusal(415, 'unsupported_media_type', 'send application/json')));
    }
    if ((error.statusCode ?? 500) < 500)
      return reply.send(answer(reply, refusal(error.statusCode ?? 400, 'bad_request', error.message)));
    request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
    return reply.send(answer(reply, refusal(500, 'internal', 'internal error')));
  });
  app.setNotFoundHandler((_request, reply) =>
    reply.send(answer(reply, refusal(404, 'not_found', 'no such route'))),
  );

  // Before the routes, so a preflight is answered before any of them (and their error handling) runs.
  if (options.corsOrigins?.length) {
    await app.register(cors, { origin: [...options.corsOrigins], methods: ['GET', 'POST'], maxAge: 600 });
  }
  await app.register(healthRoutes, { pool: options.pool, hashQueue: options.hashQueue });
  await app.register(metricsRoutes, { metrics: options.metrics });
  await app.register(keyRoutes, {
    keys: options.keys,
    revocations: options.revocations,
    gates: options.gates,
  });
  await app.register(accountRoutes, {
    accounts: options.accounts,
    gates: options.gates,
    metrics: options.metrics,
  });
  await app.register(tokenRoutes, { tokens: options.tokens, gates: options.gates, metrics: options.metrics });
  await app.register(adminRoutes, { accounts: options.accounts, adminToken: options.adminToken });
  await app.register(statusRoutes, {
    pool: options.pool,
    metrics: options.metrics,
    hashQueue: options.hashQueue,
    adminToken: options.adminToken,
  });
}
// Not encapsulated (what fastify-plugin does): the error and not-found handlers, the content-type rule
// and the routes belong to the root instance, which server.ts listens with.
Object.assign(authApp, { [Symbol.for('skip-override')]: true });
