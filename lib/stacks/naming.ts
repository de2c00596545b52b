import type { Stack } from 'aws-cdk-lib';

/**
 * The bucket holding the public key set and revocation list. Fleets in other regions must know it
 * without a cross-region reference, so it is derived from the account and the home region.
 */
export function publicationBucketName(stack: Stack, homeRegion: string | undefined): string {
  return `supernode-public-${stack.account}-${homeRegion ?? stack.region}`;
}

/**
 * The TURN secret, created in the home region and replicated to every fleet region under the same
 * name, by which fleets of other regions find it (a replica's ARN suffix is unknown to them).
 */
export function turnSecretName(stack: Stack, homeRegion: string | undefined): string {
  return `supernode-turn-secret-${homeRegion ?? stack.region}`;
}

export const HOME_STACK_NAME = 'SupernodeTier';

export function fleetStackName(region: string): string {
  return `${HOME_STACK_NAME}-${region}`;
}
