import { HeartbeatWheel } from '../../supernode/node/core/heartbeat-wheel';

const member = (name: string) => ({ name, heartbeatSlot: -1 });
type Member = ReturnType<typeof member>;

function turn(wheel: HeartbeatWheel<Member>, ticks: number): string[] {
  const visited: string[] = [];
  for (let i = 0; i < ticks; i++) wheel.tick((m) => visited.push(m.name));
  return visited;
}

test('a full turn of the wheel is one period, in ticks of 10 ms (longer past 4,096 slots)', () => {
  for (const period of [1000, 30_000, 1234, 300_000]) {
    const wheel = new HeartbeatWheel<Member>(period);
    expect(wheel.tickMs).toBeCloseTo(period / Math.min(4096, Math.round(period / 10)), 6);
    const slots = Math.round(period / wheel.tickMs);
    expect(slots * wheel.tickMs).toBeCloseTo(period, 6);
  }
  expect(() => new HeartbeatWheel(0)).toThrow(RangeError);
});

test('every member is visited once per turn, and each tick visits only its share', () => {
  const wheel = new HeartbeatWheel<Member>(200); // 20 slots
  const members = Array.from({ length: 1000 }, (_, i) => member(`m${i}`));
  for (const m of members) wheel.add(m);
  wheel.add(members[0]); // already on: no second place
  expect(wheel.size).toBe(1000);
  const perTick: number[] = [];
  const visited: string[] = [];
  for (let i = 0; i < 20; i++) {
    let n = 0;
    wheel.tick((m) => {
      visited.push(m.name);
      n++;
    });
    perTick.push(n);
  }
  expect(visited.sort()).toEqual(members.map((m) => m.name).sort());
  expect(Math.max(...perTick)).toBe(50);
  expect(Math.min(...perTick)).toBe(50);
  // The next turn visits them again, in the same order.
  expect(turn(wheel, 20).sort()).toEqual(visited);
});

test('a removed member is not visited, also when removed by the visitor itself', () => {
  const wheel = new HeartbeatWheel<Member>(20); // 2 slots
  const [a, b, c] = [member('a'), member('b'), member('c')];
  for (const m of [a, b, c]) wheel.add(m);
  wheel.remove(b);
  wheel.remove(b); // twice is harmless
  expect(b.heartbeatSlot).toBe(-1);
  const seen: string[] = [];
  wheel.tick((m) => {
    seen.push(m.name);
    wheel.remove(m);
  });
  wheel.tick((m) => seen.push(m.name));
  expect(seen.sort()).toEqual(['a', 'c']);
  expect(turn(wheel, 2)).toEqual([]);
  expect(wheel.size).toBe(0);
});
