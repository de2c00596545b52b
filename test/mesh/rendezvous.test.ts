import { runDirectorySimulation } from '../../bench/directory-sim';
import { combine, keyDigest, memberDigest, owners, weight } from '../../supernode/mesh/rendezvous';

const members = Array.from(
  { length: 10 },
  (_, i) => `i-0${(0xa1b2c3 + i * 7919).toString(16).padStart(16, '0')}`,
);
const keys = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

describe('rendezvous hashing', () => {
  it('is deterministic, with pinned values so that a change to the function cannot go unnoticed', () => {
    expect(owners('alice', members, 2)).toEqual(owners('alice', [...members].reverse(), 2));
    expect(weight('alice', 'node-a')).toBe(weight('alice', 'node-a'));
    // Every node of a mixed-version fleet must agree: these figures are part of the mesh protocol.
    expect(weight('alice', 'node-a')).toBe(651871341025341);
    expect(weight('', '')).toBe(85174378261302);
    expect(weight('bob', 'node-a')).not.toBe(weight('alice', 'node-a'));
    expect(weight('alice', 'node-b')).not.toBe(weight('alice', 'node-a'));
  });

  it('gives safe integers, and the pre-hashed path gives the same weights', () => {
    for (const key of ['', 'a', 'user-1', 'ünï©ødé-🙂', 'x'.repeat(500)]) {
      for (const m of members) {
        const w = weight(key, m);
        expect(Number.isSafeInteger(w) && w >= 0).toBe(true);
        expect(combine(keyDigest(key), memberDigest(m))).toBe(w);
      }
    }
  });

  it('orders owners by weight, best first, and they are distinct', () => {
    const wrong: string[] = [];
    for (const key of keys.slice(0, 500)) {
      const got = owners(key, members, 3);
      const expected = [...members].sort((a, b) => weight(key, b) - weight(key, a)).slice(0, 3);
      if (got.join() !== expected.join() || new Set(got).size !== 3) wrong.push(key);
    }
    expect(wrong).toEqual([]);
  });

  it('counts a repeated member once', () => {
    const withDuplicates = [...members, ...members, members[0]];
    const wrong = keys.filter(
      (key) => owners(key, withDuplicates, 4).join() !== owners(key, members, 4).join(),
    );
    expect(wrong).toEqual([]);
    expect(owners('k', ['a', 'a', 'a'], 2)).toEqual(['a']);
  });

  it('caps R at the member count and rejects a bad R', () => {
    expect(owners('k', members.slice(0, 1), 2)).toEqual([members[0]]);
    expect(owners('k', members, 50)).toHaveLength(10);
    expect(owners('k', [], 2)).toEqual([]);
    expect(() => owners('k', members, 0)).toThrow(RangeError);
    expect(() => owners('k', members, 1.5)).toThrow(RangeError);
  });

  it('balances first owners: each of 10 members leads 1000 ± 15% of 10,000 keys', () => {
    const counts = new Map<string, number>(members.map((m) => [m, 0]));
    for (const key of keys) {
      const [first] = owners(key, members, 1);
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    for (const count of counts.values()) {
      expect(count).toBeGreaterThanOrEqual(850);
      expect(count).toBeLessThanOrEqual(1150);
    }
  });

  it('removing a member changes only the keys it owned, each by exactly that member', () => {
    const removed = members[3];
    const rest = members.filter((m) => m !== removed);
    let affected = 0;
    const wrong: string[] = [];
    for (const key of keys) {
      const before = owners(key, members, 2);
      const after = owners(key, rest, 2);
      if (!before.includes(removed)) {
        if (after.join() !== before.join()) wrong.push(key);
        continue;
      }
      affected++;
      // The surviving owner stays; the next member in the ranking takes the departed one's place.
      const survivor = before.find((m) => m !== removed);
      const newcomer = after.find((m) => m !== survivor);
      if (
        after.length !== 2 ||
        !survivor ||
        !after.includes(survivor) ||
        !newcomer ||
        before.includes(newcomer)
      ) {
        wrong.push(key);
      }
    }
    expect(wrong).toEqual([]);
    // R/n = 2/10 of the keys, within 15%.
    expect(affected).toBeGreaterThan(2000 * 0.85);
    expect(affected).toBeLessThan(2000 * 1.15);
  });

  it('adding a member moves about R/(n+1) of the keys, all to the newcomer', () => {
    const added = 'i-0newcomer';
    const grown = [...members, added];
    let moved = 0;
    const wrong: string[] = [];
    for (const key of keys) {
      const before = owners(key, members, 2);
      const after = owners(key, grown, 2);
      if (!after.includes(added)) {
        if (after.join() !== before.join()) wrong.push(key);
        continue;
      }
      moved++;
      // The newcomer displaces exactly one old owner; the other stays.
      const kept = after.filter((m) => m !== added);
      if (kept.length !== 1 || !before.includes(kept[0])) wrong.push(key);
    }
    expect(wrong).toEqual([]);
    const expected = (keys.length * 2) / 11;
    expect(moved).toBeGreaterThan(expected * 0.85);
    expect(moved).toBeLessThan(expected * 1.15);
  });
});

describe('directory simulation (bench/directory-sim.ts), small', () => {
  it('counts what HRW promises: R(1 - 1/n) messages per register, only the changed node moves records', () => {
    const r = runDirectorySimulation({ nodes: 20, users: 20_000, replicas: 2, seed: 7 });
    expect(r.crossChecked).toBe(1000);
    expect(r.register.mean).toBeCloseTo(2 - 2 / 20, 1);
    expect(r.join.unexpected + r.leave.unexpected).toBe(0);
    expect(r.join.fractionOfKeys).toBeGreaterThan((2 / 21) * 0.85);
    expect(r.join.fractionOfKeys).toBeLessThan((2 / 21) * 1.15);
    // Every user whose owners changed on a join gets exactly one record to the newcomer.
    expect(r.join.recordsMoved + r.join.local).toBe(r.join.keysChanged);
    expect(r.leave.recordsMoved + r.leave.local).toBe(r.leave.keysChanged);
    expect(r.leave.purgedUsers).toBeGreaterThan(1000 * 0.85);
    expect(r.leave.purgedUsers).toBeLessThan(1000 * 1.15);
  });
});
