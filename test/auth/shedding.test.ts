/**
 * Login shedding happens before the body is read: with the hash pool full, a login is refused with
 * 503 and Retry-After even when its body is not JSON at all (a parsed body would have been a 400), and
 * once the pool frees, logins verify again.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';

let dir: string;
let auth: AuthService;
let url: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-shed-'));
  auth = await buildAuthService({
    port: 0,
    dataDir: dir,
    // Slow enough hashes that a few logins hold the pool for the length of the test.
    scryptN: 65_536,
    hashConcurrency: 1,
    hashQueue: 1,
    hashDeadlineMs: 20_000,
    logLevel: 'silent',
  });
  ({ url } = await auth.listen());
  const created = await post(
    '/v1/accounts',
    JSON.stringify({ username: 'shed-alice', password: 'alice-secret-1' }),
  );
  expect(created.status).toBe(201);
});

afterAll(async () => {
  await auth.close();
  await rm(dir, { recursive: true, force: true });
});

async function post(path: string, body: string) {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: await response.text(),
  };
}

test('a full pool refuses before the body is parsed; a free pool verifies', async () => {
  const login = JSON.stringify({ username: 'shed-alice', password: 'alice-secret-1' });
  // One hashing, one queued: the pool is full until they finish.
  const holding = [post('/v1/login', login), post('/v1/login', login)];
  await new Promise((r) => setTimeout(r, 50));
  expect(auth.pool.stats.inFlight + auth.pool.stats.queued).toBe(2);

  const garbage = await post('/v1/login', '{ this is not json');
  expect(garbage.status).toBe(503);
  expect(JSON.parse(garbage.body)).toMatchObject({ error: 'overloaded', retryAfterMs: expect.any(Number) });
  expect(Number(garbage.retryAfter)).toBeGreaterThanOrEqual(1);
  const signUp = await post('/v1/accounts', login.replace('shed-alice', 'shed-bob'));
  expect(signUp.status).toBe(503);

  for (const answer of await Promise.all(holding)) expect(answer.status).toBe(200);
  // Refused requests gave nothing back that was not theirs, and the places of the others were freed.
  expect(auth.pool.stats.inFlight + auth.pool.stats.queued).toBe(0);
  expect((await post('/v1/login', login)).status).toBe(200);
  // A bad body with room in the pool is a plain 400 again, and its place is given back.
  expect((await post('/v1/login', '{ this is not json')).status).toBe(400);
  expect(auth.pool.stats.queued).toBe(0);
}, 60_000);
