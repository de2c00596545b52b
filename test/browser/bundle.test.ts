/**
 * The browser SDK bundle: no Node built-ins, it loads and runs in Chromium (exports, the localStorage
 * store, a typed error for a node that is not there), and the package export names the built file.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Browser } from 'playwright-core';
import { BROWSER_BUNDLE_FILE, buildBrowserBundle } from '../../supernode/build/browser-bundle';
import type { WebStorage } from '../../supernode/client/credential-store';
import { freePorts } from '../../supernode/local/fleet';
import { launchChromium } from './browser';

// The page imports the module the way an application would; the test reads it from `window.sdk`.
const PAGE = `<!doctype html><title>sdk</title>
<script type="module">import * as sdk from '/sdk.js'; window.sdk = sdk;</script>`;

const ROOT = join(__dirname, '../..');
const TSX = join(ROOT, 'node_modules/tsx/dist/cli.mjs');

let sdk: string;
let browser: Browser;

beforeAll(async () => {
  [sdk, browser] = await Promise.all([buildBrowserBundle(), launchChromium()]);
}, 30_000);
afterAll(async () => {
  await browser?.close();
});

test('the bundle is one ES module with no Node built-ins, no require and no ws', () => {
  expect(sdk).toMatch(/^export \{/m);
  expect(sdk).not.toMatch(/\brequire\(/);
  // Every import the module still makes: none, everything is inlined.
  expect(sdk).not.toMatch(/^\s*import\b|\bimport\(/m);
  expect(sdk).not.toMatch(/["']node:[a-z_/]+["']/);
  expect(sdk).not.toMatch(/\bBuffer\.|\bprocess\.|__dirname/);
  // The browser transport is in, the ws one is not (its error texts are distinctive).
  expect(sdk).toContain('no WebSocket in this environment');
  expect(sdk).not.toContain('perMessageDeflate');
});

test('the bundle loads in Chromium: its classes work over the browser APIs', async () => {
  const page = await browser.newPage();
  try {
    await page.route('http://sdk.test/**', (route) => {
      const path = new URL(route.request().url()).pathname;
      return path === '/sdk.js'
        ? route.fulfill({ contentType: 'text/javascript', body: sdk })
        : route.fulfill({ contentType: 'text/html', body: PAGE });
    });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto('http://sdk.test/');
    await page.waitForFunction(() => 'sdk' in globalThis, undefined, { timeout: 10_000 });
    const [closedPort] = await freePorts(1);
    const result = await page.evaluate(async (port) => {
      // The page's globals (this file is type-checked without the DOM library).
      // biome-ignore lint/suspicious/noExplicitAny: the module as the page sees it
      const { sdk, localStorage } = globalThis as unknown as { sdk: any; localStorage: WebStorage };
      const store = new sdk.WebStorageCredentialStore();
      await store.save('alice', { accessToken: 'a', refreshToken: 'r', expiresAt: 5 });
      const saved = localStorage.getItem('supernode-tier:tokens:alice');
      const loaded = await store.load('alice');
      await store.clear('alice');
      let refused: { name: string; code: string } | undefined;
      try {
        await sdk.SupernodeSession.connect({ url: `ws://127.0.0.1:${port}`, token: 't', timeoutMs: 5000 });
      } catch (error) {
        refused = { name: (error as Error).name, code: (error as { code: string }).code };
      }
      return {
        exports: Object.keys(sdk).sort(),
        saved,
        loaded,
        cleared: localStorage.getItem('supernode-tier:tokens:alice'),
        refused,
      };
    }, closedPort);
    expect(errors).toEqual([]);
    expect(result.exports).toEqual(
      expect.arrayContaining([
        'AuthClient',
        'AuthError',
        'ClientError',
        'MemoryCredentialStore',
        'SessionError',
        'SupernodeClient',
        'SupernodeSession',
        'WebStorageCredentialStore',
        'webSocketTransport',
      ]),
    );
    expect(JSON.parse(result.saved ?? 'null')).toEqual({ accessToken: 'a', refreshToken: 'r', expiresAt: 5 });
    expect(result.loaded).toEqual({ accessToken: 'a', refreshToken: 'r', expiresAt: 5 });
    expect(result.cleared).toBeNull();
    expect(result.refused).toEqual({ name: 'SessionError', code: 'connect_failed' });
  } finally {
    await page.close();
  }
});

test('`npm run build:browser` writes the file that `supernode-tier/browser` resolves to, an ES module Node can load too', async () => {
  const packageJson = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  expect(packageJson.exports['./browser']).toBe(`./${BROWSER_BUNDLE_FILE}`);
  expect(packageJson.scripts['build:browser']).toBe(
    `tsx supernode/build/write-browser-bundle.ts ${BROWSER_BUNDLE_FILE}`,
  );
  // Node's own resolver (Jest's wants the file to exist; dist/ is built, not committed).
  const resolved = spawnSync(
    process.execPath,
    ['--input-type=module', '-e', "console.log(import.meta.resolve('supernode-tier/browser'))"],
    { cwd: ROOT, encoding: 'utf8' },
  );
  expect(resolved.stdout.trim()).toBe(`file://${join(ROOT, BROWSER_BUNDLE_FILE)}`);

  // The script's command, into a temporary directory rather than the checkout's dist/.
  const dir = await mkdtemp(join(tmpdir(), 'browser-bundle-'));
  try {
    const outfile = join(dir, 'supernode-client.mjs');
    const built = spawnSync(
      process.execPath,
      [TSX, join(ROOT, 'supernode/build/write-browser-bundle.ts'), outfile],
      {
        encoding: 'utf8',
      },
    );
    expect(built.stderr).toBe('');
    expect(built.status).toBe(0);
    expect(readFileSync(outfile, 'utf8')).toBe(sdk);
    const loaded = spawnSync(
      process.execPath,
      [
        '--input-type=module',
        '-e',
        `const m = await import(${JSON.stringify(outfile)}); console.log(typeof m.SupernodeClient)`,
      ],
      { encoding: 'utf8' },
    );
    expect(loaded.stdout.trim()).toBe('function');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
