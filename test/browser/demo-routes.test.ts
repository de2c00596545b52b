/** The demo app's Fastify plugin: what it serves, with which types, and the page's configuration. */
import Fastify, { type FastifyInstance } from 'fastify';
import { buildBrowserBundle } from '../../supernode/build/browser-bundle';
import { demoRoutes } from '../../supernode/demo/routes';

let app: FastifyInstance;
let base: string;
const options = {
  authUrl: 'http://127.0.0.1:8080',
  nodeUrls: ['ws://127.0.0.1:7001', 'ws://127.0.0.1:7002'],
};

beforeAll(async () => {
  app = Fastify();
  await app.register(demoRoutes, options);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}, 30_000);
afterAll(async () => {
  await app?.close();
});

test('the page, its script and style, the SDK bundle and the configuration, each with its type', async () => {
  const page = await fetch(`${base}/demo/`);
  expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
  const html = await page.text();
  expect(html).toContain('<script type="module" src="app.mjs"></script>');
  expect(html).toContain('href="app.css"');

  const script = await fetch(`${base}/demo/app.mjs`);
  expect(script.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(await script.text()).toContain("from './sdk.js'");
  expect((await fetch(`${base}/demo/app.css`)).headers.get('content-type')).toBe('text/css; charset=utf-8');

  const sdk = await fetch(`${base}/demo/sdk.js`);
  expect(sdk.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(await sdk.text()).toBe(await buildBrowserBundle());

  await expect((await fetch(`${base}/demo/config.json`)).json()).resolves.toEqual(options);
});

test('/demo redirects to /demo/; nothing else of the folder is served', async () => {
  const bare = await fetch(`${base}/demo`, { redirect: 'manual' });
  expect(bare.status).toBe(302);
  expect(bare.headers.get('location')).toBe('/demo/');
  for (const path of ['/demo/routes.ts', '/demo/../package.json', '/demo/index.htm']) {
    expect((await fetch(`${base}${path}`)).status).toBe(404);
  }
});
