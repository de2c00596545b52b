import type { FastifyInstance } from 'fastify';
import type { Gates } from '../core/gates';
import type { RevocationPublisher } from '../core/revocations';
import type { KeyRing } from '../key-ring';
import { answer } from './reply';

export interface KeyRouteOptions {
  keys: KeyRing;
  revocations: RevocationPublisher;
  gates: Gates;
}

/** What supernodes poll: the public keys and the revocation list (also published as files and to S3). */
export async function keyRoutes(app: FastifyInstance, { keys, revocations, gates }: KeyRouteOptions) {
  app.get('/.well-known/jwks.json', async (request, reply) => {
    const limited = gates.readRate(request.ip);
    if (limited) return answer(reply, limited);
    // Supernodes re-read every minute; a CDN or proxy may serve this for as long.
    reply.header('cache-control', 'public, max-age=60').type('application/json');
    return keys.jwks();
  });

  app.get('/v1/revocations', async (request, reply) => {
    const limited = gates.readRate(request.ip);
    if (limited) return answer(reply, limited);
    reply.header('cache-control', 'public, max-age=5').type('application/json');
    return revocations.text;
  });
}
