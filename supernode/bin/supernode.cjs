#!/usr/bin/env node
// Runs the TypeScript CLI through tsx, so a checkout works without a build step.
require('tsx/cjs');
require('../cli.ts')
  .main(process.argv.slice(2))
  .catch((err) => {
    console.error(`supernode: ${err?.stack ?? String(err)}`);
    process.exit(1);
  });
