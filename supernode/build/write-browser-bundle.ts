/**
 * `npm run build:browser`: writes the browser SDK bundle. A script of its own, not a
 * `require.main === module` block in browser-bundle.ts: inside the one-file runtime bundle that check
 * is true for every module, and the demo's import of browser-bundle.ts would start a build.
 */
import { BROWSER_BUNDLE_FILE, writeBrowserBundle } from './browser-bundle';

const outfile = process.argv[2] ?? BROWSER_BUNDLE_FILE;
writeBrowserBundle(outfile).then(
  (bytes) => console.log(`browser bundle: ${outfile} (${bytes} bytes)`),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
