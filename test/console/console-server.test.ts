/**
 * The console server against real and misbehaving "nodes": every answer is checked against the
 * schema, and one that does not match is shown as bad data while the others carry on; one stream of
 * snapshots over SSE; the loopback-or-admin-token rule; only the newest drill charts are served.
 */

import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from '../../supernode/local/fleet';
import type { Snapshot } from '../../supernode/web/poller';
import { buildConsoleServer, type ConsoleServer } from '../../supernode/web/server';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

const ADMIN_TOKEN = 'console-admin-token-0123456789abcdef';

/** An address of this machine that is not loopback, to call the console from "elsewhere". */
function outsideAddress(): string {
  const found = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && !i.internal && i.family === 'IPv4')?.address;
  if (!found) throw new Error('this test needs a network interface other than loopback (an IPv4 address)');
  return found;
}

/** Answers GET /status with whatever `answer` says, as a broken or hostile node would. */
function fakeNode(answer: (res: import('node:http').ServerResponse) => void): Promise<Server> {
  const server = createServer((req, res) => {
    if (req.url === '/status') answer(res);
    else res.writeHead(404).end();
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}
const urlOf = (server: Server) => `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

let keys: TestKeys;
let good: RunningNode;
const fakes: Server[] = [];
let consoleServer: ConsoleServer;
let consolePort: number;
let drillDir: string;
let goneUrl: string;

beforeAll(async () => {
  keys = await makeTestKeys();
  good = await startTestNode(keys, { nodeId: 'good-node' });
  const realStatus = (await (await fetch(`http://127.0.0.1:${good.port}/status`)).json()) as object;
  const json = (body: unknown) => (res: import('node:http').ServerResponse) =>
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  fakes.push(
    // A real node's answer with one field wrong: nodeId a number.
    await fakeNode(json({ ...realStatus, nodeId: 5 })),
    await fakeNode((res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end('<html>hello</html>'),
    ),
    await fakeNode((res) => res.writeHead(500).end('{}')),
    // Over the size limit, without saying so in Content-Length.
    await fakeNode((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(`"${'x'.repeat(600 * 1024)}"`);
    }),
  );
  // A port nothing listens on: a node that has gone.
  goneUrl = `http://127.0.0.1:${(await freePorts(1))[0]}`;

  drillDir = await mkdtemp(join(tmpdir(), 'console-drills-'));
  const svg = (label: string) => `<svg xmlns="http://www.w3.org/2000/svg"><text>${label}</text></svg>`;
  await writeFile(join(drillDir, 'storm-older.svg'), svg('older storm'));
  await writeFile(join(drillDir, 'storm-newer.svg'), svg('newer storm'));
  await writeFile(join(drillDir, 'crash-only.svg'), svg('crash'));
  await writeFile(join(drillDir, 'notes.txt'), 'not a chart');
  const old = new Date(Date.now() - 3_600_000);
  await utimes(join(drillDir, 'storm-older.svg'), old, old);

  consoleServer = buildConsoleServer({
    url: [good.url.replace(/^ws/, 'http'), ...fakes.map(urlOf), goneUrl],
    host: '0.0.0.0',
    port: 0,
    pollMs: 250,
    drillDir,
    adminToken: ADMIN_TOKEN,
    logLevel: 'silent',
  });
  consolePort = (await consoleServer.listen()).port;
});

afterAll(async () => {
  await consoleServer?.close();
  await good?.node.close();
  await Promise.all(fakes.map((f) => new Promise((r) => f.close(r))));
  await keys?.cleanup();
  if (drillDir) await rm(drillDir, { recursive: true, force: true });
});

const local = (path: string, init?: RequestInit) => fetch(`http://127.0.0.1:${consolePort}${path}`, init);

test('a node that answers something else is "bad data" (with why); one that does not answer is "gone"', async () => {
  const snapshot = (await (await local('/console/api/snapshot')).json()) as Snapshot;
  const states = snapshot.nodes.map((n) => ({ state: n.state, problem: n.problem }));
  expect(states).toEqual([
    { state: 'ready', problem: undefined },
    { state: 'bad_data', problem: expect.stringContaining('/nodeId') },
    { state: 'bad_data', problem: 'answer is not JSON' },
    { state: 'bad_data', problem: 'answered HTTP 500' },
    { state: 'bad_data', problem: expect.stringContaining('over') },
    { state: 'gone', problem: expect.stringContaining('ECONNREFUSED') },
  ]);
  expect(snapshot.nodes[0].status).toMatchObject({ nodeId: 'good-node', sessions: 0 });
  // Nothing of a bad answer is passed on.
  expect(snapshot.nodes.slice(1).every((n) => n.status === undefined)).toBe(true);
  expect(snapshot.auth).toBeNull();
});

/** The first `count` events of the stream, then the request is ended. */
function readEvents(path: string, count: number, headers: Record<string, string> = {}, host = '127.0.0.1') {
  return new Promise<{ response: IncomingMessage; events: Snapshot[] }>((resolve, reject) => {
    const req = httpRequest({ host, port: consolePort, path, headers }, (response) => {
      const events: Snapshot[] = [];
      let buffer = '';
      if (response.statusCode !== 200) {
        response.resume();
        resolve({ response, events });
        return;
      }
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        buffer += chunk;
        let end = buffer.indexOf('\n\n');
        while (end >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block.split('\n').find((line) => line.startsWith('data: '));
          if (data) events.push(JSON.parse(data.slice(6)) as Snapshot);
          if (events.length === count) {
            req.destroy();
            resolve({ response, events });
            return;
          }
          end = buffer.indexOf('\n\n');
        }
      });
    });
    req.on('error', reject);
    req.end();
  });
}

test('SSE: the current snapshot at once, then one per poll, the same for every browser', async () => {
  const [first, second] = await Promise.all([
    readEvents('/console/events', 3),
    readEvents('/console/events', 3),
  ]);
  expect(first.response.headers['content-type']).toBe('text/event-stream; charset=utf-8');
  for (const { events } of [first, second]) {
    expect(events).toHaveLength(3);
    expect(events.every((e) => e.nodes.length === 6)).toBe(true);
    // Later polls, not the same snapshot again.
    expect(new Set(events.map((e) => e.at)).size).toBe(3);
  }
});

test('SSE: a session opened on the node shows in the next snapshots', async () => {
  const session = await connectAs(good, keys, 'erin');
  try {
    let sessions = 0;
    await waitFor(
      () => {
        sessions = consoleServer.poller.snapshot.nodes[0].status?.sessions ?? -1;
        return sessions === 1;
      },
      5000,
      'the session in the snapshot',
    );
    const { events } = await readEvents('/console/events', 1);
    expect(events[0].nodes[0].status?.sessions).toBe(1);
  } finally {
    await session.close();
  }
});

describe('who may see the console', () => {
  const outside = (path: string, init?: RequestInit) =>
    fetch(`http://${outsideAddress()}:${consolePort}${path}`, { redirect: 'manual', ...init });

  test('loopback: every console route, no token needed', async () => {
    for (const path of ['/console', '/console/console.js', '/console/console.css', '/console/api/snapshot'])
      expect({ path, status: (await local(path)).status }).toEqual({ path, status: 200 });
    const page = await local('/console');
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await page.text()).toContain('<script src="/console/console.js"');
  });

  test('from elsewhere without the token: 403 on the page, the API, the stream and the charts', async () => {
    for (const path of [
      '/console',
      '/console/api/snapshot',
      '/console/events',
      '/console/charts/crash-only.svg',
    ]) {
      const response = await outside(path);
      expect({ path, status: response.status }).toEqual({ path, status: 403 });
      expect(await response.json()).toMatchObject({ error: 'forbidden' });
    }
    const wrong = await outside('/console/api/snapshot', {
      headers: { authorization: `Bearer ${'x'.repeat(36)}` },
    });
    expect(wrong.status).toBe(403);
    expect((await outside(`/console?token=${'y'.repeat(36)}`)).status).toBe(403);
  });

  test('from elsewhere with the token: as a bearer header, or once in the URL, which sets a cookie', async () => {
    const bearer = await outside('/console/api/snapshot', {
      headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
    });
    expect(bearer.status).toBe(200);

    const entry = await outside(`/console?token=${ADMIN_TOKEN}`);
    expect(entry.status).toBe(303);
    // Redirected to the page without the token, so it does not stay in the address bar or history.
    expect(entry.headers.get('location')).toBe('/console');
    const cookie = entry.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/HttpOnly/);
    expect(cookie).toMatch(/SameSite=Strict/);
    const pair = cookie.split(';')[0];
    expect((await outside('/console', { headers: { cookie: pair } })).status).toBe(200);
    const stream = await readEvents('/console/events', 1, { cookie: pair }, outsideAddress());
    expect(stream.response.statusCode).toBe(200);
    expect(stream.events[0].nodes).toHaveLength(6);
  });
});

test('the newest chart of each drill is listed and served; nothing else is', async () => {
  const snapshot = consoleServer.poller.snapshot;
  expect(snapshot.charts.map((c) => [c.drill, c.name, c.url])).toEqual([
    ['storm', 'storm-newer.svg', '/console/charts/storm-newer.svg'],
    ['crash', 'crash-only.svg', '/console/charts/crash-only.svg'],
  ]);
  const chart = await local('/console/charts/storm-newer.svg');
  expect(chart.status).toBe(200);
  expect(chart.headers.get('content-type')).toBe('image/svg+xml; charset=utf-8');
  expect(chart.headers.get('content-security-policy')).toBe("default-src 'none'; style-src 'unsafe-inline'");
  expect(await chart.text()).toContain('newer storm');
  for (const name of ['storm-older.svg', 'notes.txt', '..%2Fnotes.txt', '%2E%2E%2F%2E%2E%2Fetc%2Fpasswd'])
    expect({ name, status: (await local(`/console/charts/${name}`)).status }).toEqual({ name, status: 404 });
});

test('a console with nothing to watch, or a node URL that is not http(s), stops with the option named', () => {
  expect(() => buildConsoleServer({ logLevel: 'silent' })).toThrow(
    'nothing to watch: give --url (CONSOLE_URLS) or --auth-url (CONSOLE_AUTH_URL)',
  );
  expect(() => buildConsoleServer({ url: ['ws://127.0.0.1:7001'], logLevel: 'silent' })).toThrow(
    /--url \(CONSOLE_URLS\) must be .*http:\/\/ or https:\/\/ URL/,
  );
});
