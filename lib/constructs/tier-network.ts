import { RemovalPolicy } from 'aws-cdk-lib';
import {
  FlowLogDestination,
  FlowLogTrafficType,
  GatewayVpcEndpointAwsService,
  InterfaceVpcEndpointAwsService,
  IpAddresses,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  Vpc,
} from 'aws-cdk-lib/aws-ec2';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { NETWORK_DEFAULTS } from '../defaults';

export interface TierNetworkProps {
  /**
   * NAT gateways for the private subnets' egress (AWS APIs without an endpoint, the home region's
   * public keys from another region). One per AZ survives an AZ outage; one in total costs half.
   * @default 1
   */
  readonly natGateways?: number;
  /**
   * Interface endpoints (in every zone) for the AWS APIs the instances call: Secrets Manager,
   * CloudWatch metrics, EC2 (mesh discovery), Auto Scaling (lifecycle hooks), CloudFormation
   * (cfn-signal) and Session Manager (ssm, ssmmessages). Those calls then need no NAT gateway at all.
   * @default false
   */
  readonly interfaceEndpoints?: boolean;
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

/** The AWS APIs the instances call, by the endpoint's construct ID. */
export const INTERFACE_ENDPOINTS = {
  SecretsManager: InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  CloudWatch: InterfaceVpcEndpointAwsService.CLOUDWATCH_MONITORING,
  Ec2: InterfaceVpcEndpointAwsService.EC2,
  AutoScaling: InterfaceVpcEndpointAwsService.AUTOSCALING,
  CloudFormation: InterfaceVpcEndpointAwsService.CLOUDFORMATION,
  Ssm: InterfaceVpcEndpointAwsService.SSM,
  SsmMessages: InterfaceVpcEndpointAwsService.SSM_MESSAGES,
} as const;

/**
 * The VPC every tier resource lives in: public subnets hold load balancers and NAT (and supernodes
 * that relay TURN, which peers must reach directly), other instances sit in private subnets, and
 * rejected traffic is kept in VPC flow logs.
 */
export class TierNetwork extends Construct {
  readonly vpc: Vpc;

  constructor(scope: Construct, id: string, props: TierNetworkProps = {}) {
    super(scope, id);
    const natGateways = props.natGateways ?? NETWORK_DEFAULTS.natGateways;
    const cidr = props.cidr ?? NETWORK_DEFAULTS.cidr;
    if (!Number.isInteger(natGateways) || natGateways < 1 || natGateways > 3) {
      throw new Error(`TierNetwork: natGateways must be 1, 2 or 3 (got ${natGateways})`);
    }
    this.vpc = new Vpc(this, 'Vpc', {
      ipAddresses: IpAddresses.cidr(cidr),
      natGateways,
      ...(props.availabilityZones ? { availabilityZones: props.availabilityZones } : { maxAzs: 2 }),
      subnetConfiguration: [
        { name: 'public', subnetType: SubnetType.PUBLIC, cidrMask: 22 },
        { name: 'private', subnetType: SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      // Free, and no NAT in the path: bundles, the public key set and AL2023 packages come from S3,
      // the auth service's accounts from DynamoDB.
      gatewayEndpoints: {
        S3: { service: GatewayVpcEndpointAwsService.S3 },
        DynamoDb: { service: GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });
    if (props.interfaceEndpoints ?? NETWORK_DEFAULTS.interfaceEndpoints) {
      // One group for all endpoints: HTTPS from inside the VPC (the literal range, not a reference).
      const endpoints = new SecurityGroup(this, 'EndpointSecurityGroup', {
        vpc: this.vpc,
        description: 'Interface endpoints: HTTPS from the VPC',
        allowAllOutbound: false,
      });
      endpoints.addIngressRule(Peer.ipv4(cidr), Port.tcp(443), 'AWS API calls from the instances');
      for (const [id, service] of Object.entries(INTERFACE_ENDPOINTS)) {
        this.vpc.addInterfaceEndpoint(id, {
          service,
          privateDnsEnabled: true,
          securityGroups: [endpoints],
          open: false,
        });
      }
    }
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
