import type { Stack } from 'aws-cdk-lib';

/**
 * The bucket holding the public key set and revocation list. Fleets in other regions must know it
 * without a cross-region reference, so it is derived from the account and the home region.
 */
export function publicationBucketName(stack: Stack, homeRegion: string | undefined): string {
  return `supernode-public-${stack.account}-${homeRegion ?? stack.region}`;
}

export const HOME_STACK_NAME = 'SupernodeTier';

export function fleetStackName(region: string): string {
  return `${HOME_STACK_NAME}-${region}`;
}
