import dgram from 'node:dgram';
import { closeQuietly } from '../../supernode/stun/udp';
import { RelayPortPool } from '../../supernode/turn/ports';
import { openOptions, RELAY_ENGINES, udpFactory } from './engines';
import { relayPortRange } from './helpers';

describe('RelayPortPool.claim', () => {
  it('hands out every port of the range once, then -1, and a released port again', () => {
    const pool = new RelayPortPool(40_000, 40_009);
    const ports = new Set<number>();
    for (let i = 0; i < 10; i++) ports.add(pool.claim(false, false));
    expect([...ports].sort()).toEqual([...Array(10).keys()].map((i) => 40_000 + i));
    expect(pool.claim(false, false)).toBe(-1);
    pool.release(40_004);
    expect(pool.claim(false, false)).toBe(40_004);
    expect(pool.inUse).toBe(10);
  });

  it('claims even ports, and even ports with a free successor as pairs', () => {
    const pool = new RelayPortPool(40_001, 40_006);
    const even = pool.claim(true, false);
    expect(even % 2).toBe(0);
    const pair = pool.claim(false, true);
    expect(pair % 2).toBe(0);
    expect(pair).not.toBe(even);
    expect(pool.claim(true, false) % 2).toBe(0);
    // All three even ports (and the pair's odd partner) are taken now.
    expect(pool.claim(true, false)).toBe(-1);
    expect(pool.claim(false, true)).toBe(-1);
    expect(pool.inUse).toBe(4);
  });

  it('refuses a range that is not one', () => {
    expect(() => new RelayPortPool(0, 10)).toThrow(RangeError);
    expect(() => new RelayPortPool(10, 9)).toThrow(RangeError);
    expect(() => new RelayPortPool(1, 70_000)).toThrow(RangeError);
  });
});

describe.each(RELAY_ENGINES)('RelayPortPool.bind on %s sockets', (engine) => {
  const openRelay = (port: number) => udpFactory(engine).open('127.0.0.1', port, openOptions);

  it('binds sockets without collisions and steps over a port another process holds', async () => {
    const { minPort, maxPort } = relayPortRange(3);
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(minPort + 1, '127.0.0.1', () => resolve()));
    const pool = new RelayPortPool(minPort, maxPort);
    const bound = [];
    for (let i = 0; i < 2; i++) {
      const relays = await pool.bind({ even: false, pair: false }, openRelay);
      expect(relays).toHaveLength(1);
      bound.push(...(relays ?? []));
    }
    expect(bound.map((b) => b.port).sort()).toEqual([minPort, maxPort]);
    expect(await pool.bind({ even: false, pair: false }, openRelay)).toBeNull();
    for (const relay of bound) relay.socket.close();
    closeQuietly(holder);
  });

  it('binds a pair on consecutive ports', async () => {
    const { minPort, maxPort } = relayPortRange(8);
    const pool = new RelayPortPool(minPort, maxPort);
    const relays = await pool.bind({ even: true, pair: true }, openRelay);
    expect(relays?.map((r) => r.socket.port)).toEqual([relays?.[0].port, (relays?.[0].port ?? 0) + 1]);
    for (const relay of relays ?? []) relay.socket.close();
  });
});
