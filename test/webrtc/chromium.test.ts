import { existsSync } from 'node:fs';
import { type Browser, chromium, type Page } from 'playwright-core';
import { expectRefusedByOurServer, expectRelayedThroughOurServer, proofMessages } from './expect-relay';
import { startTurnFixture, type TurnFixture } from './fixture';
import { type PageServer, startPageServer } from './page-server';
import type { RelayReport } from './relay-proof';

/**
 * A real browser: Debian's Chromium, headless, driven by playwright-core. The page (page-server.ts)
 * fetches our iceServers and opens two relay-only peer connections in the same page.
 */

const CHROMIUM = '/usr/bin/chromium';
const GIVE_UP_AFTER_MS = 10_000;

/**
 * Chromium leaves the loopback interface out of the networks WebRTC gathers on. With another interface
 * up (eth0 here) that does not matter: its TURN sockets bind there and still reach 127.0.0.1. On a
 * host with loopback only (a sandbox without network) it gathers nothing at all; this switch lets it use
 * loopback, so the test does not depend on the machine having a network.
 */
const CHROMIUM_ARGS = ['--no-sandbox', '--allow-loopback-in-peer-connection'];

jest.setTimeout(30_000);

let browser: Browser | undefined;
let turn: TurnFixture | undefined;
let pages: PageServer | undefined;
let page: Page | undefined;

beforeAll(async () => {
  if (!existsSync(CHROMIUM))
    throw new Error(`${CHROMIUM} not found: install it: apt-get install -y chromium`);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
});

afterEach(async () => {
  await page?.close();
  await pages?.close();
  await turn?.close();
  page = undefined;
  pages = undefined;
  turn = undefined;
});

afterAll(async () => {
  await browser?.close();
});

/** Loads the page and runs the proof with the named ICE server set; the connections stay open. */
async function runInPage(
  set: 'valid' | 'wrong',
  messages: ReturnType<typeof proofMessages>,
): Promise<RelayReport> {
  turn = await startTurnFixture();
  pages = await startPageServer({ valid: turn.iceServers, wrong: turn.wrongIceServers });
  page = await (browser as Browser).newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  await page.goto(pages.url);
  const report = await page.evaluate(
    ([set, messages, giveUpAfterMs]) =>
      (globalThis as unknown as { runRelayProof(...args: unknown[]): Promise<RelayReport> }).runRelayProof(
        set,
        messages,
        giveUpAfterMs,
      ),
    [set, messages, GIVE_UP_AFTER_MS] as const,
  );
  expect(errors).toEqual([]);
  return report;
}

describe('headless Chromium through our TURN server', () => {
  it('connects two relay-only peer connections in a page, messages both ways, relay candidates on our server', async () => {
    const messages = proofMessages();
    const report = await runInPage('valid', messages);
    await expectRelayedThroughOurServer(report, turn as TurnFixture, messages);
  });

  it('does not connect with a password the server did not mint (negative control)', async () => {
    const report = await runInPage('wrong', proofMessages());
    expectRefusedByOurServer(report, turn as TurnFixture);
  });
});
