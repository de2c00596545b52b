#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { SupernodeTierStack } from '../lib/supernode-tier-stack';

// Environment-agnostic on purpose: `cdk synth` must work offline, with no credentials or lookups.
const app = new App();
new SupernodeTierStack(app, 'SupernodeTier', {
  description: 'Supernode Tier: always-on supernode fleet and storm-proof auth service',
});
