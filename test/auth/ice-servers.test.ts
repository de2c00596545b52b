/**
 * `iceServers` in the auth service's login and refresh answers (--turn-urls with --turn-secret or
 * --turn-secret-file): the TURN REST API credentials, checked here against an HMAC computed
 * independently; secret file rotation; and the configurations refused. That supernodes accept them is
 * test/node/turn.test.ts (coturn's client with credentials from a login).
 */
import { createHmac } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, type AuthServiceOptions, buildAuthService } from '../../supernode/auth';
import { AuthClient } from '../../supernode/client/auth-client';
import { authOptionTable, checkAuthConfig } from '../../supernode/config/auth-options';
import { ConfigError, resolveOptions } from '../../supernode/config/options';
import { writeAtomically } from '../../supernode/shared/files';

const FAST = { scryptN: 1024, logLevel: 'silent', port: 0 } as const;
const URLS = ['turn:turn.example.com:3478?transport=udp', 'turns:turn.example.com:5349?transport=tcp'];
const SECRET = 'auth-ice-servers-secret-0123456789';

let dataDir: string;
const services: AuthService[] = [];

beforeEach(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'auth-ice-'));
});
afterEach(async () => {
  await Promise.all(services.splice(0).map((service) => service.close()));
  await rm(dataDir, { recursive: true, force: true });
});

async function start(options: AuthServiceOptions): Promise<string> {
  const service = await buildAuthService({ ...FAST, dataDir, ...options });
  services.push(service);
  return (await service.listen()).url;
}

async function post(base: string, path: string, body: object): Promise<Record<string, unknown>> {
  const response = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(response.status).toBeLessThan(300);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

async function loggedIn(base: string): Promise<Record<string, unknown>> {
  await post(base, '/v1/accounts', { username: 'alice', password: 'alice-password-1' });
  return post(base, '/v1/login', { username: 'alice', password: 'alice-password-1' });
}

type Ice = Array<{ urls: string[]; username: string; credential: string }>;

/** The REST API scheme, written out here rather than taken from turn/credentials.ts. */
function expectSignedBy(iceServers: unknown, secret: string, ttlSec: number, around: number): void {
  const servers = iceServers as Ice;
  expect(servers).toHaveLength(1);
  const [{ urls, username, credential }] = servers;
  expect(urls).toEqual(URLS);
  const [expiry, user] = username.split(':');
  expect(user).toBe('alice');
  expect(Number(expiry)).toBeGreaterThanOrEqual(Math.floor(around / 1000) + ttlSec - 5);
  expect(Number(expiry)).toBeLessThanOrEqual(Math.floor(Date.now() / 1000) + ttlSec);
  expect(credential).toBe(createHmac('sha1', secret).update(username).digest('base64'));
}

describe('login and refresh answers', () => {
  it('carry no iceServers without --turn-urls', async () => {
    const base = await start({});
    const answer = await loggedIn(base);
    expect(Object.keys(answer).sort()).toEqual(['accessToken', 'expiresIn', 'refreshToken', 'tokenType']);
  });

  it('carry iceServers signed with --turn-secret, valid --turn-credential-ttl-sec, fresh on every refresh', async () => {
    const base = await start({ turnUrls: URLS, turnSecret: SECRET, turnCredentialTtlSec: 3600 });
    const before = Date.now();
    const answer = await loggedIn(base);
    expect(Object.keys(answer).sort()).toEqual([
      'accessToken',
      'expiresIn',
      'iceServers',
      'refreshToken',
      'tokenType',
    ]);
    expectSignedBy(answer.iceServers, SECRET, 3600, before);
    const refreshed = await post(base, '/v1/token/refresh', { refreshToken: answer.refreshToken });
    expect(refreshed).toMatchObject({ tokenType: 'Bearer', expiresIn: 900 });
    expectSignedBy(refreshed.iceServers, SECRET, 3600, before);
  });

  it('the default credential lifetime is one day', async () => {
    expect(authOptionTable.turnCredentialTtlSec.default).toBe(86_400);
    const base = await start({ turnUrls: URLS, turnSecret: SECRET });
    const before = Date.now();
    expectSignedBy((await loggedIn(base)).iceServers, SECRET, 86_400, before);
  });

  it('the client SDK hands them out with the tokens', async () => {
    const base = await start({ turnUrls: URLS, turnSecret: SECRET });
    const client = new AuthClient(base);
    await client.signup('alice', 'alice-password-1');
    const before = Date.now();
    const tokens = await client.login('alice', 'alice-password-1');
    expectSignedBy(tokens.iceServers, SECRET, 86_400, before);
    expectSignedBy((await client.refresh(tokens.refreshToken)).iceServers, SECRET, 86_400, before);
  });
});

describe('--turn-secret-file', () => {
  it('signs with the first line, and follows a rotation without a restart', async () => {
    const file = join(dataDir, 'turn-secrets');
    const [older, current, next] = [
      'older-secret-0123456789',
      'current-secret-0123456789',
      'next-secret-0123456789',
    ];
    await writeAtomically(file, `${current}\n${older}\n`, 0o600);
    const base = await start({ turnUrls: URLS, turnSecretFile: file, turnSecretRefreshMs: 100 });
    const before = Date.now();
    const answer = await loggedIn(base);
    expectSignedBy(answer.iceServers, current, 86_400, before);

    await writeAtomically(file, `${next}\n${current}\n`, 0o600);
    // Refreshes (cheap) until the service has re-read the file: each answer is signed by one secret.
    let refreshToken = answer.refreshToken as string;
    let signedByNext = false;
    for (let attempt = 0; attempt < 100 && !signedByNext; attempt++) {
      const refreshed = await post(base, '/v1/token/refresh', { refreshToken });
      refreshToken = refreshed.refreshToken as string;
      const [{ username, credential }] = refreshed.iceServers as Ice;
      signedByNext = credential === createHmac('sha1', next).update(username).digest('base64');
      if (!signedByNext) {
        expectSignedBy(refreshed.iceServers, current, 86_400, before);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    expect(signedByNext).toBe(true);
  });

  it('an unreadable or malformed file stops the service with one ConfigError naming the option', async () => {
    await expect(start({ turnUrls: URLS, turnSecretFile: join(dataDir, 'missing') })).rejects.toThrow(
      /^--turn-secret-file \(AUTH_TURN_SECRET_FILE\): cannot read .*missing \(ENOENT\)$/,
    );
    const file = join(dataDir, 'short');
    await writeAtomically(file, 'too-short\n', 0o600);
    const failure = start({ turnUrls: URLS, turnSecretFile: file });
    await expect(failure).rejects.toThrow(ConfigError);
    await expect(failure).rejects.toThrow(
      /line 1 of .* must be 16-512 non-space characters; it holds 9 characters$/,
    );
  });
});

describe('configuration', () => {
  const check = (given: Parameters<typeof resolveOptions<typeof authOptionTable>>[1]) => () =>
    checkAuthConfig(resolveOptions(authOptionTable, given));

  it.each<[string, Parameters<typeof check>[0], RegExp]>([
    [
      'URLs without a secret',
      { turnUrls: URLS },
      /--turn-secret \(AUTH_TURN_SECRET\) or --turn-secret-file .* is required with --turn-urls/,
    ],
    [
      'a secret without URLs',
      { turnSecret: SECRET },
      /--turn-urls \(AUTH_TURN_URLS\) is required with a TURN secret/,
    ],
    [
      'both secrets',
      { turnUrls: URLS, turnSecret: SECRET, turnSecretFile: '/x' },
      /at most one of --turn-secret .* and --turn-secret-file/,
    ],
    [
      'an http URL',
      { turnUrls: ['http://turn.example.com'], turnSecret: SECRET },
      /--turn-urls \(AUTH_TURN_URLS\) must be .*a turn: or turns: URL/,
    ],
    [
      'a URL with another transport',
      { turnUrls: ['turn:host:3478?transport=sctp'], turnSecret: SECRET },
      /--turn-urls/,
    ],
    [
      'a short secret',
      { turnUrls: URLS, turnSecret: 'short' },
      /--turn-secret \(AUTH_TURN_SECRET\) must be 16-512 non-space characters/,
    ],
    [
      'a TTL under a minute',
      { turnUrls: URLS, turnSecret: SECRET, turnCredentialTtlSec: 10 },
      /--turn-credential-ttl-sec \(AUTH_TURN_CREDENTIAL_TTL_SEC\) must be an integer from 60/,
    ],
  ])('%s: a ConfigError naming the option', (_what, given, message) => {
    expect(check(given)).toThrow(ConfigError);
    expect(check(given)).toThrow(message);
  });

  it('accepts IPv6 hosts and URLs without a port or transport', () => {
    const urls = [
      'turn:[2001:db8::1]:3478?transport=udp',
      'turn:turn.example.com',
      'turns:turn.example.com:443',
    ];
    expect(check({ turnUrls: urls, turnSecret: SECRET })().turnUrls).toEqual(urls);
  });
});
