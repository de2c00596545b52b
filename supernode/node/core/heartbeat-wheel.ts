/**
 * Spreads a once-per-period visit of every member over the period: members sit in `slots` sets, one
 * set is visited per tick, and a full turn of the wheel takes one period. Pinging every session from
 * one timer stalls the event loop for the whole sweep (18,000 ws pings stalled a node 557 ms on the
 * development machine, so 100,000 would stop it for seconds); here each tick pings a slot's share.
 */
export interface WheelMember {
  /** Index of the member's slot; -1 when not on the wheel. */
  heartbeatSlot: number;
}

/** Ticks 10 ms apart, so each tick's share is small (100,000 sessions at 30 s: 33 a tick)... */
const TICK_MS = 10;
/** ...with at most this many slots (longer periods get longer ticks). */
const MAX_SLOTS = 4096;

export class HeartbeatWheel<M extends WheelMember> {
  readonly tickMs: number;
  private readonly slots: Set<M>[];
  /** The slot the next tick visits. */
  private cursor = 0;
  /** Round-robin placement keeps the slots within one member of each other as members join. */
  private placed = 0;

  constructor(periodMs: number) {
    if (!Number.isFinite(periodMs) || periodMs <= 0) throw new RangeError('periodMs must be positive');
    const count = Math.min(MAX_SLOTS, Math.max(1, Math.round(periodMs / TICK_MS)));
    this.slots = Array.from({ length: count }, () => new Set<M>());
    this.tickMs = periodMs / count;
  }

  get size(): number {
    let n = 0;
    for (const slot of this.slots) n += slot.size;
    return n;
  }

  /** Puts `member` on the wheel; its first visit comes within one period. */
  add(member: M): void {
    if (member.heartbeatSlot >= 0) return;
    const index = this.placed++ % this.slots.length;
    this.slots[index].add(member);
    member.heartbeatSlot = index;
  }

  remove(member: M): void {
    if (member.heartbeatSlot < 0) return;
    this.slots[member.heartbeatSlot].delete(member);
    member.heartbeatSlot = -1;
  }

  /** Visits the current slot's members (the visitor may remove them) and moves to the next slot. */
  tick(visit: (member: M) => void): void {
    const slot = this.slots[this.cursor];
    this.cursor = (this.cursor + 1) % this.slots.length;
    for (const member of slot) visit(member);
  }
}
