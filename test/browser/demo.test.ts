/**
 * The demo app in headless Chromium against a real tier: the auth service (in-process, CORS open to
 * the demo's origin only) and two supernodes as child processes meshed over loopback, the demo
 * served by its own Fastify instance on a third origin. Two browser contexts are two people.
 * The tests share the tier and run in order.
 */
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import type { FleetNode } from '../../supernode/local/fleet';
import { type DemoTier, startDemoTier } from './demo-tier';

const SECRET = 'mesh-secret-for-browser-tests-0123456789';
const PASSWORD = 'correct-horse-1';
const SCREENSHOT = join(__dirname, '../../docs/images/demo.png');
/** Waits on the DOM: generous for a loaded 2-core machine, far below the test timeout. */
const DOM_WAIT = { timeout: 15_000 };

let tier: DemoTier<FleetNode>;
let fleet: FleetNode[] = [];
const pages: Record<'alice' | 'bob', Page> = {} as Record<'alice' | 'bob', Page>;

const passwordLogins = () => tier.authRequests('login');
const refreshes = () => tier.authRequests('refresh');
const openPage = (nodeIndex: number) => tier.openPage(nodeIndex);

async function signUp(page: Page, user: string): Promise<void> {
  await page.fill('#username', user);
  await page.fill('#password', PASSWORD);
  await page.click('#signup-button');
}

/** What the page says about its connection, for the message of a failed wait. */
async function pageState(page: Page): Promise<string> {
  const status = await page.textContent('#status').catch(() => '?');
  const events = await page
    .locator('#events li')
    .allTextContents()
    .catch(() => []);
  return `status: ${status}; events, newest first: ${events.join(' | ')}`;
}

async function connectedTo(page: Page, node: FleetNode): Promise<void> {
  try {
    await page.waitForSelector(`#status[data-state="connected"][data-node="${node.id}"]`, DOM_WAIT);
  } catch (error) {
    throw new Error(`not connected to ${node.id}: ${await pageState(page)}`, { cause: error });
  }
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#message-input', text);
  await page.click('#send-button');
  await page.waitForSelector(
    `#messages .message.out[data-delivery="delivered"]:has-text(${JSON.stringify(text)})`,
    DOM_WAIT,
  );
}

async function heard(page: Page, text: string): Promise<void> {
  await page.waitForSelector(`#messages .message.in:has-text(${JSON.stringify(text)})`, DOM_WAIT);
}

beforeAll(async () => {
  tier = await startDemoTier({ name: 'demo', meshSecret: SECRET, domTimeoutMs: DOM_WAIT.timeout });
  fleet = tier.fleet;
}, 30_000);

afterAll(() => tier?.close());

test('two people sign up in two browsers, find each other and chat across two nodes', async () => {
  pages.alice = await openPage(1);
  pages.bob = await openPage(2);
  await signUp(pages.alice, 'alice');
  await signUp(pages.bob, 'bob');
  await connectedTo(pages.alice, fleet[0]);
  await connectedTo(pages.bob, fleet[1]);
  expect(await passwordLogins()).toBe(2);

  // Alice adds Bob; the directory, asked through her node, finds him on the other one.
  await pages.alice.fill('#contact-name', 'bob');
  await pages.alice.click('#add-contact button');
  await pages.alice.waitForSelector(
    `#contacts li[data-user="bob"][data-presence="online"]:has-text("${fleet[1].url}")`,
    DOM_WAIT,
  );

  await say(pages.alice, 'Hi Bob! I am on the first supernode.');
  // Bob has never heard of Alice: her message adds her to his people and opens the conversation.
  await heard(pages.bob, 'Hi Bob! I am on the first supernode.');
  await pages.bob.waitForSelector('#contacts li[data-user="alice"]', DOM_WAIT);
  await say(pages.bob, 'Hello Alice, the mesh relayed that from the second one.');
  await heard(pages.alice, 'Hello Alice, the mesh relayed that from the second one.');
  await pages.alice.waitForSelector('#contacts li[data-user="bob"][data-presence="online"]', DOM_WAIT);

  await pages.alice.screenshot({ path: SCREENSHOT });
  expect(tier.pageErrors).toEqual([]);
});

test('kill -9 of the node the page is on: the SDK resumes on the other node without the password', async () => {
  const loginsBefore = await passwordLogins();
  const refreshesBefore = await refreshes();
  const aliceNode = fleet[0];
  aliceNode.child?.kill('SIGKILL');

  await connectedTo(pages.alice, fleet[1]);
  await pages.alice.waitForSelector('#events li[data-event="rehomed"]', DOM_WAIT);
  expect(await pages.alice.textContent('#status')).toContain('resumed with stored tokens');
  // The page was never asked for the password again, and the auth service saw no login nor refresh.
  await expect(pages.alice.isHidden('#login')).resolves.toBe(true);
  expect(await pages.alice.locator('#events li[data-event="password_login"]').count()).toBe(1);
  expect(await passwordLogins()).toBe(loginsBefore);
  expect(await refreshes()).toBe(refreshesBefore);

  // Still chatting, now both on the surviving node.
  await say(pages.alice, 'Still here after my node died.');
  await heard(pages.bob, 'Still here after my node died.');

  // A reload starts a new SDK in the page: it resumes from localStorage, again without a login.
  await pages.alice.reload();
  await pages.alice.waitForSelector('body[data-ready="true"]', DOM_WAIT);
  await connectedTo(pages.alice, fleet[1]);
  expect(await pages.alice.textContent('#status')).toContain('resumed with stored tokens');
  expect(await passwordLogins()).toBe(loginsBefore);
  expect(tier.pageErrors).toEqual([]);
});
