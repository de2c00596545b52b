#!/usr/bin/env node
import { buildTierApp } from '../lib/app';
import { TierConfigError } from '../lib/config';

// Settings come from cdk.json's context or `-c key=value` (docs/deploy.md). A bad value stops here,
// before synthesis, with one line that names it.
try {
  buildTierApp({ nag: true });
} catch (err) {
  if (!(err instanceof TierConfigError)) throw err;
  console.error(`supernode-tier: ${err.message}`);
  process.exit(1);
}
