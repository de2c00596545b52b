import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import {
  generateSigningKey,
  publicJwks,
  type SigningKey,
  signAccessToken,
} from '../../supernode/auth/signing';
import { SupernodeSession } from '../../supernode/client/session';
import { buildSupernode, type Supernode, type SupernodeOptions } from '../../supernode/node/server';
import { SESSION_PATH } from '../../supernode/protocol/messages';

export interface TestKeys {
  key: SigningKey;
  dir: string;
  jwksFile: string;
  mint(user: string, options?: { ttlSec?: number; aud?: string; key?: SigningKey }): Promise<string>;
  cleanup(): Promise<void>;
}

/** A signing key and its public set in a temporary file, as the auth service would publish it. */
export async function makeTestKeys(): Promise<TestKeys> {
  const dir = await mkdtemp(join(tmpdir(), 'supernode-test-'));
  const key = await generateSigningKey();
  const jwksFile = join(dir, 'jwks.json');
  await writeFile(jwksFile, JSON.stringify(publicJwks([key])));
  return {
    key,
    dir,
    jwksFile,
    mint: (user, options = {}) =>
      signAccessToken(options.key ?? key, {
        sub: user,
        aud: options.aud ?? 'supernode',
        ttlSec: options.ttlSec ?? 600,
      }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
}

export interface RunningNode {
  node: Supernode;
  url: string;
  port: number;
  stunPort?: number;
}

export async function startTestNode(keys: TestKeys, options: SupernodeOptions = {}): Promise<RunningNode> {
  const node = buildSupernode({
    host: '127.0.0.1',
    port: 0,
    stun: false,
    jwksFile: keys.jwksFile,
    logLevel: 'silent',
    nodeId: 'test-node',
    ...options,
  });
  const { port, stunPort } = await node.listen();
  // Tests dial the listener itself; the advertised public URL may name another host.
  return { node, url: `ws://127.0.0.1:${port}`, port, stunPort };
}

export async function connectAs(
  running: RunningNode,
  keys: TestKeys,
  user: string,
  extra: { endpoints?: { address: string; port: number }[] } = {},
): Promise<SupernodeSession> {
  return SupernodeSession.connect({
    url: running.url,
    token: await keys.mint(user),
    endpoints: extra.endpoints,
  });
}

/** Resolves when `predicate` holds, polling; rejects after `timeoutMs`. */
export async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export interface RawConnection {
  socket: WebSocket;
  messages: Array<Record<string, unknown>>;
  binary: Buffer[];
  closed: Promise<{ code: number; reason: string }>;
  next(): Promise<Record<string, unknown>>;
}

/** A bare WebSocket to the session path, for tests that speak the protocol by hand. */
export function rawConnect(running: RunningNode): Promise<RawConnection> {
  const socket = new WebSocket(`${running.url}${SESSION_PATH}`);
  const messages: Array<Record<string, unknown>> = [];
  const binary: Buffer[] = [];
  const waiters: Array<(m: Record<string, unknown>) => void> = [];
  socket.on('message', (data, isBinary) => {
    if (isBinary) {
      binary.push(data as Buffer);
      return;
    }
    const message = JSON.parse(data.toString()) as Record<string, unknown>;
    const waiter = waiters.shift();
    if (waiter) waiter(message);
    else messages.push(message);
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  socket.on('error', () => {});
  const next = (): Promise<Record<string, unknown>> => {
    const queued = messages.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => waiters.push(resolve));
  };
  return new Promise((resolve, reject) => {
    socket.once('open', () => resolve({ socket, messages, binary, closed, next }));
    socket.once('error', reject);
  });
}
