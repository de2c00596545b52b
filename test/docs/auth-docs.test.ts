/**
 * docs/auth.md (and the auth row of protocol.md's local tier ports) against a real auth service: every
 * documented route exists, the admin route answers loopback callers without a credential unless an
 * admin token is configured, and the documented port and option names are the code's.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth';
import { authOptionTable } from '../../supernode/config/auth-options';
import { brokenLinks, cell, firstTable, inlineCode, readDoc, routesIn, section } from './markdown';

const auth = readDoc('auth.md');
const protocol = readDoc('protocol.md');
const ADMIN_TOKEN = 'admin-token-of-the-auth-docs-test-0123456789';

let dataDir: string;
const services: AuthService[] = [];
/** One service without an admin token, shared by the tests that need no other configuration. */
let plain: { service: AuthService; url: string };

async function start(options: { adminToken?: string } = {}): Promise<{ service: AuthService; url: string }> {
  const service = await buildAuthService({
    dataDir: join(dataDir, String(services.length)),
    port: 0,
    scryptN: 1024,
    logLevel: 'silent',
    ...options,
  });
  services.push(service);
  const { url } = await service.listen();
  return { service, url };
}

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'auth-docs-'));
  plain = await start();
});
afterAll(async () => {
  await Promise.all(services.map((s) => s.close()));
  await rm(dataDir, { recursive: true, force: true });
});

/** The routes of the API table; `GET /a`, `/b` in one cell is GET for each. */
function apiRoutes(): Array<{ method: string; url: string }> {
  const table = firstTable(section(auth, '## API'));
  return table.rows.flatMap((row) => {
    const codes = inlineCode(cell(table, row, 'Route'));
    const [first] = routesIn(`\`${codes[0]}\``);
    if (!first) throw new Error(`API table: no METHOD /path in ${row[0]}`);
    return [first, ...codes.slice(1).map((url) => ({ method: first.method, url }))];
  });
}

describe('docs/auth.md#api', () => {
  it('every route of the API table is a route of the service', async () => {
    const { service } = plain;
    const routes = apiRoutes();
    expect(routes.length).toBeGreaterThanOrEqual(10);
    for (const route of routes) expect([route, service.app.hasRoute(route)]).toEqual([route, true]);
  });

  it('the local tier ports table (protocol.md) lists the same auth routes, on the default port', () => {
    const table = firstTable(section(protocol, '## Local tier ports'));
    const row = table.rows.find((r) => cell(table, r, 'Port') === String(authOptionTable.port.default));
    expect(row).toBeDefined();
    const listed = routesIn(cell(table, row as string[], 'Endpoints'));
    const key = (r: { method: string; url: string }) => `${r.method} ${r.url}`;
    expect(listed.map(key).sort()).toEqual(apiRoutes().map(key).sort());
    expect(inlineCode(cell(table, row as string[], 'Moved with'))).toEqual([authOptionTable.port.env]);
  });

  it('says where the service listens, and links to the local tier ports', () => {
    const intro = auth.slice(0, auth.indexOf('## API'));
    expect(intro).toContain(`HTTP port ${authOptionTable.port.default} of ${authOptionTable.host.default}`);
    expect(intro).toContain(`\`${authOptionTable.port.env}\``);
    expect(intro).toContain(`\`${authOptionTable.host.env}\``);
    expect(intro).toContain('(protocol.md#local-tier-ports)');
    expect(protocol.split('\n')).toContain('## Local tier ports');
  });
});

describe('docs/auth.md#admin-routes', () => {
  const text = section(auth, '### Admin routes');
  const disable = (url: string, user: string, headers: Record<string, string> = {}) =>
    fetch(`${url}/v1/admin/accounts/${user}/disable`, { method: 'POST', headers });
  const signUp = (url: string, username: string) =>
    fetch(`${url}/v1/accounts`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password: 'correct-horse-1' }),
    });

  it('names the option that guards it, as the code spells it', () => {
    expect(text).toContain(`\`--admin-token\` (\`${authOptionTable.adminToken.env}\``);
    expect(authOptionTable.adminToken.help).toMatch(/Without it, admin routes accept loopback callers only/);
    expect(text).toContain('32-256 non-space characters');
    expect(authOptionTable.adminToken.pattern.description).toBe('32-256 non-space characters');
  });

  it('without an admin token, a loopback caller needs no credential at all', async () => {
    const { url } = plain;
    expect((await signUp(url, 'victim')).status).toBe(201);
    const answer = await disable(url, 'victim');
    expect(answer.status).toBe(200);
    expect(await answer.json()).toEqual({ username: 'victim', disabled: true });
    expect(text).toMatch(
      /Anything that\s+runs on the host, or can make it send a request to itself, can disable any account/,
    );
  });

  it('with an admin token, loopback is not enough: only the bearer token is', async () => {
    const { url } = await start({ adminToken: ADMIN_TOKEN });
    expect((await signUp(url, 'victim')).status).toBe(201);
    const refused = await disable(url, 'victim');
    expect(refused.status).toBe(403);
    expect(await refused.json()).toMatchObject({ error: 'forbidden' });
    expect((await disable(url, 'victim', { authorization: 'Bearer wrong' })).status).toBe(403);
    expect((await disable(url, 'victim', { authorization: `Bearer ${ADMIN_TOKEN}` })).status).toBe(200);
    expect(text).toMatch(/403 `forbidden` even from loopback/);
  });
});

it('every link of docs/auth.md into docs/ resolves, anchors included', () => {
  expect(brokenLinks('auth.md')).toEqual([]);
});
