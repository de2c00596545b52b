import { Duration, Stack } from 'aws-cdk-lib';
import {
  AdditionalHealthCheckType,
  AutoScalingGroup,
  type CfnAutoScalingGroup,
  DefaultResult,
  HealthChecks,
  LifecycleTransition,
  PoolState,
  Signals,
  UpdatePolicy,
} from 'aws-cdk-lib/aws-autoscaling';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  InstanceType,
  type IVpc,
  LaunchTemplate,
  MachineImage,
  Peer,
  Port,
  SecurityGroup,
  SubnetType,
  UserData,
} from 'aws-cdk-lib/aws-ec2';
import {
  ListenerCertificate,
  NetworkLoadBalancer,
  NetworkTargetGroup,
  Protocol,
  TargetType,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Effect, ManagedPolicy, Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { METRIC_NAMESPACE, type RuntimeBundle, serviceUserData } from './runtime';

/** Ports on the instances. Clients reach the session port only through the NLB's 443. */
export const FLEET_PORTS = { session: 7001, mesh: 7101, stun: 3478 } as const;

/** The termination lifecycle hook the node completes once drained. */
export const DRAIN_HOOK_NAME = 'drain';

/** Where a fleet reads the public key set and the revocation list (written by the auth service). */
export interface PublicKeySource {
  /** Bucket name; may be in another region. */
  readonly bucketName: string;
  /** Region of the bucket. @default - this stack's region */
  readonly region?: string;
  /** @default 'jwks.json' */
  readonly jwksKey?: string;
  /** @default 'revocations.json' */
  readonly revocationsKey?: string;
}

export interface SupernodeFleetProps {
  readonly vpc: IVpc;
  readonly bundle: RuntimeBundle;
  readonly publicKeys: PublicKeySource;
  /** Graviton by default; the AMI follows the type's architecture. @default 'c7g.large' */
  readonly instanceType?: string;
  /** Guaranteed floor: never fewer nodes in service, during updates included. At least 3. @default 3 */
  readonly floor?: number;
  /** Scale-out ceiling; must leave room for one extra node during a rolling update. @default 12 */
  readonly ceiling?: number;
  /** Target tracking aims for this many connected clients per node. @default 50000 */
  readonly clientsPerNode?: number;
  /** Target tracking on CPU as well, for relay-heavy load. @default 60 */
  readonly cpuTargetPercent?: number;
  /** How long a new node's /readyz must stay healthy before it signals success. @default 300 */
  readonly soakSeconds?: number;
  /** Drain deadline of a node (sessions get `drain` advice and time to move). @default 30 */
  readonly drainSeconds?: number;
  /** Stopped instances kept ready for break-glass scale-out (only EBS is paid). @default 2 */
  readonly warmPoolSize?: number;
  /** TLS on the NLB's 443 with this ACM certificate; plain TCP without. @default - TCP */
  readonly certificateArn?: string;
  /** @default '' */
  readonly audience?: string;
  /** Bucket for the load balancer's access logs. @default - no access logs */
  readonly accessLogs?: IBucket;
}

/**
 * The supernode tier of one region: an Auto Scaling group with a floor that never goes away,
 * behind a Network Load Balancer (sessions on 443, STUN on UDP 3478), meshed over a private port
 * open only between its own members, draining before termination, and updated one node at a time
 * with a readiness soak before each success signal.
 */
export class SupernodeFleet extends Construct {
  readonly group: AutoScalingGroup;
  readonly loadBalancer: NetworkLoadBalancer;
  readonly sessionTargets: NetworkTargetGroup;
  readonly stunTargets: NetworkTargetGroup;
  readonly securityGroup: SecurityGroup;
  readonly meshSecret: Secret;
  readonly role: Role;
  readonly completeLifecyclePolicy: Policy;
  readonly floor: number;
  readonly clientsPerNode: number;
  /** Base URL clients connect to (`wss://<nlb>`, or `ws://<nlb>:443` without TLS); sessions at /v1/session. */
  readonly sessionUrl: string;

  constructor(scope: Construct, id: string, props: SupernodeFleetProps) {
    super(scope, id);
    const floor = props.floor ?? 3;
    const ceiling = props.ceiling ?? 12;
    const clientsPerNode = props.clientsPerNode ?? 50_000;
    const soakSeconds = props.soakSeconds ?? 300;
    const drainSeconds = props.drainSeconds ?? 30;
    const warmPoolSize = props.warmPoolSize ?? 2;
    validate({ floor, ceiling, clientsPerNode, soakSeconds, drainSeconds, warmPoolSize });
    this.floor = floor;
    this.clientsPerNode = clientsPerNode;
    const stack = Stack.of(this);
    const instanceType = new InstanceType(props.instanceType ?? 'c7g.large');
    const keysRegion = props.publicKeys.region ?? stack.region;
    const tls = props.certificateArn !== undefined;

    // Shared by the mesh members only: each proves it holds it (HMAC) and it is never sent.
    this.meshSecret = new Secret(this, 'MeshSecret', {
      description: 'Supernode mesh link secret (HMAC challenge between fleet members)',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
    });

    this.securityGroup = new SecurityGroup(this, 'NodeSecurityGroup', {
      vpc: props.vpc,
      description: 'Supernodes: sessions and STUN from the NLB, mesh from fleet members only',
      allowAllOutbound: true,
    });
    this.securityGroup.addIngressRule(
      this.securityGroup,
      Port.tcp(FLEET_PORTS.mesh),
      'Mesh links between fleet members only',
    );

    this.role = new Role(this, 'NodeRole', {
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: 'Supernode instances',
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    props.bundle.grantRead(this.role);
    this.meshSecret.grantRead(this.role);
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['s3:GetObject'],
        resources: [
          `arn:${stack.partition}:s3:::${props.publicKeys.bucketName}/${props.publicKeys.jwksKey ?? 'jwks.json'}`,
          `arn:${stack.partition}:s3:::${props.publicKeys.bucketName}/${props.publicKeys.revocationsKey ?? 'revocations.json'}`,
        ],
      }),
    );
    // Mesh discovery lists the group's instances. DescribeInstances supports no resource scoping.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({ effect: Effect.ALLOW, actions: ['ec2:DescribeInstances'], resources: ['*'] }),
    );
    this.role.addToPrincipalPolicy(putMetricDataStatement());

    const userData = UserData.forLinux();
    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      instanceType,
      userData,
      machineImage: MachineImage.latestAmazonLinux2023({ cpuType: cpuTypeOf(instanceType) }),
      role: this.role,
      securityGroup: this.securityGroup,
      requireImdsv2: true,
      // The boot script reads the group name from the instance's tags.
      instanceMetadataTags: true,
      detailedMonitoring: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: BlockDeviceVolume.ebs(16, { encrypted: true, volumeType: EbsDeviceVolumeType.GP3 }),
        },
      ],
    });

    const gracePeriod = Duration.seconds(soakSeconds + 300);
    this.group = new AutoScalingGroup(this, 'Group', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      minCapacity: floor,
      maxCapacity: ceiling,
      healthChecks: HealthChecks.withAdditionalChecks({
        additionalTypes: [AdditionalHealthCheckType.ELB],
        gracePeriod,
      }),
      // Creation and every rolling update wait for signals sent only after the soak passed.
      signals: Signals.waitForMinCapacity({ timeout: Duration.seconds(soakSeconds + 900) }),
      updatePolicy: UpdatePolicy.rollingUpdate({
        maxBatchSize: 1,
        minInstancesInService: floor,
      }),
      defaultInstanceWarmup: Duration.seconds(120),
    });
    const cfnGroup = this.group.node.defaultChild as CfnAutoScalingGroup;

    this.loadBalancer = new NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      crossZoneEnabled: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
    });
    if (props.accessLogs) this.loadBalancer.logAccessLogs(props.accessLogs, 'supernode-nlb');
    const [lbSecurityGroup] = this.loadBalancer.connections.securityGroups;
    lbSecurityGroup.addIngressRule(Peer.anyIpv4(), Port.tcp(443), 'Client sessions');
    lbSecurityGroup.addIngressRule(Peer.anyIpv4(), Port.udp(FLEET_PORTS.stun), 'STUN');
    // Both directions: the NLB's group denies all egress by default, health checks included.
    this.loadBalancer.connections.allowTo(
      this.securityGroup,
      Port.tcp(FLEET_PORTS.session),
      'Sessions and health checks',
    );
    this.loadBalancer.connections.allowTo(
      this.securityGroup,
      Port.udp(FLEET_PORTS.stun),
      'STUN to the nodes',
    );

    const healthCheck = {
      protocol: Protocol.HTTP,
      path: '/readyz',
      port: String(FLEET_PORTS.session),
      interval: Duration.seconds(10),
      healthyThresholdCount: 3,
      unhealthyThresholdCount: 2,
    };
    // Longer than the drain, so the NLB never cuts a session the node is still handing over.
    const deregistrationDelay = Duration.seconds(drainSeconds + 30);
    this.sessionTargets = new NetworkTargetGroup(this, 'SessionTargets', {
      vpc: props.vpc,
      port: FLEET_PORTS.session,
      protocol: Protocol.TCP,
      targetType: TargetType.INSTANCE,
      targets: [this.group],
      healthCheck,
      deregistrationDelay,
    });
    this.stunTargets = new NetworkTargetGroup(this, 'StunTargets', {
      vpc: props.vpc,
      port: FLEET_PORTS.stun,
      protocol: Protocol.UDP,
      targetType: TargetType.INSTANCE,
      targets: [this.group],
      healthCheck,
      deregistrationDelay,
    });
    this.loadBalancer.addListener('Sessions', {
      port: 443,
      protocol: tls ? Protocol.TLS : Protocol.TCP,
      certificates: tls ? [ListenerCertificate.fromArn(props.certificateArn as string)] : undefined,
      defaultTargetGroups: [this.sessionTargets],
    });
    this.loadBalancer.addListener('Stun', {
      port: FLEET_PORTS.stun,
      protocol: Protocol.UDP,
      defaultTargetGroups: [this.stunTargets],
    });
    // The node's base URL as clients and lookups use it (the SDK adds /v1/session); plain ws needs the
    // port spelled out, since 443 is not its default.
    this.sessionUrl = tls
      ? `wss://${this.loadBalancer.loadBalancerDnsName}`
      : `ws://${this.loadBalancer.loadBalancerDnsName}:443`;

    // Termination waits (up to the heartbeat) while the node drains; the node completes the action.
    this.group.addLifecycleHook('Drain', {
      lifecycleHookName: DRAIN_HOOK_NAME,
      lifecycleTransition: LifecycleTransition.INSTANCE_TERMINATING,
      heartbeatTimeout: Duration.seconds(drainSeconds + 90),
      defaultResult: DefaultResult.CONTINUE,
    });
    // A separate policy: the group must exist before its ARN can be named, and not the reverse.
    this.completeLifecyclePolicy = new Policy(this, 'CompleteLifecyclePolicy', {
      roles: [this.role],
      statements: [
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['autoscaling:CompleteLifecycleAction'],
          resources: [
            `arn:${stack.partition}:autoscaling:${stack.region}:${stack.account}:autoScalingGroup:*:autoScalingGroupName/${this.group.autoScalingGroupName}`,
          ],
        }),
      ],
    });

    this.group.addWarmPool({ minSize: warmPoolSize, poolState: PoolState.STOPPED, reuseOnScaleIn: false });

    const connectedClients = new Metric({
      namespace: METRIC_NAMESPACE,
      metricName: 'ConnectedClients',
      dimensionsMap: { AutoScalingGroupName: this.group.autoScalingGroupName },
      statistic: 'Average',
      period: Duration.minutes(1),
    });
    this.group.scaleToTrackMetric('ConnectedClientsPerNode', {
      metric: connectedClients,
      targetValue: clientsPerNode,
    });
    this.group.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: props.cpuTargetPercent ?? 60 });

    serviceUserData(userData, {
      bundle: props.bundle,
      service: 'supernode',
      command: 'node',
      group: cfnGroup,
      readinessUrl: `http://127.0.0.1:${FLEET_PORTS.session}/readyz`,
      soakSeconds,
      stopTimeoutSeconds: drainSeconds + 15,
      secretFiles: [{ secretArn: this.meshSecret.secretArn, path: '/etc/supernode/mesh-secret' }],
      environment: {
        SUPERNODE_HOST: '0.0.0.0',
        SUPERNODE_PORT: String(FLEET_PORTS.session),
        SUPERNODE_PUBLIC_URL: this.sessionUrl,
        SUPERNODE_JWKS_URL: `s3://${props.publicKeys.bucketName}/${props.publicKeys.jwksKey ?? 'jwks.json'}`,
        SUPERNODE_REVOCATIONS_URL: `s3://${props.publicKeys.bucketName}/${props.publicKeys.revocationsKey ?? 'revocations.json'}`,
        SUPERNODE_S3_REGION: keysRegion,
        ...(props.audience ? { SUPERNODE_AUDIENCE: props.audience } : {}),
        SUPERNODE_DRAIN_TIMEOUT_MS: String(drainSeconds * 1000),
        SUPERNODE_STUN_PORT: String(FLEET_PORTS.stun),
        SUPERNODE_MESH: 'true',
        SUPERNODE_MESH_PORT: String(FLEET_PORTS.mesh),
        SUPERNODE_MESH_SECRET_FILE: '/etc/supernode/mesh-secret',
        SUPERNODE_DISCOVERY: 'ec2',
        SUPERNODE_CLOUDWATCH: 'true',
        // A literal, not a reference: the hook depends on the group, which depends on this template.
        SUPERNODE_LIFECYCLE_HOOK: DRAIN_HOOK_NAME,
        SUPERNODE_LOG_LEVEL: 'info',
      },
      instanceEnvironment: {
        SUPERNODE_NODE_ID: '$INSTANCE_ID',
        SUPERNODE_MESH_HOST: '$PRIVATE_IP',
        SUPERNODE_AUTO_SCALING_GROUP: '$GROUP_NAME',
        AWS_REGION: '$REGION',
      },
    });
  }
}

/** PutMetricData has no resource scoping; the namespace condition is the least privilege there is. */
export function putMetricDataStatement(): PolicyStatement {
  return new PolicyStatement({
    effect: Effect.ALLOW,
    actions: ['cloudwatch:PutMetricData'],
    resources: ['*'],
    conditions: { StringEquals: { 'cloudwatch:namespace': METRIC_NAMESPACE } },
  });
}

function cpuTypeOf(instanceType: InstanceType): AmazonLinuxCpuType {
  return instanceType.architecture === 'arm64' ? AmazonLinuxCpuType.ARM_64 : AmazonLinuxCpuType.X86_64;
}

function validate(values: Record<string, number>): void {
  const { floor, ceiling, clientsPerNode, soakSeconds, drainSeconds, warmPoolSize } = values;
  const fail = (message: string) => {
    throw new Error(`SupernodeFleet: ${message}`);
  };
  for (const [name, value] of Object.entries(values)) {
    if (!Number.isInteger(value)) fail(`${name} must be an integer (got ${value})`);
  }
  if (floor < 3)
    fail(
      `floor must be at least 3: the mesh keeps R=2 directory copies and survives one loss (got ${floor})`,
    );
  if (ceiling <= floor)
    fail(`ceiling (${ceiling}) must be greater than floor (${floor}) for rolling updates`);
  if (clientsPerNode < 1) fail(`clientsPerNode must be positive (got ${clientsPerNode})`);
  if (soakSeconds < 30 || soakSeconds > 1800) fail(`soakSeconds must be 30..1800 (got ${soakSeconds})`);
  if (drainSeconds < 0 || drainSeconds > 3000) fail(`drainSeconds must be 0..3000 (got ${drainSeconds})`);
  if (warmPoolSize < 0 || warmPoolSize > ceiling)
    fail(`warmPoolSize must be 0..ceiling (got ${warmPoolSize})`);
}
