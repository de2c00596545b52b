export interface MemberAddress {
  id: string;
  meshUrl: string;
}

export interface Discovery {
  /** Current members sorted by id (possibly including this node); the last known list while rounds fail. */
  members(): readonly MemberAddress[];
  /** Whether at least one discovery round has succeeded (readiness depends on it). */
  readonly ready: boolean;
  /** Runs the first round (never throws), then keeps the list fresh until stop(). */
  start(): Promise<void>;
  stop(): void;
}

/** Sorted by id, one entry per id (the first wins), frozen: callers may keep and compare snapshots. */
export function normalise(members: readonly MemberAddress[]): readonly MemberAddress[] {
  const byId = new Map<string, MemberAddress>();
  for (const m of members)
    if (!byId.has(m.id)) byId.set(m.id, Object.freeze({ id: m.id, meshUrl: m.meshUrl }));
  return Object.freeze([...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)));
}

export function sameMembers(a: readonly MemberAddress[], b: readonly MemberAddress[]): boolean {
  return a.length === b.length && a.every((m, i) => m.id === b[i].id && m.meshUrl === b[i].meshUrl);
}

/** A fixed member list (local runs and tests): ready at once, never changes. */
export class StaticDiscovery implements Discovery {
  readonly ready = true;
  private readonly list: readonly MemberAddress[];

  constructor(members: MemberAddress[]) {
    this.list = normalise(members);
  }

  members(): readonly MemberAddress[] {
    return this.list;
  }

  async start(): Promise<void> {}

  stop(): void {}
}

/** The part of `Logger` (supernode/log.ts) that discovery uses. */
