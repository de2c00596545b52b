import type { FastifyReply } from 'fastify';
import type { Outcome } from '../core/outcome';

/** Sends what the core decided: the body, or `{ error, message[, retryAfterMs] }` with Retry-After. */
export function answer(reply: FastifyReply, outcome: Outcome): object | undefined {
  reply.code(outcome.status);
  if (outcome.ok) return outcome.body;
  const { error, message, retryAfterMs } = outcome;
  if (retryAfterMs === undefined) return { error, message };
  reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
  return { error, message, retryAfterMs };
}
