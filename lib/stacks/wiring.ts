import type { Stack } from 'aws-cdk-lib';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { FleetPlacement, TierConfig } from '../config';
import { DnsName } from '../constructs/dns-name';
import type { RuntimeBundle } from '../constructs/runtime';
import { type PublicKeySource, SupernodeFleet } from '../constructs/supernode-fleet';
import { acknowledgeFleetFindings } from './nag';

/**
 * The name of a load balancer in the hosted zone of the context (certificate and record), or
 * undefined without one: then TLS needs `certificateArns` and DNS is the operator's.
 */
export function publicName(
  stack: Stack,
  id: string,
  config: TierConfig,
  hostLabel: string,
  certificateArn: string | undefined,
): DnsName | undefined {
  if (!config.hostedZone) return undefined;
  return new DnsName(stack, id, {
    hostedZoneId: config.hostedZone.id,
    zoneName: config.hostedZone.name,
    hostName: `${hostLabel}.${config.hostedZone.name}`,
    certificateArn,
  });
}

/** The fleet of one placement, as both kinds of stack build it: settings from context, name, nag. */
export function tierFleet(
  stack: Stack,
  config: TierConfig,
  placement: FleetPlacement,
  wiring: { vpc: IVpc; bundle: RuntimeBundle; publicKeys: PublicKeySource; accessLogs: IBucket | undefined },
): SupernodeFleet {
  const label = placement.region ? `nodes.${placement.region}` : 'nodes';
  const name = publicName(stack, 'FleetName', config, label, placement.certificateArn);
  const fleet = new SupernodeFleet(stack, 'Fleet', {
    ...wiring,
    instanceType: config.instanceType,
    floor: placement.floor,
    ceiling: placement.ceiling,
    clientsPerNode: config.clientsPerNode,
    soakSeconds: config.soakSeconds,
    warmPoolSize: config.warmPoolSize,
    certificateArn: name?.certificateArn ?? placement.certificateArn,
    hostName: name?.hostName,
  });
  name?.pointAt(fleet.loadBalancer);
  acknowledgeFleetFindings(fleet);
  return fleet;
}
