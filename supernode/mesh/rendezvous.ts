/**
 * Rendezvous (highest-random-weight) hashing: the R members with the highest weight(key, member) own the
 * key. Every node computes the same owners from the same member list with no coordination, and a member
 * joining or leaving only moves the keys it wins or held (about R/n of them).
 *
 * Hash choice: cyrb53 (bryc, public domain), a 53-bit string hash built from two 32-bit Math.imul lanes.
 * A weight is cyrb53 over the key's characters followed by the member's own 53-bit digest as two more
 * "characters", so the key is hashed once per lookup and each member costs 8 multiplications. Measured on a
 * shared 2-core box (Node 20): 20-35 M weights/s pre-hashed, ~6 M/s for weight() from two strings, ~0.3 M/s
 * for crypto SHA-256 of key + member; owners() over 100 members ~150 k calls/s. 53 bits make ties between
 * members vanishingly rare (broken by id anyway, so owners stay deterministic). It is not keyed: user ids
 * are the usernames people pick, so someone registering many accounts could grind names that one node owns
 * (~n/R tries per name). Account creation is rate-limited; a fleet-wide secret seed would close it.
 * The numbers are part of the mesh protocol: every node must run the same function, so changing it needs a
 * fleet-wide cut-over.
 */

// cyrb53's constants: the two lane multipliers and the two finaliser multipliers.
const P1 = 2654435761;
const P2 = 1597334677;
const F1 = 2246822507;
const F2 = 3266489909;
const TWO_32 = 4294967296;
// Bound once: a global lookup of `Math` per call is 100x slower inside a vm context (Jest's test sandbox).
const imul = Math.imul;

/** A key's hash state before the member is mixed in: compute once per key, combine with every member. */
export interface KeyDigest {
  readonly h1: number;
  readonly h2: number;
}

export function keyDigest(key: string): KeyDigest {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < key.length; i++) {
    const ch = key.charCodeAt(i);
    h1 = imul(h1 ^ ch, P1);
    h2 = imul(h2 ^ ch, P2);
  }
  return { h1, h2 };
}

/** cyrb53's finaliser: spreads both lanes over each other and packs 53 bits into a safe integer. */
function finish(a: number, b: number): number {
  let h1 = imul(a ^ (a >>> 16), F1);
  h1 ^= imul(b ^ (b >>> 13), F2);
  let h2 = imul(b ^ (b >>> 16), F1);
  h2 ^= imul(h1 ^ (h1 >>> 13), F2);
  return TWO_32 * (2097151 & h2) + (h1 >>> 0);
}

/** A member's 53-bit digest (plain cyrb53 of its id): compute once per membership change. */
export function memberDigest(memberId: string): number {
  const k = keyDigest(memberId);
  return finish(k.h1, k.h2);
}

/** The weight of a pre-hashed key on a pre-hashed member: equals weight(key, memberId). */
export function combine(key: KeyDigest, member: number): number {
  const lo = member >>> 0;
  const hi = (member / TWO_32) | 0;
  const h1 = imul(imul(key.h1 ^ lo, P1) ^ hi, P1);
  const h2 = imul(imul(key.h2 ^ lo, P2) ^ hi, P2);
  return finish(h1, h2);
}

/** A non-negative integer below 2^53; the same on every process and platform. */
export function weight(key: string, memberId: string): number {
  return combine(keyDigest(key), memberDigest(memberId));
}

// Member ids repeat on every call (the live member list changes rarely), so their digests are cached.
// Bounded so that a stream of distinct ids cannot grow it without limit.
const MEMBER_CACHE_MAX = 4096;
const memberCache = new Map<string, number>();

function cachedMemberDigest(memberId: string): number {
  let d = memberCache.get(memberId);
  if (d === undefined) {
    if (memberCache.size >= MEMBER_CACHE_MAX) memberCache.clear();
    d = memberDigest(memberId);
    memberCache.set(memberId, d);
  }
  return d;
}

/**
 * The owners of `key`: the `replicas` members with the highest weight, best first, without duplicates
 * (a repeated id counts once); fewer when there are fewer members. Equal weights go to the smaller id.
 */
export function owners(key: string, memberIds: readonly string[], replicas: number): string[] {
  if (!Number.isInteger(replicas) || replicas < 1) {
    throw new RangeError(`replicas must be a positive integer; got ${replicas}`);
  }
  const k = keyDigest(key);
  const ids: string[] = [];
  const weights: number[] = [];
  for (const id of memberIds) {
    const w = combine(k, cachedMemberDigest(id));
    // Insertion into a list of at most `replicas` entries: R is tiny, so this beats sorting n weights.
    let pos = ids.length;
    while (pos > 0 && (w > weights[pos - 1] || (w === weights[pos - 1] && id < ids[pos - 1]))) pos--;
    if (pos >= replicas || (pos > 0 && ids[pos - 1] === id)) continue;
    ids.splice(pos, 0, id);
    weights.splice(pos, 0, w);
    if (ids.length > replicas) {
      ids.pop();
      weights.pop();
    }
  }
  return ids;
}
