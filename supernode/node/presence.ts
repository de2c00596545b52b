import type { Endpoint } from '../protocol/messages';

/** What presence needs of a session; the server's Session class provides it. */
export interface PresenceEntry {
  readonly userId: string;
  endpoints: Endpoint[];
}

/**
 * This node's sessions by user: the source of truth for who is homed here. A user may hold up to
 * `maxPerUser` sessions (devices); the next one replaces the oldest, which the caller then closes.
 */
export class PresenceRegistry<S extends PresenceEntry> {
  private readonly byUser = new Map<string, S[]>();
  private sessionCount = 0;

  constructor(private readonly maxPerUser: number) {}

  /** Registers `session`; returns the session it displaced, if the user was at the limit. */
  add(session: S): S | undefined {
    const list = this.byUser.get(session.userId);
    this.sessionCount++;
    if (!list) {
      this.byUser.set(session.userId, [session]);
      return undefined;
    }
    list.push(session);
    if (list.length <= this.maxPerUser) return undefined;
    this.sessionCount--;
    return list.shift();
  }

  remove(session: S): boolean {
    const list = this.byUser.get(session.userId);
    const index = list ? list.indexOf(session) : -1;
    if (!list || index < 0) return false;
    list.splice(index, 1);
    if (list.length === 0) this.byUser.delete(session.userId);
    this.sessionCount--;
    return true;
  }

  sessionsOf(userId: string): readonly S[] | undefined {
    return this.byUser.get(userId);
  }

  /** Advertised endpoints of all of a user's sessions, newest first, without duplicates. */
  endpointsOf(userId: string, limit: number): Endpoint[] {
    const list = this.byUser.get(userId);
    if (!list) return [];
    const seen = new Set<string>();
    const out: Endpoint[] = [];
    for (let i = list.length - 1; i >= 0 && out.length < limit; i--) {
      for (const endpoint of list[i].endpoints) {
        const key = `${endpoint.address}|${endpoint.port}|${endpoint.kind ?? ''}`;
        if (seen.has(key) || out.length >= limit) continue;
        seen.add(key);
        out.push(endpoint);
      }
    }
    return out;
  }

  get size(): number {
    return this.sessionCount;
  }

  get users(): number {
    return this.byUser.size;
  }

  userIds(): IterableIterator<string> {
    return this.byUser.keys();
  }

  *all(): IterableIterator<S> {
    for (const list of this.byUser.values()) yield* list;
  }
}
