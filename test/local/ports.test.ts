import dgram from 'node:dgram';
import { createServer } from 'node:net';
import { freePortRun } from '../../supernode/local/fleet';
import { clashes, type PortUse, portProblem } from '../../supernode/local/ports';

test('a port given to two components is named with both options', () => {
  const uses: PortUse[] = [
    { port: 7001, protocol: 'tcp', what: 'supernode local-1', option: 'basePort' },
    { port: 7002, protocol: 'tcp', what: 'the mesh of supernode local-1', option: 'meshBasePort' },
    { port: 7002, protocol: 'tcp', what: 'supernode local-2', option: 'basePort' },
    // The same number on UDP is another port.
    { port: 7001, protocol: 'udp', what: 'STUN of supernode local-1', option: 'stunPort' },
  ];
  expect(clashes(uses)).toEqual([
    'TCP 7002 is given to both the mesh of supernode local-1 (--mesh-base-port or SUPERNODE_LOCAL_MESH_BASE_PORT) and supernode local-2 (--base-port or SUPERNODE_LOCAL_BASE_PORT)',
  ]);
});

test('a port held by another process is found busy, on TCP and on UDP, and a free one is not', async () => {
  const [tcp, udp, free] = [await freePortRun(1), await freePortRun(1, 'udp'), await freePortRun(1)];
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(tcp, '127.0.0.1', resolve));
  const socket = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(udp, '127.0.0.1', resolve));
  try {
    const use = (port: number, protocol: 'tcp' | 'udp'): PortUse => ({
      port,
      protocol,
      what: 'x',
      option: 'basePort',
    });
    expect(await portProblem('127.0.0.1', use(tcp, 'tcp'))).toBe('is already in use');
    expect(await portProblem('127.0.0.1', use(udp, 'udp'))).toBe('is already in use');
    expect(await portProblem('127.0.0.1', use(free, 'tcp'))).toBeUndefined();
    // The check releases what it bound: the port stays usable.
    expect(await portProblem('127.0.0.1', use(free, 'tcp'))).toBeUndefined();
  } finally {
    await new Promise((resolve) => server.close(resolve));
    await new Promise<void>((resolve) => socket.close(resolve));
  }
});
