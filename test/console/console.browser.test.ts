/**
 * The operator console in a real browser (Debian's Chromium through playwright-core) over a real
 * local tier: the auth service, two meshed supernodes and the console, all child processes of
 * `supernode local`. What a person would see is checked in the DOM: the node count, session counts
 * that move live as clients join (server-sent events, no reload), a drained node shown draining and
 * then gone while its clients move to the other node. A screenshot is saved to docs/images/console.png.
 */
import { existsSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { type Browser, chromium, type Page } from 'playwright-core';
import { AuthClient } from '../../supernode/client/auth-client';
import { SupernodeSession } from '../../supernode/client/session';
import {
  BANNER,
  exitWithin,
  stillRunning,
  type Tier,
  TierFixtures,
  tierPorts,
  waitForOutput,
} from '../local/helpers';

const CHROMIUM = '/usr/bin/chromium';
const DOCS = resolve(__dirname, '../../docs');
const SCREENSHOT = join(DOCS, 'images', 'console.png');
/** Long enough for the console to show the drain (it polls every second), short enough for a test. */
const DRAIN_TIMEOUT_MS = 5000;

const fixtures = new TierFixtures();
let browser: Browser | undefined;
const sessions: SupernodeSession[] = [];

afterAll(async () => {
  await Promise.allSettled(sessions.map((s) => s.close()));
  await browser?.close();
  await fixtures.cleanup();
});

/** The little of the DOM readView uses (the type-check runs without the DOM library). */
interface PageElement {
  textContent: string | null;
  getAttribute(name: string): string | null;
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement>;
  complete?: boolean;
  naturalWidth?: number;
}

/** What the console shows, read from its DOM (runs in the page: plain DOM calls, no helpers). */
function readView() {
  const document = (
    globalThis as unknown as { document: PageElement & { getElementById(id: string): PageElement | null } }
  ).document;
  const text = (id: string) => document.getElementById(id)?.textContent ?? '';
  return {
    rows: Array.from(document.querySelectorAll('#nodes tbody tr')).map((tr) => ({
      node: tr.getAttribute('data-node'),
      state: tr.getAttribute('data-state'),
      badge: tr.querySelector('.state .badge')?.textContent,
      sessions: Number(tr.querySelector('td.sessions')?.getAttribute('data-value') ?? Number.NaN),
      records: Number(tr.querySelector('td.records')?.getAttribute('data-value') ?? Number.NaN),
      refusals: tr.querySelector('td.refusals')?.textContent,
      links: Array.from(tr.querySelectorAll('[data-peer]')).map(
        (link) => `${link.getAttribute('data-peer')}:${link.getAttribute('data-link')}`,
      ),
    })),
    nodesReady: text('nodes-ready'),
    nodesDraining: text('nodes-draining'),
    nodesGone: text('nodes-gone'),
    sessionsTotal: text('sessions-total'),
    authState: document.querySelector('[data-auth-state]')?.getAttribute('data-auth-state'),
    authInFlight: text('auth-inflight'),
    authCapacity: text('auth-capacity'),
    chartsShown: Array.from(document.querySelectorAll('#charts img')).filter(
      (img) => img.complete === true && (img.naturalWidth ?? 0) > 0,
    ).length,
    refusals: Array.from(document.querySelectorAll('#refusals tbody tr[data-reason]')).map((tr) =>
      Array.from(tr.querySelectorAll('td'))
        .map((td) => td.textContent)
        .join(' '),
    ),
    live: text('live'),
  };
}
type View = ReturnType<typeof readView>;

/** Resolves once the console shows what `shows` wants; the failure names it and what was shown. */
async function until(page: Page, what: string, shows: (view: View) => boolean): Promise<View> {
  const deadline = Date.now() + 20_000;
  let view = await page.evaluate(readView);
  while (!shows(view)) {
    if (Date.now() > deadline)
      throw new Error(`console never showed ${what}; it showed ${JSON.stringify(view)}`);
    await new Promise((r) => setTimeout(r, 100));
    view = await page.evaluate(readView);
  }
  return view;
}

const rowOf = (view: View, node: string) => view.rows.find((r) => r.node === node);

test('the console shows the tier live: nodes, sessions as they join, a drained node going, its clients moving', async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install it: apt-get install -y chromium`);
  const ports = await tierPorts(2);
  const consolePort = ports.console;
  const dataDir = await fixtures.dataDir();
  // Charts of earlier drills (the ones in docs/), where the drills write them.
  await mkdir(join(dataDir, 'drills'), { recursive: true });
  await copyFile(join(DOCS, 'drill-storm.svg'), join(dataDir, 'drills', 'storm-2026-01-01T00-00-00.svg'));
  await copyFile(join(DOCS, 'drill-crash.svg'), join(dataDir, 'drills', 'crash-2026-01-01T00-00-00.svg'));
  const tier: Tier = fixtures.start(ports, dataDir, {
    SUPERNODE_LOCAL_NODES: '2',
    SUPERNODE_DRAIN_TIMEOUT_MS: String(DRAIN_TIMEOUT_MS),
    SUPERNODE_LOCAL_TURN: 'false',
  });
  await waitForOutput(tier, BANNER, 60_000);
  const consoleUrl = `http://127.0.0.1:${consolePort}/console`;
  expect(tier.output()).toContain(`console: ${consoleUrl}`);
  expect(tier.output()).toContain(`demo: http://127.0.0.1:${consolePort}/demo/`);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  const pageErrors: string[] = [];
  page.on('pageerror', (err) => pageErrors.push(err.message));
  // A CSP violation (an inline style, say) is reported here, not as a page error.
  page.on('console', (message) => {
    if (message.type() === 'error') pageErrors.push(message.text());
  });
  await page.goto(consoleUrl);
  // Set once: if the page reloaded, this would be gone.
  await page.evaluate(() => {
    (globalThis as unknown as { loadedOnce: boolean }).loadedOnce = true;
  });

  let view = await until(
    page,
    'two ready nodes',
    (v) => v.rows.filter((r) => r.state === 'ready').length === 2,
  );
  expect(view.nodesReady).toBe('2 / 2');
  view = await until(
    page,
    'the mesh link live on both sides',
    (v) =>
      rowOf(v, 'local-1')?.links.join() === 'local-2:live' &&
      rowOf(v, 'local-2')?.links.join() === 'local-1:live',
  );
  view = await until(
    page,
    'the auth service up and the drill charts',
    (v) => v.authState === 'up' && v.chartsShown === 2,
  );
  expect(view.authInFlight).toMatch(/^0 \/ \d+$/);
  expect(Number(view.authCapacity)).toBeGreaterThan(0);
  expect(view.live).toBe('live');

  // Clients join: three users on local-1, two on local-2.
  const auth = new AuthClient(`http://127.0.0.1:${ports.auth}`);
  const users = ['ada', 'bob', 'cyd', 'dee', 'eve'];
  const tokens = new Map<string, string>();
  for (const user of users) {
    await auth.signup(user, `${user}-secret-1`);
    tokens.set(user, (await auth.login(user, `${user}-secret-1`)).accessToken);
  }
  const node1 = `ws://127.0.0.1:${ports.base}`;
  const node2 = `ws://127.0.0.1:${ports.base + 1}`;
  const onNode2: SupernodeSession[] = [];
  for (const [i, user] of users.entries()) {
    const session = await SupernodeSession.connect({
      url: i < 3 ? node1 : node2,
      token: tokens.get(user) as string,
    });
    sessions.push(session);
    if (i >= 3) onNode2.push(session);
  }
  view = await until(
    page,
    'the sessions per node',
    (v) => rowOf(v, 'local-1')?.sessions === 3 && rowOf(v, 'local-2')?.sessions === 2,
  );
  expect(view.sessionsTotal).toBe('5');
  // A client with a bad token is refused by local-1, and shows under the refusals of the last minute.
  await expect(SupernodeSession.connect({ url: node1, token: 'not-a-token' })).rejects.toThrow();
  view = await until(page, 'the refusal', (v) => v.refusals.includes('local-1 token_invalid 1'));
  expect(rowOf(view, 'local-1')?.refusals).toBe('1 / 1');
  // R = 2 owners of each record and two live members: each node holds all five.
  await until(page, 'the directory spread', (v) => v.rows.map((r) => r.records).join() === '5,5');

  // Drain local-2. Its clients do what the SDK does with the drain advice: open a session on the
  // other node. Their old sessions stay until the node closes them at its deadline.
  const moved = onNode2.map(
    (session, i) =>
      new Promise<void>((resolveMove, reject) =>
        session.once('drain', () => {
          SupernodeSession.connect({ url: node1, token: tokens.get(users[3 + i]) as string }).then((s) => {
            sessions.push(s);
            resolveMove();
          }, reject);
        }),
      ),
  );
  const drain = await fetch(`http://127.0.0.1:${ports.base + 1}/admin/drain`, { method: 'POST' });
  expect(drain.status).toBe(202);
  await Promise.all(moved);
  view = await until(
    page,
    'local-2 draining and the clients on local-1',
    (v) => rowOf(v, 'local-2')?.state === 'draining' && rowOf(v, 'local-1')?.sessions === 5,
  );
  expect(rowOf(view, 'local-2')?.badge).toBe('draining');
  expect(view.nodesDraining).toBe('1');
  await page.screenshot({ path: SCREENSHOT, fullPage: true });

  view = await until(page, 'local-2 gone', (v) => rowOf(v, 'local-2')?.state === 'gone');
  expect(view).toMatchObject({ nodesReady: '1 / 2', nodesGone: '1', sessionsTotal: '5' });
  expect(rowOf(view, 'local-1')?.sessions).toBe(5);
  expect(await page.evaluate(() => (globalThis as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(
    true,
  );
  expect(pageErrors).toEqual([]);

  expect(tier.output()).toContain(
    'local tier: supernode local-2 exited with code 0; still running: auth service, supernode local-1, console',
  );

  // Ctrl-C: the console stops with the rest, cleanly, and nothing is left running. (The tier's exit
  // code is 1 all the same: a component, local-2, exited while the tier ran.)
  process.kill(-(tier.child.pid as number), 'SIGINT');
  expect(await exitWithin(tier, 30_000)).toBe(1);
  expect(tier.output()).toContain('local tier: stopped (exit code 1)');
  expect(tier.output()).not.toMatch(/console exited .* while stopping/);
  expect(await stillRunning(tier.seen, 5000)).toEqual([]);
}, 150_000);
