/**
 * Who may see the console: loopback clients, or the bearer of the admin token (docs/console.md).
 * Scripts send `Authorization: Bearer <token>`. A browser cannot put a header on an EventSource, so it
 * opens `/console?token=<token>` once: the answer sets an HttpOnly cookie and redirects to the same
 * page without the token, which thus stays out of the address bar, history and access logs.
 */
import { createHash } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { isLoopback } from '../shared/files';

export const TOKEN_COOKIE = 'supernode_console';

/** Compared as hashes, so the time taken says nothing about how much of the token was right. */
function sameSecret(given: string, expected: string): boolean {
  const hash = (text: string) => createHash('sha256').update(text).digest();
  return hash(given).equals(hash(expected));
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

export type Access = 'allowed' | 'token_in_query' | 'forbidden';

/** What to do with a request to /console*, from its peer address and what it presents. */
export function accessOf(request: FastifyRequest, adminToken: string | undefined): Access {
  // The socket's peer, never X-Forwarded-For: a header is whatever the client writes.
  if (isLoopback(request.socket.remoteAddress)) return 'allowed';
  if (!adminToken) return 'forbidden';
  const header = request.headers.authorization;
  if (header?.startsWith('Bearer ') && sameSecret(header.slice(7), adminToken)) return 'allowed';
  const cookie = cookieValue(request.headers.cookie, TOKEN_COOKIE);
  if (cookie !== undefined && sameSecret(cookie, adminToken)) return 'allowed';
  const query = (request.query as Record<string, unknown> | undefined)?.token;
  if (typeof query === 'string' && sameSecret(query, adminToken)) return 'token_in_query';
  return 'forbidden';
}

/** An onRequest hook for the console's routes: lets the request through, or answers it. */
export function guardConsole(adminToken: string | undefined) {
  return async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const access = accessOf(request, adminToken);
    if (access === 'allowed') return;
    if (access === 'token_in_query') {
      const url = new URL(request.url, 'http://console.invalid');
      url.searchParams.delete('token');
      reply
        .header(
          'set-cookie',
          `${TOKEN_COOKIE}=${adminToken}; Path=/console; HttpOnly; SameSite=Strict; Max-Age=43200`,
        )
        .header('cache-control', 'no-store')
        .redirect(`${url.pathname}${url.search}`, 303);
      return reply;
    }
    reply.code(403).header('cache-control', 'no-store');
    await reply.send({
      error: 'forbidden',
      message: 'the console answers loopback clients, or the bearer of its admin token (see docs/console.md)',
    });
    return reply;
  };
}
