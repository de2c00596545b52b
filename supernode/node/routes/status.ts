import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { isLoopback } from '../../shared/files';
import { NodeStatus, type NodeStatusBody } from '../../status/schemas';
import type { SessionCore } from '../core/sessions';
import type { NodeMetrics } from '../metrics';

const Forbidden = Type.Object({ error: Type.Literal('forbidden'), message: Type.String() });

export interface StatusRouteOptions {
  core: SessionCore;
  metrics: NodeMetrics;
  nodeId: string;
  capacity: number;
}

/**
 * What the operator console shows of this node, as JSON (supernode/status/schemas.ts). Loopback only,
 * as the admin routes: it names the mesh's members and counts this node's users; an operator reaches
 * it on the instance or through SSM port forwarding (docs/console.md).
 */
export async function statusRoutes(
  app: FastifyInstance,
  { core, metrics, nodeId, capacity }: StatusRouteOptions,
) {
  app.get(
    '/status',
    { schema: { response: { 200: NodeStatus, 403: Forbidden } } },
    async (request, reply) => {
      if (!isLoopback(request.socket.remoteAddress)) {
        reply.code(403);
        return { error: 'forbidden', message: 'status is served to loopback only' };
      }
      const mesh = core.mesh;
      const state = core.readyState();
      const body: NodeStatusBody = {
        service: 'node',
        nodeId,
        uptimeS: Math.round(process.uptime()),
        ready: state.ready,
        reasons: state.reasons,
        draining: core.isDraining,
        sessions: core.sessionCount,
        pendingConnections: Math.max(0, core.connectionCount - core.sessionCount),
        users: core.userCount,
        capacity,
        directoryRecords: mesh?.directorySize() ?? 0,
        meshed: mesh !== undefined,
        members: mesh ? [...mesh.members()] : [nodeId],
        links: mesh?.links() ?? [],
        refusals: Object.fromEntries(metrics.stats.refusals),
        disconnects: Object.fromEntries(metrics.stats.disconnects),
      };
      return body;
    },
  );
}
