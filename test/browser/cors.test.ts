/**
 * CORS on the auth service (--cors-origins): the demo page is served from another origin than the
 * API. Off by default; on, it answers only the listed origins.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { authOptionTable } from '../../supernode/config/auth-options';
import { ConfigError, parseOptions, resolveOptions } from '../../supernode/config/options';

const PAGE = 'http://127.0.0.1:8090';
let dataDir: string;
const services: AuthService[] = [];

async function start(corsOrigins?: string[]): Promise<string> {
  const auth = await buildAuthService({
    scryptN: 1024,
    hashConcurrency: 1,
    logLevel: 'silent',
    dataDir: await mkdtemp(join(dataDir, 'auth-')),
    port: 0,
    corsOrigins,
  });
  services.push(auth);
  return (await auth.listen()).url;
}

function preflight(url: string, origin: string): Promise<Response> {
  return fetch(`${url}/v1/login`, {
    method: 'OPTIONS',
    headers: {
      origin,
      'access-control-request-method': 'POST',
      'access-control-request-headers': 'content-type',
    },
  });
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'auth-cors-'));
});
afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
  await rm(dataDir, { recursive: true, force: true });
});

test('by default no CORS headers: browsers keep other origins out', async () => {
  const url = await start();
  const answer = await preflight(url, PAGE);
  expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  const login = await fetch(`${url}/v1/login`, {
    method: 'POST',
    headers: { origin: PAGE, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'nobody', password: 'whatever-1' }),
  });
  expect(login.headers.get('access-control-allow-origin')).toBeNull();
});

test('with --cors-origins, a listed origin may call the API, another may not', async () => {
  const url = await start([PAGE, 'https://app.example']);
  const allowed = await preflight(url, PAGE);
  expect(allowed.status).toBe(204);
  expect(allowed.headers.get('access-control-allow-origin')).toBe(PAGE);
  expect(allowed.headers.get('access-control-allow-methods')).toBe('GET, POST');
  expect(allowed.headers.get('access-control-allow-headers')).toBe('content-type');
  // No cookies are involved (tokens travel in bodies), so credentials are never allowed.
  expect(allowed.headers.get('access-control-allow-credentials')).toBeNull();

  const other = await preflight(url, 'http://evil.example');
  expect(other.headers.get('access-control-allow-origin')).toBeNull();

  // The answer itself carries the header too, typed errors included.
  const login = await fetch(`${url}/v1/login`, {
    method: 'POST',
    headers: { origin: PAGE, 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'nobody', password: 'whatever-1' }),
  });
  expect(login.status).toBe(401);
  expect(login.headers.get('access-control-allow-origin')).toBe(PAGE);
});

test('AUTH_CORS_ORIGINS takes comma-separated origins and refuses anything else', () => {
  const config = parseOptions(authOptionTable, [], {
    AUTH_CORS_ORIGINS: 'http://127.0.0.1:8090,https://app.example',
  });
  expect(config.corsOrigins).toEqual(['http://127.0.0.1:8090', 'https://app.example']);
  expect(parseOptions(authOptionTable, [], {}).corsOrigins).toEqual([]);
  for (const bad of ['https://app.example/', 'app.example', '*', 'ftp://app.example', 'https://a b']) {
    expect(() => resolveOptions(authOptionTable, { corsOrigins: [bad] })).toThrow(ConfigError);
  }
  expect(() => parseOptions(authOptionTable, ['--cors-origins', 'https://app.example/path'], {})).toThrow(
    /--cors-origins/,
  );
});
