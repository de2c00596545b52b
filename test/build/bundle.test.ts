import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedDynamo } from '../../supernode/auth/embedded-store';
import { bundle } from '../../supernode/build/bundle';
import { SupernodeSession } from '../../supernode/client/session';
import { freePorts, waitReady } from '../../supernode/local/fleet';
import { stunBinding } from '../../supernode/stun/client';
import { makeTestKeys, type TestKeys } from '../helpers/node';

let dir: string;
let keys: TestKeys;
let outfile: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'bundle-test-'));
  keys = await makeTestKeys();
  outfile = join(dir, 'supernode.cjs');
  await bundle(outfile);
}, 60_000);
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
  await keys.cleanup();
});

test('the one-file bundle runs the CLI with nothing else installed next to it', () => {
  // Run from the temporary directory, so nothing resolves from the repository's node_modules.
  const help = spawnSync(process.execPath, [outfile, 'node', '--help'], { cwd: dir, encoding: 'utf8' });
  expect(help.status).toBe(0);
  expect(help.stdout).toContain('--mesh-secret');
});

test('a node started from the bundle serves sessions', async () => {
  const [port] = await freePorts(1);
  const child = spawn(
    process.execPath,
    [outfile, 'node', '--port', String(port), '--no-stun', '--jwks-file', keys.jwksFile],
    {
      cwd: dir,
      stdio: 'ignore',
      env: { ...process.env, NODE_PATH: '', SUPERNODE_LOG_LEVEL: 'error' },
    },
  );
  try {
    let ready = false;
    for (let i = 0; i < 100 && !ready; i++) {
      ready = await fetch(`http://127.0.0.1:${port}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready).toBe(true);
    const session = await SupernodeSession.connect({
      url: `ws://127.0.0.1:${port}`,
      token: await keys.mint('alice'),
    });
    expect(session.user).toBe('alice');
    await session.close();
  } finally {
    child.kill('SIGKILL');
  }
});

test('a node from the bundle starts its STUN responders from the same file; they go with the node', async () => {
  const [port, stunPort] = await freePorts(2);
  const child = spawn(
    process.execPath,
    [
      outfile,
      'node',
      '--port',
      String(port),
      '--stun-port',
      String(stunPort),
      '--stun-processes',
      '3',
      '--jwks-file',
      keys.jwksFile,
    ],
    { cwd: dir, stdio: 'ignore', env: { ...process.env, NODE_PATH: '', SUPERNODE_LOG_LEVEL: 'error' } },
  );
  const childrenOf = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map(Number);
    } catch {
      return [];
    }
  };
  const commandOf = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  try {
    await waitReady(`http://127.0.0.1:${port}`, 30_000, child);
    const responders = childrenOf(child.pid as number);
    expect(responders).toHaveLength(2);
    for (const pid of responders) expect(commandOf(pid)).toEqual([process.execPath, outfile]);
    const reply = await stunBinding('127.0.0.1', stunPort, { timeoutMs: 2000 });
    expect(reply.address).toBe('127.0.0.1');
    // A node killed outright takes its responders along (their IPC channel closes).
    child.kill('SIGKILL');
    const alive = (pid: number) =>
      existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ');
    for (let i = 0; i < 50 && responders.some(alive); i++) await new Promise((r) => setTimeout(r, 100));
    expect(responders.filter(alive)).toEqual([]);
  } finally {
    child.kill('SIGKILL');
  }
});

test('the auth service from the bundle runs its worker thread from the same file', async () => {
  // dynalite stays out of the bundle (AWS has DynamoDB): the store here is one the test runs.
  const store = await startEmbeddedDynamo({ path: join(dir, 'dynamo') });
  const [port] = await freePorts(1);
  const child = spawn(
    process.execPath,
    [outfile, 'auth', '--port', String(port), '--dynamodb-endpoint', store.endpoint, '--scrypt-n', '1024'],
    {
      cwd: dir,
      stdio: 'ignore',
      env: { ...process.env, NODE_PATH: '', AUTH_DATA_DIR: join(dir, 'auth-data'), AUTH_LOG_LEVEL: 'error' },
    },
  );
  try {
    const url = `http://127.0.0.1:${port}`;
    await waitReady(url, 30_000, child);
    const credentials = JSON.stringify({ username: 'bundled', password: 'bundle-password-1' });
    const post = (path: string) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: credentials,
      });
    expect((await post('/v1/accounts')).status).toBe(201);
    const login = await post('/v1/login');
    expect(login.status).toBe(200);
    expect(((await login.json()) as { accessToken: string }).accessToken).toMatch(/^ey/);
  } finally {
    child.kill('SIGKILL');
    await store.close();
  }
}, 60_000);
