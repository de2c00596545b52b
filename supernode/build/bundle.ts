import { type BuildOptions, build, buildSync } from 'esbuild';

/**
 * The runtime as one CommonJS file for EC2: every dependency inlined, nothing to install on the
 * instance but Node. dynalite (native LevelDB, the local embedded store) and esbuild (the demo's
 * browser SDK build) stay out: in AWS the auth service talks to DynamoDB and no node serves the demo.
 */
function options(outfile: string): BuildOptions {
  return {
    entryPoints: [`${__dirname}/../cli.ts`],
    outfile,
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    minify: false,
    sourcemap: false,
    legalComments: 'none',
    // esbuild builds the demo's browser SDK on a developer's machine (a native binary per platform);
    // instances never serve the demo, and the console loads the demo lazily, surviving its absence.
    external: ['dynalite', 'esbuild'],
    logLevel: 'warning',
    // The CLI starts only when run as the entry point; keep that check true in the bundle.
    banner: { js: '#!/usr/bin/env node' },
  };
}

export async function bundle(outfile: string): Promise<void> {
  await build(options(outfile));
}

/** The same bundle, synchronously: CDK's local bundling hook cannot wait on a promise. */
export function bundleSync(outfile: string): void {
  buildSync(options(outfile));
}

if (require.main === module) {
  const outfile = process.argv[2] ?? 'dist/supernode.cjs';
  bundle(outfile).then(
    () => console.log(`bundle: ${outfile}`),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
