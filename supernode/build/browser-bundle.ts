import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { build, type Plugin } from 'esbuild';

const CLIENT = join(__dirname, '..', 'client');

/**
 * Where `npm run build:browser` writes the bundle: the file package.json's `supernode-tier/browser`
 * export names. `.mjs`, so Node and bundlers take it as an ES module in this CommonJS package.
 */
export const BROWSER_BUNDLE_FILE = 'dist/browser/supernode-client.mjs';

/**
 * The one module that differs by environment: a session's default transport is `ws` in Node and the
 * global WebSocket here (what a package.json "browser" field would map, said where it happens).
 */
const browserTransport: Plugin = {
  name: 'browser-transport',
  setup(build) {
    build.onResolve({ filter: /^\.\/default-transport$/ }, (args) =>
      args.resolveDir === CLIENT ? { path: join(CLIENT, 'default-transport.browser.ts') } : undefined,
    );
  },
};

/**
 * The client SDK for browsers: one ES module, no Node built-ins (the browser's WebSocket, fetch and
 * localStorage instead). Returns the JS text; `npm run build:browser` writes it to BROWSER_BUNDLE_FILE.
 */
export async function buildBrowserBundle(): Promise<string> {
  const result = await build({
    entryPoints: [join(CLIENT, 'browser.ts')],
    bundle: true,
    write: false,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
    plugins: [browserTransport],
  });
  return result.outputFiles[0].text;
}

/** Writes the bundle to `outfile` (what `npm run build:browser` runs, through write-browser-bundle.ts). */
export async function writeBrowserBundle(outfile = BROWSER_BUNDLE_FILE): Promise<number> {
  const text = await buildBrowserBundle();
  await mkdir(dirname(outfile), { recursive: true });
  await writeFile(outfile, text);
  return text.length;
}
