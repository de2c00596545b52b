/**
 * Hostile callers of the admin routes: the node's POST /admin/drain and the auth service's account
 * disable. From anywhere but loopback (or without the admin token, when one is set) they are refused,
 * and nothing changes for the good clients.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys } from '../helpers/node';
import { type ControlPair, controlPair } from './hostile';

/** An address of this machine that is not loopback, to call from "elsewhere"; undefined if there is none. */
const outside = Object.values(networkInterfaces())
  .flat()
  .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
const withOutside = outside ? it : it.skip;

const ADMIN_TOKEN = 'admin-token-for-the-hostile-suite-0123456789';

let keys: TestKeys;
let running: RunningNode;
let control: ControlPair;
let dataDir: string;
const services: AuthService[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  // Listening on every address, as in AWS, so the same node can be called from loopback and from outside.
  running = await startTestNode(keys, { host: '0.0.0.0' });
  control = await controlPair({ a: running }, (user) => keys.mint(user));
  dataDir = await mkdtemp(join(tmpdir(), 'hostile-admin-'));
});
afterAll(async () => {
  await control.close();
  await running.node.close();
  await Promise.all(services.map((s) => s.close()));
  await rm(dataDir, { recursive: true, force: true });
  await keys.cleanup();
});

async function auth(options: { adminToken?: string }): Promise<{ service: AuthService; port: number }> {
  const service = await buildAuthService({
    dataDir: join(dataDir, String(services.length)),
    host: '0.0.0.0',
    port: 0,
    scryptN: 1024,
    logLevel: 'silent',
    ...options,
  });
  services.push(service);
  const { port } = await service.listen();
  const created = await fetch(`http://127.0.0.1:${port}/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'target', password: 'correct-horse-1' }),
  });
  expect(created.status).toBe(201);
  return { service, port };
}

const disable = (host: string, port: number, headers: Record<string, string> = {}) =>
  fetch(`http://${host}:${port}/v1/admin/accounts/target/disable`, { method: 'POST', headers });

describe('admin routes', () => {
  withOutside(
    'POST /admin/drain from outside the machine is refused (403); the node keeps serving',
    async () => {
      const response = await fetch(`http://${outside}:${running.port}/admin/drain`, { method: 'POST' });
      expect(response.status).toBe(403);
      expect(await response.json()).toMatchObject({ error: 'forbidden' });
      expect(running.node.readyState()).toEqual({ ready: true, reasons: [] });
      await control.check();
    },
  );

  withOutside(
    'account disable from outside the machine is refused (403) when no admin token is set',
    async () => {
      const { port } = await auth({});
      expect((await disable(outside as string, port)).status).toBe(403);
      // Loopback is the operator on the instance (Session Manager).
      expect((await disable('127.0.0.1', port)).status).toBe(200);
    },
  );

  it('with an admin token, only that bearer token disables, from anywhere; loopback alone is not enough', async () => {
    const { port } = await auth({ adminToken: ADMIN_TOKEN });
    expect((await disable('127.0.0.1', port)).status).toBe(403);
    expect((await disable('127.0.0.1', port, { authorization: `Bearer ${ADMIN_TOKEN}x` })).status).toBe(403);
    expect((await disable('127.0.0.1', port, { authorization: ADMIN_TOKEN })).status).toBe(403);
    const login = () =>
      fetch(`http://127.0.0.1:${port}/v1/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ username: 'target', password: 'correct-horse-1' }),
      });
    expect((await login()).status).toBe(200);
    expect((await disable('127.0.0.1', port, { authorization: `Bearer ${ADMIN_TOKEN}` })).status).toBe(200);
    expect((await login()).status).toBe(403);
  });
});
