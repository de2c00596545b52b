import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import pino from 'pino';
import { type AuthService, type AuthServiceOptions, buildAuthService } from '../../supernode/auth/server';
import { SessionError, SupernodeSession } from '../../supernode/client/session';
import { buildSupernode } from '../../supernode/node/server';
import { redactPaths } from '../../supernode/shared/log';
import { waitFor } from '../helpers/node';

// Cheap hashing for speed; the OWASP default is exercised in test/auth/passwords.test.ts.
const FAST = { scryptN: 1024, hashConcurrency: 2, logLevel: 'silent', keyPublishLeadSec: 0 } as const;

let dataDir: string;
let auth: AuthService;
let base: string;

async function start(options: AuthServiceOptions = {}): Promise<void> {
  auth = await buildAuthService({ ...FAST, dataDir, port: 0, ...options });
  base = (await auth.listen()).url;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    retryAfter: response.headers.get('retry-after'),
    body: (text ? JSON.parse(text) : {}) as Record<string, unknown>,
  };
}

const signup = (username: string, password = 'correct-horse-1') =>
  post('/v1/accounts', { username, password });
const login = (username: string, password = 'correct-horse-1') => post('/v1/login', { username, password });

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'auth-test-'));
});
afterEach(async () => {
  await auth?.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('accounts and login', () => {
  beforeEach(() => start());

  it('creates an account, logs in, and issues an EdDSA access token a supernode would accept', async () => {
    expect(await signup('alice')).toMatchObject({ status: 201, body: { username: 'alice' } });
    const { status, body } = await login('alice');
    expect(status).toBe(200);
    expect(body).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
    const jwks = await (await fetch(`${base}/.well-known/jwks.json`)).json();
    const { payload, protectedHeader } = await jwtVerify(
      body.accessToken as string,
      createLocalJWKSet(jwks as { keys: [] }),
      { audience: 'supernode', issuer: 'supernode-auth', algorithms: ['EdDSA'] },
    );
    expect(protectedHeader.kid).toBe(auth.keys.signingKey().kid);
    expect(payload).toMatchObject({ sub: 'alice', aud: 'supernode', sid: expect.any(String) });
    expect((payload.exp as number) - (payload.iat as number)).toBe(900);
  });

  it('refuses a taken username and a wrong password with typed errors', async () => {
    await signup('alice');
    expect(await signup('alice', 'another-pass-2')).toMatchObject({
      status: 409,
      body: { error: 'username_taken' },
    });
    expect(await login('alice', 'wrong-password')).toMatchObject({
      status: 401,
      body: { error: 'invalid_credentials' },
    });
    expect(await login('nobody-here')).toMatchObject({ status: 401, body: { error: 'invalid_credentials' } });
  });

  it('lets exactly one of many concurrent creations of one username succeed', async () => {
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => signup('racer', `password-${i}-xyz`)),
    );
    expect(results.filter((r) => r.status === 201)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409)).toHaveLength(7);
    const winner = results.findIndex((r) => r.status === 201);
    expect((await login('racer', `password-${winner}-xyz`)).status).toBe(200);
  });

  it('changes a password: the old one stops working, and so do refresh tokens from before', async () => {
    await signup('alice');
    const before = (await login('alice')).body;
    expect(
      await post('/v1/accounts/password', {
        username: 'alice',
        currentPassword: 'correct-horse-1',
        newPassword: 'new-horse-22',
      }),
    ).toMatchObject({ status: 200 });
    expect((await login('alice')).status).toBe(401);
    expect((await login('alice', 'new-horse-22')).status).toBe(200);
    expect(await post('/v1/token/refresh', { refreshToken: before.refreshToken })).toMatchObject({
      status: 401,
      body: { error: 'invalid_refresh_token' },
    });
  });

  it('disables an account (admin, loopback): login and refresh refused, user on the revocation list', async () => {
    await signup('mallory');
    const tokens = (await login('mallory')).body;
    expect(await post('/v1/admin/accounts/mallory/disable', {})).toMatchObject({ status: 200 });
    expect(await login('mallory')).toMatchObject({ status: 403, body: { error: 'account_disabled' } });
    expect((await post('/v1/token/refresh', { refreshToken: tokens.refreshToken })).status).toBe(401);
    const list = (await (await fetch(`${base}/v1/revocations`)).json()) as { entries: unknown[] };
    expect(list.entries).toEqual([expect.objectContaining({ kind: 'user', id: 'mallory' })]);
    expect(await post('/v1/admin/accounts/nobody-x/disable', {})).toMatchObject({ status: 404 });
  });
});

describe('refresh tokens', () => {
  beforeEach(() => start());

  it('rotates on every use; reusing an old one revokes the whole family', async () => {
    await signup('alice');
    const first = (await login('alice')).body;
    const second = await post('/v1/token/refresh', { refreshToken: first.refreshToken });
    expect(second.status).toBe(200);
    expect(second.body.refreshToken).not.toBe(first.refreshToken);

    // The first token again: a replay. It fails, and so does the legitimate newest one.
    expect(await post('/v1/token/refresh', { refreshToken: first.refreshToken })).toMatchObject({
      status: 401,
      body: { error: 'invalid_refresh_token' },
    });
    expect((await post('/v1/token/refresh', { refreshToken: second.body.refreshToken })).status).toBe(401);
    const list = (await (await fetch(`${base}/v1/revocations`)).json()) as { entries: unknown[] };
    expect(list.entries).toEqual([expect.objectContaining({ kind: 'family' })]);
    // A fresh login starts a new family.
    expect((await login('alice')).status).toBe(200);
  });

  it('refuses unknown and malformed refresh tokens', async () => {
    expect((await post('/v1/token/refresh', { refreshToken: 'A'.repeat(43) })).status).toBe(401);
    expect((await post('/v1/token/refresh', { refreshToken: 'short' })).status).toBe(400);
  });
});

describe('lockout', () => {
  beforeEach(() => start({ lockoutThreshold: 3, lockoutBaseSec: 30, accountLoginsPerMinute: 100 }));

  it('locks progressively with the same answer whether or not the account exists', async () => {
    await signup('alice');
    for (let i = 0; i < 3; i++) {
      expect((await login('alice', 'wrong-password')).status).toBe(401);
      expect((await login('ghost-user', 'wrong-password')).status).toBe(401);
    }
    const real = await login('alice'); // even the right password waits out the lock
    const ghost = await login('ghost-user');
    for (const locked of [real, ghost]) {
      expect(locked.status).toBe(429);
      expect(locked.body).toEqual({
        error: 'too_many_attempts',
        message: expect.any(String),
        retryAfterMs: expect.any(Number),
      });
      expect(Number(locked.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    expect(Math.abs((real.body.retryAfterMs as number) - (ghost.body.retryAfterMs as number))).toBeLessThan(
      2000,
    );
  });

  it('spends a hash on unknown usernames too, so timing does not reveal which accounts exist', async () => {
    const before = auth.pool.stats.completed;
    await login('ghost-user', 'wrong-password');
    expect(auth.pool.stats.completed).toBe(before + 1);
  });
});

describe('bad input', () => {
  beforeEach(() => start());

  it.each([
    ['an unknown field', { username: 'alice', password: 'correct-horse-1', admin: true }, 400, 'bad_request'],
    ['a wrong type', { username: 'alice', password: 12345678 }, 400, 'bad_request'],
    ['a missing field', { username: 'alice' }, 400, 'bad_request'],
    ['an invalid username', { username: 'Alice Smith', password: 'correct-horse-1' }, 400, 'bad_request'],
    ['a short password', { username: 'alice', password: 'short' }, 400, 'bad_request'],
    ['bad JSON', '{"username": "alice", ', 400, 'bad_request'],
    [
      'prototype pollution',
      '{"username":"alice","password":"correct-horse-1","__proto__":{"x":1}}',
      400,
      'bad_request',
    ],
    ['an oversized body', { username: 'alice', password: 'x'.repeat(5000) }, 413, 'payload_too_large'],
    ['deep nesting', `${'['.repeat(1500)}${']'.repeat(1500)}`, 400, 'bad_request'],
  ])('refuses %s with a typed 4xx', async (_name, body, status, error) => {
    const response = await post('/v1/accounts', body);
    expect(response).toMatchObject({ status, body: { error } });
  });

  it('refuses a wrong content type with 415', async () => {
    const response = await fetch(`${base}/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'username=alice',
    });
    expect(response.status).toBe(415);
    expect(await response.json()).toMatchObject({ error: 'unsupported_media_type' });
  });

  it('answers unknown routes with a typed 404', async () => {
    expect(await post('/v1/nothing', {})).toMatchObject({ status: 404, body: { error: 'not_found' } });
  });
});

describe('admission by cost', () => {
  it('sheds logins past the pool at once with 503 and jittered Retry-After; health is never shed', async () => {
    await start({
      scryptN: 32_768,
      hashConcurrency: 1,
      hashQueue: 1,
      ipLoginsPerMinute: 10_000,
      accountLoginsPerMinute: 10_000,
    });
    await signup('alice');
    const results = await Promise.all(Array.from({ length: 12 }, () => login('alice')));
    const admitted = results.filter((r) => r.status === 200);
    const shed = results.filter((r) => r.status === 503);
    expect(admitted.length).toBeGreaterThanOrEqual(2); // one running, one queued
    expect(admitted.length + shed.length).toBe(12);
    for (const response of shed) {
      expect(response.body).toMatchObject({ error: 'overloaded', retryAfterMs: expect.any(Number) });
      expect(Number(response.retryAfter)).toBeGreaterThanOrEqual(1);
    }
    expect(new Set(shed.map((r) => r.body.retryAfterMs)).size).toBeGreaterThan(1);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/^auth_shed_total\{class="login",reason="queue_full"\} \d+$/m);
    expect(metrics).toMatch(/^auth_hash_pool_wait_seconds_count \d+$/m);
    // Every admitted login ran one hash (sign-up's hash too); their time adds up in the run counter.
    const runs = Number(/^auth_hash_runs_total (\d+)$/m.exec(metrics)?.[1]);
    expect(runs).toBeGreaterThanOrEqual(admitted.length);
    expect(Number(/^auth_hash_run_seconds_total (\S+)$/m.exec(metrics)?.[1])).toBeGreaterThan(0);
  });

  it('limits password attempts per client address', async () => {
    await start({ ipLoginsPerMinute: 4 });
    const statuses = [];
    for (let i = 0; i < 6; i++) statuses.push((await login('ghost-user', 'wrong-password')).status);
    expect(statuses.slice(0, 1)).toEqual([401]);
    expect(statuses).toContain(429);
  });
});

describe('keys, restarts and supernodes', () => {
  it('keeps accounts and signing keys across a restart', async () => {
    await start();
    await signup('alice');
    const kid = auth.keys.signingKey().kid;
    await auth.close();
    await start();
    expect((await login('alice')).status).toBe(200);
    expect(auth.keys.signingKey().kid).toBe(kid);
  });

  it('raises the hash parameters of an account at its next login, keeping its refresh tokens', async () => {
    await start({ scryptN: 1024 });
    await signup('alice');
    const before = (await login('alice')).body;
    await auth.close();
    await start({ scryptN: 2048 });
    expect((await auth.store.getAccount('alice'))?.passwordHash).toContain('N=1024,');
    expect((await login('alice')).status).toBe(200);
    expect((await auth.store.getAccount('alice'))?.passwordHash).toContain('N=2048,');
    expect((await post('/v1/token/refresh', { refreshToken: before.refreshToken })).status).toBe(200);
  });

  it('a supernode accepts tokens while the auth service is stopped, and sees rotated keys', async () => {
    await start();
    await signup('alice');
    const oldToken = (await login('alice')).body.accessToken as string;
    const node = buildSupernode({ port: 0, stun: false, jwksFile: auth.files.jwks, logLevel: 'silent' });
    const { port } = await node.listen();
    const url = `ws://127.0.0.1:${port}`;
    try {
      // Rotation: the new key is published (and, with no lead time here, signs) at once.
      const oldKid = auth.keys.signingKey().kid;
      await auth.keys.rotate();
      const newToken = (await login('alice')).body.accessToken as string;
      expect(decodeProtectedHeader(newToken).kid).not.toBe(oldKid);
      expect(await node.keys.refresh()).toBe(true);
      await auth.close();
      for (const token of [oldToken, newToken]) {
        const session = await SupernodeSession.connect({ url, token });
        expect(session.user).toBe('alice');
        await session.close();
      }
    } finally {
      await node.close();
    }
  });

  it('revocation reaches a supernode: a disabled user is cut off and cannot reconnect', async () => {
    await start();
    await signup('mallory');
    const token = (await login('mallory')).body.accessToken as string;
    const node = buildSupernode({
      port: 0,
      stun: false,
      jwksFile: auth.files.jwks,
      revocationsFile: auth.files.revocations,
      logLevel: 'silent',
    });
    const { port } = await node.listen();
    try {
      const session = await SupernodeSession.connect({ url: `ws://127.0.0.1:${port}`, token });
      const closed = new Promise<number>((resolve) => session.once('close', resolve));
      // Revocation compares whole seconds of `iat`: let the second the token was issued in pass.
      await new Promise((r) => setTimeout(r, 1100));
      await post('/v1/admin/accounts/mallory/disable', {});
      await node.revocations?.refresh();
      expect(await closed).toBe(4005);
      const again = await SupernodeSession.connect({ url: `ws://127.0.0.1:${port}`, token }).catch(
        (e: unknown) => e,
      );
      expect(again).toBeInstanceOf(SessionError);
      expect(again).toMatchObject({ code: 'token_revoked', closeCode: 4005 });
    } finally {
      await node.close();
    }
  });
});

describe('logs', () => {
  it('never contain passwords or tokens', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const logger = pino({ level: 'trace', redact: { paths: redactPaths, censor: '[redacted]' } }, sink);
    await start({ logger, logLevel: 'trace' });
    await signup('alice', 'SECRET-PASSWORD-123');
    const tokens = (await login('alice', 'SECRET-PASSWORD-123')).body;
    await post('/v1/token/refresh', { refreshToken: tokens.refreshToken });
    await post('/v1/token/refresh', { refreshToken: tokens.refreshToken }); // reuse: logged as an event
    await auth.close();
    await waitFor(() => lines.length > 0);
    const all = lines.join('');
    expect(all).not.toContain('SECRET-PASSWORD-123');
    expect(all).not.toContain(tokens.refreshToken as string);
    expect(all).not.toContain((tokens.accessToken as string).split('.')[2]);
  });
});
