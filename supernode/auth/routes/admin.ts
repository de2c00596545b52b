import { createHash } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { isLoopback } from '../../shared/files';
import type { Accounts } from '../core/accounts';
import { refusal } from '../core/outcome';
import { UsernameParams, type UsernameParamsOf } from '../schemas';
import { answer } from './reply';

/** Admin routes: with an admin token configured, a bearer of it; without one, loopback callers only. */
export async function adminRoutes(
  app: FastifyInstance,
  { accounts, adminToken }: { accounts: Accounts; adminToken: string | undefined },
) {
  app.post<{ Params: UsernameParamsOf }>(
    '/v1/admin/accounts/:username/disable',
    { schema: { params: UsernameParams } },
    async (request, reply) => {
      if (!isAdmin(request, adminToken))
        return answer(reply, refusal(403, 'forbidden', 'admin credentials required'));
      return answer(reply, await accounts.disable(request.params.username));
    },
  );
}

/** Also the rule of GET /status (routes/status.ts). */
export function isAdmin(request: FastifyRequest, adminToken: string | undefined): boolean {
  if (adminToken) {
    const header = request.headers.authorization ?? '';
    const expected = `Bearer ${adminToken}`;
    // Compared as hashes, so the time taken says nothing about how much of the token was right.
    return (
      header.length === expected.length &&
      createHash('sha256').update(header).digest().equals(createHash('sha256').update(expected).digest())
    );
  }
  return isLoopback(request.socket.remoteAddress);
}
