import { mkdtemp, rm } from 'node:fs/promises';
import { Agent, request as httpRequest, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { anyText, deeplyNested, hostileJson, hostileKey, withKey } from './arbitraries';

/**
 * Auth request bodies (docs/auth.md#api) against a real auth service: random and mutated JSON,
 * hostile keys, huge and unicode strings, deep nesting, any content type. Every answer is a
 * documented status with a `{error, message}` body, never a 500, and the service still works
 * afterwards. Hashing is cheap here (N=1024), and most bodies never reach it anyway.
 *
 * Requests go over loopback HTTP rather than Fastify's inject(): inject loads light-my-request,
 * which requires the ESM-only `cookie` package, and Jest on Node 20 cannot require() it.
 */

// Each run is a request into a real store: 50 by default, a twentieth of FUZZ_RUNS when it is set.
const runs = process.env.FUZZ_RUNS ? Math.max(10, Math.floor(Number(process.env.FUZZ_RUNS) / 20)) : 50;

const ROUTES = [
  '/v1/accounts',
  '/v1/login',
  '/v1/accounts/password',
  '/v1/token/refresh',
  '/v1/logout',
] as const;
type Route = (typeof ROUTES)[number];

/** Statuses docs/auth.md lists for each route, plus those any route may give; 500 left out on purpose. */
const ANY_ROUTE = [400, 404, 413, 415, 429, 503];
const STATUSES: Record<Route, number[]> = {
  '/v1/accounts': [201, 409, ...ANY_ROUTE],
  '/v1/login': [200, 401, 403, ...ANY_ROUTE],
  '/v1/accounts/password': [200, 401, ...ANY_ROUTE],
  '/v1/token/refresh': [200, 401, ...ANY_ROUTE],
  '/v1/logout': [204, ...ANY_ROUTE],
};
/** The error codes each error status may carry. */
const CODES: Record<number, string[]> = {
  400: ['bad_request'],
  401: ['invalid_credentials', 'invalid_refresh_token'],
  403: ['account_disabled'],
  404: ['not_found'],
  409: ['username_taken'],
  413: ['payload_too_large'],
  415: ['unsupported_media_type'],
  429: ['too_many_requests', 'too_many_attempts'],
  503: ['overloaded', 'store_unavailable'],
};

/** Accounts made before the run, so logins, password changes and sign-ups can succeed or collide. */
const KNOWN_USERS = ['fuzz-alice', 'fuzz-bob', 'fuzz-carol'];
const KNOWN_PASSWORD = 'correct-horse-1';
/** Stands for a real refresh token, swapped in when the request is sent (tokens come from logins). */
const POOL_TOKEN = 'pool-token-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx';
const tokens: string[] = [];

const username = fc.oneof(fc.stringMatching(/^[a-z0-9][a-z0-9._-]{2,31}$/), fc.constantFrom(...KNOWN_USERS));
const password = fc.oneof(
  fc.constant(KNOWN_PASSWORD),
  fc.string({ minLength: 8, maxLength: 20 }),
  fc.string({ unit: 'grapheme', minLength: 8, maxLength: 12 }),
);
const refreshToken = fc.oneof(fc.constant(POOL_TOKEN), fc.stringMatching(/^[A-Za-z0-9_-]{43}$/));

/** A body each route accepts, field for field. */
const validBody: Record<Route, fc.Arbitrary<Record<string, unknown>>> = {
  '/v1/accounts': fc.record({ username, password }),
  '/v1/login': fc.record({ username, password }),
  '/v1/accounts/password': fc.record({
    username,
    currentPassword: password,
    // Mostly back to the known one, so later logins still get through.
    newPassword: fc.oneof({ weight: 3, arbitrary: fc.constant(KNOWN_PASSWORD) }, password),
  }),
  '/v1/token/refresh': fc.record({ refreshToken }),
  '/v1/logout': fc.record({ refreshToken }),
};

/** Field values of every wrong kind: types, sizes, unicode, nesting. */
const badValue = fc.oneof(
  hostileJson,
  anyText,
  fc.string({ minLength: 4000, maxLength: 5000 }),
  fc.constantFrom(
    '',
    'A',
    'Alice',
    'a'.repeat(33),
    ' alice',
    'al\u0000ice',
    '\u{1F600}'.repeat(10),
    '1'.repeat(43),
  ),
);

/** A valid body with one field changed, removed, or a key added (prototype keys among them). */
function mutatedBody(route: Route): fc.Arbitrary<unknown> {
  const key = fc.oneof(
    fc.constantFrom('username', 'password', 'currentPassword', 'newPassword', 'refreshToken'),
    hostileKey,
    fc.string({ maxLength: 8 }),
  );
  return fc.tuple(validBody[route], key, badValue, fc.boolean()).map(([body, k, value, remove]) => {
    if (!remove) return withKey(body, k, value);
    const copy = { ...body };
    delete copy[k];
    return copy;
  });
}

const contentType = fc.oneof(
  { weight: 8, arbitrary: fc.constant('application/json') },
  {
    weight: 4,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'application/json; charset=UTF-8',
      'Application/JSON',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json;',
      'application/json; x=y; charset=utf-8',
      'application/jsonx',
      'application/json-patch+json',
      'application/vnd.api+json',
      'text/plain',
      'text/html',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
      '*/*',
      ';',
      '',
    ),
  },
  {
    weight: 1,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 40,
    }),
  },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

/** What goes on the wire: JSON of a valid, mutated or random value, or raw text. */
function payloadFor(route: Route): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 2, arbitrary: validBody[route].map((b) => JSON.stringify(b)) },
    { weight: 5, arbitrary: mutatedBody(route).map((b) => JSON.stringify(b)) },
    { weight: 2, arbitrary: hostileJson.map((v) => JSON.stringify(v) ?? '') },
    { weight: 1, arbitrary: deeplyNested },
    { weight: 1, arbitrary: anyText },
    {
      weight: 1,
      arbitrary: validBody[route].map((b) => {
        const text = JSON.stringify(b);
        return `{"__proto__":{"admin":true},${text.slice(1)}`;
      }),
    },
    {
      weight: 1,
      arbitrary: validBody[route].map(
        (b) => `{"constructor":{"prototype":{"admin":true}},${JSON.stringify(b).slice(1)}`,
      ),
    },
  );
}

const request = fc
  .constantFrom(...ROUTES)
  .chain((route) =>
    fc.record({ route: fc.constant(route), payload: payloadFor(route), type: contentType, pick: fc.nat() }),
  );
type Request = typeof request extends fc.Arbitrary<infer R> ? R : never;

let dataDir: string;
let auth: AuthService;
let port: number;
const agent = new Agent({ keepAlive: true, maxSockets: 4 });
const crashes: unknown[] = [];
const onCrash = (err: unknown) => crashes.push(err);

beforeAll(async () => {
  process.on('uncaughtException', onCrash);
  process.on('unhandledRejection', onCrash);
  dataDir = await mkdtemp(join(tmpdir(), 'auth-fuzz-'));
  auth = await buildAuthService({
    dataDir,
    port: 0,
    logLevel: 'silent',
    scryptN: 1024,
    hashConcurrency: 2,
    keyPublishLeadSec: 0,
    // The limits would turn most requests into 429s before their bodies matter.
    ipLoginsPerMinute: 1_000_000,
    ipRefreshesPerMinute: 1_000_000,
    accountLoginsPerMinute: 10_000,
    lockoutThreshold: 1000,
  });
  port = (await auth.listen()).port;
  for (const name of KNOWN_USERS) {
    const body = JSON.stringify({ username: name, password: KNOWN_PASSWORD });
    expect((await post('/v1/accounts', body, 'application/json')).status).toBe(201);
  }
});

afterAll(async () => {
  process.off('uncaughtException', onCrash);
  process.off('unhandledRejection', onCrash);
  agent.destroy();
  await auth?.close();
  await rm(dataDir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/** One POST with exactly this body and content type (none when undefined). */
function post(path: string, payload: string, type: string | undefined): Promise<Answer> {
  const data = Buffer.from(payload, 'utf8');
  const headers: OutgoingHttpHeaders = { 'content-length': data.length };
  if (type !== undefined) headers['content-type'] = type;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method: 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () =>
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          text: Buffer.concat(chunks).toString('utf8'),
        }),
      );
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(data);
  });
}

describe('auth request bodies (fuzz)', () => {
  /** Sends one request and checks the answer against docs/auth.md. */
  async function check({ route, payload, type, pick }: Request): Promise<void> {
    // A token from an earlier login (sometimes one already spent: a replay), if there is one.
    const token = tokens[pick % Math.max(1, tokens.length)];
    const response = await post(route, token ? payload.replaceAll(POOL_TOKEN, token) : payload, type);
    expect(STATUSES[route]).toContain(response.status);
    if (response.status === 204) {
      expect(response.text).toBe('');
      return;
    }
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    const body = JSON.parse(response.text) as Record<string, unknown>;
    if (typeof body.refreshToken === 'string') tokens.push(body.refreshToken);
    if (response.status < 400) return;
    expect(CODES[response.status]).toContain(body.error);
    expect(typeof body.message).toBe('string');
    expect(Object.keys(body).every((k) => ['error', 'message', 'retryAfterMs'].includes(k))).toBe(true);
  }

  it('answers any body and content type with a documented status and a typed JSON error', async () => {
    // A few at once, so admission (503 overloaded) and concurrent store writes are in play too.
    await fc.assert(
      fc.asyncProperty(fc.array(request, { minLength: 1, maxLength: 6 }), async (batch) => {
        await Promise.all(batch.map(check));
      }),
      { numRuns: runs },
    );
    expect(crashes).toEqual([]);
  });

  it('still signs up, logs in, refreshes and logs out afterwards', async () => {
    const name = `after-${Date.now().toString(36)}`;
    const json = (route: string, body: unknown) => post(route, JSON.stringify(body), 'application/json');
    expect((await json('/v1/accounts', { username: name, password: 'correct-horse-1' })).status).toBe(201);
    const login = await json('/v1/login', { username: name, password: 'correct-horse-1' });
    expect(login.status).toBe(200);
    const refreshed = await json('/v1/token/refresh', { refreshToken: JSON.parse(login.text).refreshToken });
    expect(refreshed.status).toBe(200);
    expect((await json('/v1/logout', { refreshToken: JSON.parse(refreshed.text).refreshToken })).status).toBe(
      204,
    );
    expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
    expect(crashes).toEqual([]);
  });

  // No user-controlled key may reach an object's prototype: the parser refuses both forms.
  test.each([
    ['__proto__', '{"__proto__":{"admin":true},"username":"alice","password":"correct-horse-1"}'],
    [
      'constructor.prototype',
      '{"constructor":{"prototype":{"admin":true}},"username":"alice","password":"x"}',
    ],
  ])('refuses a %s key with 400 bad_request', async (_name, payload) => {
    const response = await post('/v1/login', payload, 'application/json');
    expect(response.status).toBe(400);
    expect(JSON.parse(response.text)).toMatchObject({ error: 'bad_request' });
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
  });
});
