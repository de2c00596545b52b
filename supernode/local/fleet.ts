/**
 * Starts supernodes as real child processes meshed over loopback: the multi-process tests, the
 * mesh benchmark and the drills all run fleets this way.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { sampleOf } from '../shared/prometheus';

const CLI = join(__dirname, '../bin/supernode.cjs');

export interface FleetNode {
  id: string;
  port: number;
  meshPort: number;
  url: string;
  child?: ChildProcess;
}

const PORT_RANGE_START = 20_000;
const PORT_RANGE_SIZE = 12_000;
/** Jest runs at most this many workers here; each gets its own slice of the range. */
const PORT_SLICES = 4;
/** Ports this process handed out, not handed out again: a caller binds them only later. */
const handedOut = new Set<number>();

/**
 * Free ports below the OS's ephemeral range (32768+), checked by binding each. Not bind(0): fleets
 * restart nodes on the same ports, and a port the OS hands out for bind(0) could meanwhile be given
 * to a server of another test or process running in parallel. Two guards against handing one port to
 * two servers: a port is never handed out twice by one process (a tier plans its auth port and its
 * nodes' ports before any of them listens), and each Jest worker draws from its own slice of the range
 * (two workers checking the same port before either binds it once failed CI with EADDRINUSE).
 */
export async function freePorts(count: number): Promise<number[]> {
  const ports: number[] = [];
  while (ports.length < count) ports.push(await freePortRun(1));
  return ports;
}

/** The first of `count` consecutive free ports (the local tier numbers its nodes' ports from a base). */
export async function freePortRun(count: number, protocol: 'tcp' | 'udp' = 'tcp'): Promise<number> {
  const worker = Number(process.env.JEST_WORKER_ID);
  const sliced = Number.isInteger(worker) && worker > 0;
  const sliceSize = sliced ? PORT_RANGE_SIZE / PORT_SLICES : PORT_RANGE_SIZE;
  const sliceStart = PORT_RANGE_START + (sliced ? ((worker - 1) % PORT_SLICES) * sliceSize : 0);
  // A long-lived process may come back round to its first ports; they are closed by then.
  if (handedOut.size + count > sliceSize / 2) handedOut.clear();
  for (;;) {
    const base = sliceStart + Math.floor(Math.random() * (sliceSize - count + 1));
    const run = Array.from({ length: count }, (_, i) => base + i);
    if (run.some((port) => handedOut.has(port))) continue;
    for (const port of run) handedOut.add(port);
    const free = await Promise.all(run.map(protocol === 'tcp' ? tcpFree : udpFree));
    if (free.every(Boolean)) return base;
  }
}

function tcpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

function udpFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    socket.once('error', () => {
      socket.close();
      resolve(false);
    });
    socket.bind(port, '127.0.0.1', () => socket.close(() => resolve(true)));
  });
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
  /** Node flags of the process (e.g. a benchmark's --cpu-prof). */
  execArgv?: string[];
}

/** Starts one node as a real child process and waits until its /readyz says ready. */
export async function startFleetNode(node: FleetNode, options: StartOptions): Promise<FleetNode> {
  const child = spawn(process.execPath, [...(options.execArgv ?? []), CLI, 'node'], {
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
    // A process killed by a signal has no exit code, only a signal code.
    if (child && (child.exitCode !== null || child.signalCode !== null))
      throw new Error(`${baseUrl}: process exited with ${child.exitCode ?? child.signalCode}`);
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
  return sampleOf(await (await fetch(`http://127.0.0.1:${node.port}/metrics`)).text(), name);
}

export function killAll(nodes: FleetNode[]): void {
  for (const node of nodes) node.child?.kill('SIGKILL');
}
