import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { FleetPlacement, TierConfig } from '../config';
import { AccessLogBucket } from '../constructs/access-logs';
import { Observability } from '../constructs/observability';
import { RuntimeBundle } from '../constructs/runtime';
import type { SupernodeFleet } from '../constructs/supernode-fleet';
import { TierNetwork } from '../constructs/tier-network';
import { turnSecretReplica } from '../constructs/turn-secret';
import { acknowledgeStackFindings } from './nag';
import { publicationBucketName, turnSecretName } from './naming';
import { fleetOutputs } from './outputs';
import { tierFleet } from './wiring';

export interface FleetStackProps extends StackProps {
  readonly config: TierConfig;
  readonly placement: FleetPlacement;
}

/** A fleet outside the home region: its own network, NLB, alarms; public keys read from the home region. */
export class SupernodeFleetStack extends Stack {
  readonly fleet: SupernodeFleet;
  readonly observability: Observability;

  constructor(scope: Construct, id: string, props: FleetStackProps) {
    super(scope, id, props);
    const { config, placement } = props;
    const bundle = new RuntimeBundle(this, 'Runtime');
    const network = new TierNetwork(this, 'Network', {
      natGateways: config.natGateways,
      interfaceEndpoints: config.interfaceEndpoints,
    });
    const logs = new AccessLogBucket(this, 'AccessLogs');
    // Created after the home stack (lib/app.ts), whose auth group has published the keys by then.
    this.fleet = tierFleet(this, config, placement, {
      vpc: network.vpc,
      bundle,
      publicKeys: { bucketName: publicationBucketName(this, config.homeRegion), region: config.homeRegion },
      accessLogs: logs.bucket,
      // The home stack's secret, replicated here under the same name.
      turnSecret: config.turn ? turnSecretReplica(this, turnSecretName(this, config.homeRegion)) : undefined,
    });
    this.observability = new Observability(this, 'Observability', {
      fleets: [this.fleet],
      dashboard: false,
      alarmEmail: config.alarmEmail,
    });
    acknowledgeStackFindings(this, logs);

    fleetOutputs(this, this.fleet);
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.observability.alarmTopic.topicArn,
      description: 'Alarms of this region: aws sns subscribe --topic-arn <this> --protocol email ...',
    });
  }
}
