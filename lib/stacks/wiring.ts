import type { Stack } from 'aws-cdk-lib';
import type { IVpc } from 'aws-cdk-lib/aws-ec2';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { FleetPlacement, TierConfig } from '../config';
import { DnsName } from '../constructs/dns-name';
import type { RuntimeBundle } from '../constructs/runtime';
import { type PublicKeySource, SupernodeFleet, turnUrls } from '../constructs/supernode-fleet';
import type { TurnSecretRef } from '../constructs/turn-secret';
import { TURN_DEFAULTS } from '../defaults';
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
  wiring: {
    vpc: IVpc;
    bundle: RuntimeBundle;
    publicKeys: PublicKeySource;
    accessLogs: IBucket | undefined;
    /** The TURN secret in this region, when `config.turn`. */
    turnSecret: TurnSecretRef | undefined;
  },
): SupernodeFleet {
  const label = placement.region ? `nodes.${placement.region}` : 'nodes';
  const name = publicName(stack, 'FleetName', config, label, placement.certificateArn);
  const { turnSecret, ...fleetWiring } = wiring;
  if (config.turn && !turnSecret) throw new Error('tierFleet: TURN is on but no secret was given');
  const fleet = new SupernodeFleet(stack, 'Fleet', {
    ...fleetWiring,
    instanceType: config.instanceType,
    floor: placement.floor,
    ceiling: placement.ceiling,
    clientsPerNode: config.clientsPerNode,
    soakSeconds: config.soakSeconds,
    warmPoolSize: config.warmPoolSize,
    certificateArn: name?.certificateArn ?? placement.certificateArn,
    hostName: name?.hostName,
    turn: turnSecret && { secret: turnSecret, realm: turnRealm(config) },
  });
  name?.pointAt(fleet.loadBalancer);
  acknowledgeFleetFindings(fleet);
  return fleet;
}

/** One realm for the whole tier: the credentials are the same for every region. */
export function turnRealm(config: TierConfig): string {
  return config.domainName ?? TURN_DEFAULTS.realm;
}

/**
 * The TURN URLs the auth service hands out: the home fleet's (its own names), then each other
 * region's under `nodes.<region>.<domainName>` (they deploy after the home stack, so their load
 * balancers' names cannot be known; config requires `domainName` then), `turns:` where that region
 * has a certificate.
 */
export function tierTurnUrls(config: TierConfig, homeFleet: SupernodeFleet | undefined): string[] {
  const remote = config.fleets.filter(
    (fleet) => fleet.region !== undefined && fleet.region !== config.homeRegion,
  );
  return [
    ...(homeFleet?.turnUrls ?? []),
    ...remote.flatMap((fleet) => {
      if (!config.domainName) throw new Error('tierTurnUrls: fleets outside the home region need domainName');
      const tls = fleet.certificateArn !== undefined || config.hostedZone !== undefined;
      return turnUrls(`nodes.${fleet.region}.${config.domainName}`, tls);
    }),
  ];
}
