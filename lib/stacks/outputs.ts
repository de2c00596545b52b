import { CfnOutput, type Stack } from 'aws-cdk-lib';
import { FLEET_PORTS, type SupernodeFleet } from '../constructs/supernode-fleet';

/** Where clients of a fleet connect: the same two outputs in every stack that holds a fleet. */
export function fleetOutputs(stack: Stack, fleet: SupernodeFleet): void {
  new CfnOutput(stack, 'SessionUrl', {
    value: fleet.sessionUrl,
    description: 'Supernode base URL for clients (sessions at /v1/session)',
  });
  new CfnOutput(stack, 'StunAddress', {
    value: `${fleet.loadBalancer.loadBalancerDnsName}:${FLEET_PORTS.stun}`,
    description: 'STUN over UDP',
  });
  if (fleet.turnUrls) {
    new CfnOutput(stack, 'TurnUrls', {
      value: fleet.turnUrls.join(','),
      description: "This fleet's TURN URLs (the auth service hands out credentials for them)",
    });
  }
}
