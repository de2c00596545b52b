/**
 * Starts supernodes as real child processes meshed over loopback: the multi-process tests, the
 * mesh benchmark and the drills all run fleets this way.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

const CLI = join(__dirname, '../bin/supernode.cjs');

export interface FleetNode {
  id: string;
  port: number;
  meshPort: number;
  url: string;
  child?: ChildProcess;
}

/** Ports the OS says are free now (bound to 0 and released: a small race, fine for tests and benchmarks). */
export async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<import('node:net').Server>((resolve, reject) => {
          const server = createServer();
          server.once('error', reject);
          server.listen(0, '127.0.0.1', () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

/** Plans `count` nodes with ports, so every node's static peer list can name all of them. */
export async function planFleet(count: number, prefix = 'n'): Promise<FleetNode[]> {
  const ports = await freePorts(count * 2);
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i + 1}`,
    port: ports[i * 2],
    meshPort: ports[i * 2 + 1],
    url: `ws://127.0.0.1:${ports[i * 2]}`,
  }));
}

export interface StartOptions {
  jwksFile: string;
  secret: string;
  peers: FleetNode[];
  extraEnv?: Record<string, string>;
}

/** Starts one node as a real child process and waits until its /readyz says ready. */
export async function startFleetNode(node: FleetNode, options: StartOptions): Promise<FleetNode> {
  const child = spawn(process.execPath, [CLI, 'node'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      SUPERNODE_NODE_ID: node.id,
      SUPERNODE_PORT: String(node.port),
      SUPERNODE_PUBLIC_URL: node.url,
      SUPERNODE_STUN: 'false',
      SUPERNODE_JWKS_FILE: options.jwksFile,
      SUPERNODE_MESH: 'true',
      SUPERNODE_MESH_PORT: String(node.meshPort),
      SUPERNODE_MESH_SECRET: options.secret,
      SUPERNODE_MESH_PEERS: options.peers.map((p) => `${p.id}@ws://127.0.0.1:${p.meshPort}`).join(','),
      SUPERNODE_MESH_HEARTBEAT_MS: '200',
      // 1 s to declare a member dead: quick for tests, tolerant of a loaded 2-core machine.
      SUPERNODE_MESH_DEAD_AFTER: '5',
      SUPERNODE_LOG_LEVEL: 'error',
      ...options.extraEnv,
    },
  });
  node.child = child;
  await waitReady(`http://127.0.0.1:${node.port}`, 20_000, child);
  return node;
}

/** Polls `<baseUrl>/readyz` until it answers 200; fails early if `child` exits meanwhile. */
export async function waitReady(baseUrl: string, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null)
      throw new Error(`${baseUrl}: process exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${baseUrl}/readyz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${baseUrl} not ready within ${timeoutMs / 1000} s`);
}

export async function metric(node: FleetNode, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text();
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

export function killAll(nodes: FleetNode[]): void {
  for (const node of nodes) node.child?.kill('SIGKILL');
}
