/**
 * The JSON of `GET /status` on a supernode and on the auth service: what the operator console reads.
 * One definition for both ends: the services declare it as their response schema, the console
 * validates every answer against it (a node answering something else is shown as "bad data").
 * Its own folder, below the services and the console, because neither may import the other.
 */
import { type Static, type TSchema, Type } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';

const Count = Type.Integer({ minimum: 0 });
const Id = Type.String({ minLength: 1, maxLength: 256 });
/** Counts by a short label (a refusal reason, a shed reason): a bounded set, a bounded size. */
const Counts = Type.Record(Type.String({ pattern: '^[a-z0-9_:.-]{1,64}$' }), Count, { maxProperties: 64 });

export const MeshLinkState = Type.Union([
  // Authenticated and heard from within the dead-after window: the peer counts as a live member.
  Type.Literal('live'),
  // This node is dialling it, or the socket is open but not (or no longer) heartbeating.
  Type.Literal('connecting'),
  // Known from discovery, no link (the larger id waits for the smaller to dial).
  Type.Literal('down'),
]);

export const NodeStatus = Type.Object(
  {
    service: Type.Literal('node'),
    nodeId: Id,
    uptimeS: Count,
    ready: Type.Boolean(),
    /** Why not ready: keys_not_loaded, mesh_not_ready, draining, full. */
    reasons: Type.Array(Type.String({ maxLength: 64 }), { maxItems: 16 }),
    draining: Type.Boolean(),
    sessions: Count,
    /** Connections not yet authenticated (they count against capacity too). */
    pendingConnections: Count,
    users: Count,
    capacity: Count,
    /** Presence records this node holds as an owner (0 when not meshed). */
    directoryRecords: Count,
    meshed: Type.Boolean(),
    /** Live mesh members, this node included, sorted. */
    members: Type.Array(Id, { maxItems: 1024 }),
    links: Type.Array(
      Type.Object(
        {
          peer: Id,
          state: MeshLinkState,
          /** Milliseconds since the peer was last heard; null if never. */
          lastHeardMsAgo: Type.Union([Count, Type.Null()]),
        },
        { additionalProperties: false },
      ),
      { maxItems: 1024 },
    ),
    /** New sessions refused since the node started, by reason. */
    refusals: Counts,
    /** Established sessions ended by the node since it started, by reason. */
    disconnects: Counts,
  },
  { additionalProperties: false },
);

export const AuthStatus = Type.Object(
  {
    service: Type.Literal('auth'),
    uptimeS: Count,
    hashPool: Type.Object(
      {
        /** Hashes at once (the pool's size). */
        concurrency: Count,
        maxQueue: Count,
        inFlight: Count,
        queued: Count,
        /** Recent duration of one hash, ms. */
        runMsEwma: Type.Number({ minimum: 0 }),
        /** C, the hash capacity: concurrency / duration of one hash, logins per second. */
        capacityPerSec: Type.Number({ minimum: 0 }),
        completed: Count,
        failed: Count,
      },
      { additionalProperties: false },
    ),
    /** Password-class requests since start: admitted to a hash slot, succeeded, shed before any work. */
    logins: Type.Object(
      { admitted: Count, succeeded: Count, shed: Count, refreshes: Count },
      { additionalProperties: false },
    ),
    /** Requests refused before any work, by `class:reason` (login:queue_full, cheap:ip_rate...). */
    shed: Counts,
    /** Requests answered with a refusal, by outcome (invalid, locked, store_unavailable...), all routes. */
    refusals: Counts,
  },
  { additionalProperties: false },
);

export type NodeStatusBody = Static<typeof NodeStatus>;
export type AuthStatusBody = Static<typeof AuthStatus>;
export type MeshLinkStateOf = Static<typeof MeshLinkState>;

/** A compiled check: the value typed if it matches, else the first mismatch in words. */
export type StatusCheck<T> = (value: unknown) => { ok: true; value: T } | { ok: false; problem: string };

function compile<S extends TSchema>(schema: S): StatusCheck<Static<S>> {
  const check = TypeCompiler.Compile(schema);
  return (value) => {
    if (check.Check(value)) return { ok: true, value: value as Static<S> };
    const first = check.Errors(value).First();
    return { ok: false, problem: first ? `${first.path || '/'}: ${first.message}` : 'does not match' };
  };
}

export const checkNodeStatus = compile(NodeStatus);
export const checkAuthStatus = compile(AuthStatus);
