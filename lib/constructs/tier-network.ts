import { RemovalPolicy } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  IpAddresses,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

export interface TierNetworkProps {
  /**
   * NAT gateways for the private subnets' egress (package install, AWS APIs). One per AZ survives
   * an AZ outage; one in total costs a third.
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * Availability zones. Leave unset in environment-agnostic stacks (two zones, resolved at deploy
   * time); list three for a concrete region to spread the floor wider.
   * @default - two zones of the deploy region
   */
  readonly availabilityZones?: string[];
  /** @default '10.40.0.0/16' */
  readonly cidr?: string;
  /** @default RetentionDays.ONE_MONTH */
  readonly flowLogRetention?: RetentionDays;
}

/**
 * The VPC every tier resource lives in: public subnets hold only load balancers and NAT, instances
 * sit in private subnets, and rejected/accepted traffic is kept in VPC flow logs.
 */
export class TierNetwork extends Construct {
  readonly vpc: Vpc;

  constructor(scope: Construct, id: string, props: TierNetworkProps = {}) {
    super(scope, id);
    const natGateways = props.natGateways ?? 1;
    if (!Number.isInteger(natGateways) || natGateways < 1 || natGateways > 3) {
      throw new Error(`TierNetwork: natGateways must be 1, 2 or 3 (got ${natGateways})`);
    }
    this.vpc = new Vpc(this, 'Vpc', {
      ipAddresses: IpAddresses.cidr(props.cidr ?? '10.40.0.0/16'),
      natGateways,
      ...(props.availabilityZones ? { availabilityZones: props.availabilityZones } : { maxAzs: 2 }),
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 22 },
        { name: 'private', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      // Bundles, the public key set and AL2023 packages come from S3: keep that traffic off the NAT.
      gatewayEndpoints: { S3: { service: GatewayVpcEndpointAwsService.S3 } },
    });
    const flowLogs = new LogGroup(this, 'FlowLogs', {
      retention: props.flowLogRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: FlowLogDestination.toCloudWatchLogs(flowLogs),
      trafficType: FlowLogTrafficType.REJECT,
    });
  }
}
