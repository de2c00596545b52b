/**
 * Hostile clients of the auth API (docs/auth.md): stolen refresh tokens replayed, raced and logged
 * out, access tokens replayed at a supernode after their family died, forged client addresses, and
 * huge or deeply nested bodies on every route. Good users of the same service (and of a supernode
 * that trusts it) keep working throughout.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { SessionError, SupernodeSession } from '../../supernode/client/session';
import { buildSupernode, type Supernode } from '../../supernode/node/server';
import { type ControlPair, controlPair, scale } from './hostile';

// Cheap hashing: this file is about what the routes accept, not about hashing cost.
const FAST = { scryptN: 1024, hashConcurrency: 2, logLevel: 'silent', keyPublishLeadSec: 0 } as const;
const PASSWORD = 'correct-horse-1';

let dataDir: string;
let auth: AuthService;
let base: string;
let node: Supernode;
let nodeUrl: string;
let control: ControlPair;

interface Tokens {
  accessToken: string;
  refreshToken: string;
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}) {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as Record<string, unknown> };
}

async function login(username: string, headers: Record<string, string> = {}): Promise<Tokens> {
  const { status, body } = await post('/v1/login', { username, password: PASSWORD }, headers);
  if (status !== 200) throw new Error(`login ${username}: ${status} ${JSON.stringify(body)}`);
  return body as unknown as Tokens;
}

const refresh = (refreshToken: string) => post('/v1/token/refresh', { refreshToken });

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'hostile-auth-'));
  auth = await buildAuthService({
    ...FAST,
    dataDir,
    port: 0,
    // The tests log in from one address far more often than a person would.
    ipLoginsPerMinute: 100_000,
    accountLoginsPerMinute: 10_000,
    ipRefreshesPerMinute: 100_000,
  });
  base = (await auth.listen()).url;
  for (const user of ['victim', 'control-a', 'control-b'])
    expect((await post('/v1/accounts', { username: user, password: PASSWORD })).status).toBe(201);
  node = buildSupernode({
    port: 0,
    stun: false,
    jwksFile: auth.files.jwks,
    revocationsFile: auth.files.revocations,
    revocationsRefreshMs: 60_000, // refreshed by hand below
    logLevel: 'silent',
  });
  nodeUrl = `ws://127.0.0.1:${(await node.listen()).port}`;
  control = await controlPair({ a: { url: nodeUrl } }, async (user) => (await login(user)).accessToken);
});
afterEach(async () => {
  await control.check();
});
afterAll(async () => {
  await control.close();
  await node.close();
  await auth.close();
  await rm(dataDir, { recursive: true, force: true });
});

describe('stolen refresh tokens', () => {
  it('replayed after the victim refreshed: both fail, the family is revoked and its sessions are cut (4005)', async () => {
    const stolen = await login('victim');
    const session = await SupernodeSession.connect({ url: nodeUrl, token: stolen.accessToken });
    const cut = new Promise<number>((resolve) => session.once('close', resolve));
    const rotated = await refresh(stolen.refreshToken); // the victim, first
    expect(rotated.status).toBe(200);
    // The attacker replays the copy: refused, and the reuse kills the family...
    expect(await refresh(stolen.refreshToken)).toMatchObject({
      status: 401,
      body: { error: 'invalid_refresh_token' },
    });
    // ...including the victim's newest token, so whoever holds the family must log in again.
    expect((await refresh(rotated.body.refreshToken as string)).status).toBe(401);
    const list = (await (await fetch(`${base}/v1/revocations`)).json()) as {
      entries: Array<{ kind: string }>;
    };
    expect(list.entries.filter((e) => e.kind === 'family')).toHaveLength(1);
    // The supernode reads the list and closes the family's sessions, then refuses its access tokens.
    await node.revocations?.refresh();
    expect(await cut).toBe(4005);
    for (const token of [stolen.accessToken, rotated.body.accessToken as string]) {
      const replay = await SupernodeSession.connect({ url: nodeUrl, token }).catch((e: unknown) => e);
      expect(replay).toMatchObject({ code: 'token_revoked', closeCode: 4005 });
    }
    // Another user's tokens and sessions are not collateral.
    expect((await refresh((await login('control-b')).refreshToken)).status).toBe(200);
    // A fresh login starts a new family that works.
    const again = await SupernodeSession.connect({
      url: nodeUrl,
      token: (await login('victim')).accessToken,
    });
    await again.close();
  });

  it('presented many times at once: at most one rotation, and the family dies with it', async () => {
    const stolen = await login('victim');
    const results = await Promise.all(Array.from({ length: 8 * scale }, () => refresh(stolen.refreshToken)));
    const winners = results.filter((r) => r.status === 200);
    expect(winners.length).toBeLessThanOrEqual(1);
    expect(results.filter((r) => r.status === 401)).toHaveLength(results.length - winners.length);
    for (const winner of winners)
      expect((await refresh(winner.body.refreshToken as string)).status).toBe(401);
  });

  it('after logout: the refresh token is dead and the access token is refused by the supernode (4005)', async () => {
    const tokens = await login('victim');
    const response = await fetch(`${base}/v1/logout`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refreshToken: tokens.refreshToken }),
    });
    expect(response.status).toBe(204);
    expect((await refresh(tokens.refreshToken)).status).toBe(401);
    await node.revocations?.refresh();
    const replay = await SupernodeSession.connect({ url: nodeUrl, token: tokens.accessToken }).catch(
      (e: unknown) => e,
    );
    expect(replay).toBeInstanceOf(SessionError);
    expect(replay).toMatchObject({ code: 'token_revoked', closeCode: 4005 });
  });
});

describe('forged client addresses', () => {
  let proxied: AuthService;
  let proxiedBase: string;
  let proxiedDir: string;
  beforeAll(async () => {
    proxiedDir = await mkdtemp(join(tmpdir(), 'hostile-proxied-'));
    proxied = await buildAuthService({
      ...FAST,
      dataDir: proxiedDir,
      port: 0,
      trustProxy: true,
      ipLoginsPerMinute: 4,
    });
    proxiedBase = (await proxied.listen()).url;
  });
  afterAll(async () => {
    await proxied.close();
    await rm(proxiedDir, { recursive: true, force: true });
  });

  it('behind the ALB, an X-Forwarded-For written by the client does not escape the per-IP limit', async () => {
    // The ALB appends the address it saw; what the client sent comes first. Each attempt claims a new one.
    const statuses: number[] = [];
    for (let i = 0; i < 6 * scale; i++) {
      const response = await fetch(`${proxiedBase}/v1/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-forwarded-for': `10.1.${i}.7, 203.0.113.9` },
        body: JSON.stringify({ username: 'ghost-user', password: 'wrong-password' }),
      });
      statuses.push(response.status);
    }
    expect(statuses[0]).toBe(401);
    expect(statuses.filter((s) => s === 429).length).toBeGreaterThanOrEqual(statuses.length - 2);
    // Another real client (another address appended by the ALB) is not limited by that one.
    const other = await fetch(`${proxiedBase}/v1/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '198.51.100.20' },
      body: JSON.stringify({ username: 'ghost-user', password: 'wrong-password' }),
    });
    expect(other.status).toBe(401);
  });
});

describe('huge and deeply nested bodies on every route', () => {
  const posts = [
    '/v1/accounts',
    '/v1/login',
    '/v1/accounts/password',
    '/v1/token/refresh',
    '/v1/logout',
    // A loopback caller is an admin; the route takes no body and names an account that does not exist.
    '/v1/admin/accounts/nobody-here/disable',
    '/v1/no-such-route',
  ];
  const gets = ['/.well-known/jwks.json', '/v1/revocations', '/healthz', '/readyz'];

  /**
   * Streams a body of up to 64 MiB from one reused buffer (so the client holds no copy) and returns
   * the status line the service answered with, and how much had been sent by then.
   */
  function upload(
    method: string,
    path: string,
    chunked: boolean,
  ): Promise<{ status: string; sentMiB: number }> {
    const port = Number(new URL(base).port);
    return new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      const piece = Buffer.alloc(64 * 1024, 0x5b); // "[[[[..."
      const total = 64 * 1024 * 1024;
      let sent = 0;
      let answer = '';
      socket.on('error', () => {});
      socket.on('data', (d) => {
        answer += d.toString('latin1');
        socket.destroy();
      });
      socket.on('close', () => resolve({ status: answer.split('\r\n')[0], sentMiB: sent / 1024 / 1024 }));
      socket.on('connect', () => {
        const length = chunked ? 'Transfer-Encoding: chunked' : `Content-Length: ${total}`;
        socket.write(
          `${method} ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n${length}\r\n\r\n`,
        );
        const pump = (): void => {
          while (!answer && sent < total && !socket.destroyed) {
            const ok = socket.write(
              chunked
                ? Buffer.concat([Buffer.from(`${piece.length.toString(16)}\r\n`), piece, Buffer.from('\r\n')])
                : piece,
            );
            sent += piece.length;
            if (!ok) {
              socket.once('drain', pump);
              return;
            }
          }
        };
        pump();
      });
    });
  }

  it('a huge body (announced or chunked) is refused with 413 on every POST route before it is read', async () => {
    const rssBefore = process.memoryUsage().rss;
    const outcomes = await Promise.all(
      Array.from({ length: scale }, () =>
        posts.flatMap((path) => [upload('POST', path, false), upload('POST', path, true)]),
      ).flat(),
    );
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('HTTP/1.1 413 Payload Too Large');
      // Answered long before the 64 MiB were sent: the service stops at its 4 KiB limit.
      expect(outcome.sentMiB).toBeLessThan(32);
    }
    expect(process.memoryUsage().rss - rssBefore).toBeLessThan(128 * 1024 * 1024);
  });

  it('a body on a GET route is not read into memory; the route answers as usual', async () => {
    for (const path of gets) {
      const outcome = await upload('GET', path, false);
      expect(outcome.status).toBe('HTTP/1.1 200 OK');
      expect(outcome.sentMiB).toBeLessThan(32);
    }
  });

  it.each(posts)('deeply nested and polluting JSON to %s: a typed 4xx, never a 5xx', async (path) => {
    const bodies = [
      `${'['.repeat(2000)}${']'.repeat(2000)}`,
      `${'{"a":'.repeat(700)}1${'}'.repeat(700)}`,
      `{"username":"victim","password":${'['.repeat(1500)}${']'.repeat(1500)}}`,
      '{"username":"victim","password":"correct-horse-1","__proto__":{"admin":true}}',
      '{"refreshToken":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA","constructor":{"prototype":{"x":1}}}',
      'null',
      '"a string"',
      '',
    ];
    for (const body of bodies) {
      const response = await fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
      });
      expect(response.status).toBeGreaterThanOrEqual(400);
      expect(response.status).toBeLessThan(500);
      expect(await response.json()).toMatchObject({ error: expect.any(String) });
    }
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    // The account the bodies named is untouched and still logs in.
    expect((await login('victim')).accessToken).toEqual(expect.any(String));
  });
});
