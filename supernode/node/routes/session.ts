import type { FastifyInstance } from 'fastify';
import { SESSION_PATH } from '../../protocol/messages';
import type { SessionCore } from '../core/sessions';

/** The session endpoint: each upgraded socket goes straight to the core. */
export async function sessionRoutes(app: FastifyInstance, { core }: { core: SessionCore }): Promise<void> {
  app.get(SESSION_PATH, { websocket: true }, (socket) => core.accept(socket));
}
