import { Template } from 'aws-cdk-lib/assertions';
import { buildTierApp, type TierApp } from '../../lib/app';

// The context users deploy with: cdk.json's, or the tests synthesize a different template.
export const cdkJsonContext: Record<string, unknown> = require('../../cdk.json').context;

export interface SynthesizedTier extends TierApp {
  homeTemplate: Template;
  fleetTemplates: Template[];
}

/**
 * CDK's built-in CloudFormation validation (a WASM rule engine, about 0.7 s a synth) runs where the
 * tests check that a synth reports nothing: with cdk-nag (nag.test.ts, turn.test.ts) and the real
 * `cdk synth` (nag.test.ts). Tests that read templates skip it.
 */
export const WITHOUT_BUILTIN_VALIDATION = { builtinCloudFormationValidation: false } as const;

/** The app as `cdk synth` builds it, from cdk.json's context plus overrides (like `-c key=value`). */
export function synthTier(
  overrides: Record<string, unknown> = {},
  options: { nag?: boolean } = {},
): SynthesizedTier {
  const nag = options.nag ?? false;
  const tier = buildTierApp({
    context: { ...cdkJsonContext, ...overrides },
    nag,
    ...(nag ? {} : WITHOUT_BUILTIN_VALIDATION),
  });
  return {
    ...tier,
    homeTemplate: Template.fromStack(tier.home),
    fleetTemplates: tier.fleets.map((stack) => Template.fromStack(stack)),
  };
}

/** Resources of one type, by logical id. */
export function resourcesOf(
  template: Template,
  type: string,
): Record<string, { Properties: Record<string, unknown> } & Record<string, unknown>> {
  return template.findResources(type) as never;
}

/**
 * A template with what changes on every build masked: asset hashes (64 hex) and the bundle's
 * object key, so the snapshot shows only real changes to the infrastructure.
 */
export function normalized(template: Template): unknown {
  const text = JSON.stringify(template.toJSON());
  return JSON.parse(text.replace(/[0-9a-f]{64}/g, '<asset-hash>'));
}
