/**
 * The demo app as a Fastify plugin: the page, its scripts and style under /demo/, the browser SDK
 * bundle at /demo/sdk.js (built once, here, at registration) and /demo/config.json, which tells the
 * page where the auth service and the supernodes are.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildBrowserBundle } from '../build/browser-bundle';

export interface DemoRouteOptions {
  /** The auth service as the browser reaches it, e.g. http://127.0.0.1:8080. */
  authUrl: string;
  /** The supernodes' session URLs as the browser reaches them, e.g. ws://127.0.0.1:7001. */
  nodeUrls: string[];
}

const ASSETS: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.mjs': 'text/javascript; charset=utf-8',
  'direct.mjs': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

export async function demoRoutes(app: FastifyInstance, options: DemoRouteOptions): Promise<void> {
  const sdk = await buildBrowserBundle();
  const files = new Map<string, string>();
  for (const name of Object.keys(ASSETS)) files.set(name, await readFile(join(__dirname, name), 'utf8'));
  const config = JSON.stringify({ authUrl: options.authUrl, nodeUrls: options.nodeUrls });

  app.get('/demo', (_request, reply) => reply.redirect('/demo/'));
  app.get('/demo/', (_request, reply) => reply.type(ASSETS['index.html']).send(files.get('index.html')));
  app.get('/demo/sdk.js', (_request, reply) => reply.type('text/javascript; charset=utf-8').send(sdk));
  app.get('/demo/config.json', (_request, reply) => reply.type('application/json').send(config));
  for (const [name, type] of Object.entries(ASSETS)) {
    app.get(`/demo/${name}`, (_request, reply) => reply.type(type).send(files.get(name)));
  }
}
