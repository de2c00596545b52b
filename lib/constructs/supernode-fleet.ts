import { Duration, Stack } from 'aws-cdk-lib';
import { type AutoScalingGroup, DefaultResult, LifecycleTransition } from 'aws-cdk-lib/aws-autoscaling';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import { type IVpc, Peer, Port, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
import {
  ListenerCertificate,
  NetworkLoadBalancer,
  NetworkTargetGroup,
  Protocol,
  SslPolicy,
  TargetType,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Effect, ManagedPolicy, Policy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { FLEET_DEFAULTS, TURN_DEFAULTS } from '../defaults';
import { METRIC_NAMESPACE, putMetricDataStatement, type RuntimeBundle, servicePaths } from './runtime';
import { ServiceGroup } from './service-group';
import type { TurnSecretRef } from './turn-secret';

/**
 * Ports on the instances. Clients reach the session port only through the NLB's 443. With TURN the
 * STUN port serves TURN too (UDP and TCP), and the NLB's TLS listener on `turnTls` forwards to it.
 */
export const FLEET_PORTS = { session: 7001, mesh: 7101, stun: 3478, turnTls: 5349 } as const;

/** The TURN URLs of a fleet's host, as `RTCPeerConnection`'s `iceServers[].urls` takes them. */
export function turnUrls(host: string, tls: boolean): string[] {
  return [
    `turn:${host}:${FLEET_PORTS.stun}?transport=udp`,
    `turn:${host}:${FLEET_PORTS.stun}?transport=tcp`,
    ...(tls ? [`turns:${host}:${FLEET_PORTS.turnTls}?transport=tcp`] : []),
  ];
}

/** TURN (RFC 8656) on the fleet's nodes. */
export interface FleetTurnProps {
  /** The shared secret in this fleet's region: the primary, or its replica. */
  readonly secret: TurnSecretRef;
  /** REALM of the long-term credentials. @default 'supernode' */
  readonly realm?: string;
  /** Relayed-transport ports (UDP), open to the internet on the nodes. @default 49152 */
  readonly minPort?: number;
  /** @default 65535 */
  readonly maxPort?: number;
  /** How often nodes fetch the secret again (rotation). @default 5 */
  readonly secretRefreshMinutes?: number;
}

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
  /** Graviton; the AMI follows the type's architecture. @default 'c7g.large' */
  readonly instanceType?: string;
  /** Guaranteed floor: never fewer nodes in service, during updates included. At least 3. @default 3 */
  readonly floor?: number;
  /** Scale-out ceiling; must leave room for one extra node during a release. @default 12 */
  readonly ceiling?: number;
  /** Target tracking aims for this many connected clients per node. @default 50000 */
  readonly clientsPerNode?: number;
  /** Target tracking on CPU as well, for relay-heavy load. @default 60 */
  readonly cpuTargetPercent?: number;
  /** How long a new node's /readyz must stay healthy before it signals success. @default 300 */
  readonly soakSeconds?: number;
  /** Drain deadline of a node (sessions get `drain` advice and time to move). @default 30 */
  readonly drainSeconds?: number;
  /**
   * Stopped, installed instances kept for break-glass scale-out (only EBS is paid while stopped);
   * exactly this many, whatever the group's size. 0 means no warm pool. At most ceiling - floor.
   * @default 2
   */
  readonly warmPoolSize?: number;
  /** TLS on the NLB's 443 with this ACM certificate; plain TCP without. @default - TCP */
  readonly certificateArn?: string;
  /** Host name clients use when the NLB has a DNS record of its own. @default - the NLB's DNS name */
  readonly hostName?: string;
  /** @default '' */
  readonly audience?: string;
  /** Bucket for the load balancer's access logs (NLBs log TLS listeners only). @default - no access logs */
  readonly accessLogs?: IBucket;
  /**
   * TURN on every node: the nodes move to the public subnets with a public IPv4 address each (the
   * relayed address peers send to), the relay range opens to the internet, and the NLB carries TURN
   * on UDP and TCP 3478 (one TCP_UDP listener) and, with `certificateArn`, TLS on 5349.
   * @default - no TURN: STUN on UDP 3478 only, nodes in private subnets
   */
  readonly turn?: FleetTurnProps;
}

/**
 * The supernode tier of one region: an Auto Scaling group with a floor that never goes away,
 * behind a Network Load Balancer (sessions on 443, STUN on UDP 3478), meshed over a private port
 * open only between its own members, draining before termination, with a warm pool whose instances
 * are held by a launch hook until installed, and released by instance refresh (in-service and warm
 * instances alike) with a readiness soak before each new node goes in service.
 */
export class SupernodeFleet extends Construct {
  readonly group: AutoScalingGroup;
  readonly service: ServiceGroup;
  readonly loadBalancer: NetworkLoadBalancer;
  readonly sessionTargets: NetworkTargetGroup;
  readonly stunTargets: NetworkTargetGroup;
  readonly securityGroup: SecurityGroup;
  readonly meshSecret: Secret;
  readonly role: Role;
  readonly completeLifecyclePolicy: Policy;
  readonly floor: number;
  readonly clientsPerNode: number;
  /** Base URL clients connect to (`wss://<host>`, or `ws://<nlb>:443` without TLS); sessions at /v1/session. */
  readonly sessionUrl: string;
  /** What the auth service hands out for this fleet (`turnUrls`); undefined without TURN. */
  readonly turnUrls: string[] | undefined;
  /** Targets of the NLB's TLS listener for TURN (5349): with TURN and a certificate only. */
  readonly turnTlsTargets: NetworkTargetGroup | undefined;

  constructor(scope: Construct, id: string, props: SupernodeFleetProps) {
    super(scope, id);
    const floor = props.floor ?? FLEET_DEFAULTS.floor;
    const ceiling = props.ceiling ?? FLEET_DEFAULTS.ceiling;
    const clientsPerNode = props.clientsPerNode ?? FLEET_DEFAULTS.clientsPerNode;
    const soakSeconds = props.soakSeconds ?? FLEET_DEFAULTS.soakSeconds;
    const drainSeconds = props.drainSeconds ?? FLEET_DEFAULTS.drainSeconds;
    const warmPoolSize = props.warmPoolSize ?? FLEET_DEFAULTS.warmPoolSize;
    validate({ floor, ceiling, clientsPerNode, soakSeconds, drainSeconds, warmPoolSize });
    const turn = props.turn && turnSettings(props.turn);
    this.floor = floor;
    this.clientsPerNode = clientsPerNode;
    const stack = Stack.of(this);
    const keysRegion = props.publicKeys.region ?? stack.region;
    const tls = props.certificateArn !== undefined;
    const jwksKey = props.publicKeys.jwksKey ?? 'jwks.json';
    const revocationsKey = props.publicKeys.revocationsKey ?? 'revocations.json';
    const paths = servicePaths('supernode');

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
          `arn:${stack.partition}:s3:::${props.publicKeys.bucketName}/${jwksKey}`,
          `arn:${stack.partition}:s3:::${props.publicKeys.bucketName}/${revocationsKey}`,
        ],
        // The name is derived, not secret: whoever owned a bucket of that name in another account
        // would hand the nodes keys of their own. Only a bucket of this account counts.
        conditions: { StringEquals: { 's3:ResourceAccount': stack.account } },
      }),
    );
    // Mesh discovery lists the group's instances. DescribeInstances supports no resource scoping.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({ effect: Effect.ALLOW, actions: ['ec2:DescribeInstances'], resources: ['*'] }),
    );
    this.role.addToPrincipalPolicy(putMetricDataStatement());
    if (turn) {
      // Read only, and only this secret (its replica in this region for fleets outside the home region).
      this.role.addToPrincipalPolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['secretsmanager:GetSecretValue'],
          resources: [turn.secret.resourceArn],
        }),
      );
      // Peers send to the relayed addresses directly; only ports with an allocation answer.
      this.securityGroup.addIngressRule(
        Peer.anyIpv4(),
        Port.udpRange(turn.minPort, turn.maxPort),
        'TURN relayed transport addresses, from any peer',
      );
    }

    this.loadBalancer = new NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      crossZoneEnabled: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
    });
    if (props.accessLogs) this.loadBalancer.logAccessLogs(props.accessLogs, 'supernode-nlb');
    // The node's base URL as clients and lookups use it (the SDK adds /v1/session); plain ws needs the
    // port spelled out, since 443 is not its default.
    this.sessionUrl = tls
      ? `wss://${props.hostName ?? this.loadBalancer.loadBalancerDnsName}`
      : `ws://${this.loadBalancer.loadBalancerDnsName}:443`;
    // turns: needs the name on the certificate, as wss: does.
    this.turnUrls = turn && turnUrls(props.hostName ?? this.loadBalancer.loadBalancerDnsName, tls);

    this.service = new ServiceGroup(this, 'Group', {
      vpc: props.vpc,
      bundle: props.bundle,
      role: this.role,
      securityGroup: this.securityGroup,
      instanceType: props.instanceType ?? FLEET_DEFAULTS.instanceType,
      floor,
      ceiling,
      soakSeconds,
      defaultInstanceWarmup: Duration.seconds(120),
      warmPoolSize,
      service: 'supernode',
      command: 'node',
      readinessUrl: `http://127.0.0.1:${FLEET_PORTS.session}/readyz`,
      stopTimeoutSeconds: drainSeconds + 15,
      secretFiles: [
        { secretId: this.meshSecret.secretArn, file: 'mesh-secret' },
        ...(turn
          ? [
              {
                secretId: turn.secret.secretId,
                file: 'turn-secret',
                refreshMinutes: turn.secretRefreshMinutes,
              },
            ]
          : []),
      ],
      publicIpv4: turn !== undefined,
      sysctls: turn && {
        // The kernel's own ephemeral ports (outbound connections) stay out of the relay range.
        'net.ipv4.ip_local_port_range': `"${turn.ephemeralPorts}"`,
        // The TURN listener asks for 4 MiB socket buffers; the kernel caps them at these.
        'net.core.rmem_max': '4194304',
        'net.core.wmem_max': '4194304',
      },
      environment: {
        SUPERNODE_HOST: '0.0.0.0',
        SUPERNODE_PORT: String(FLEET_PORTS.session),
        SUPERNODE_PUBLIC_URL: this.sessionUrl,
        SUPERNODE_JWKS_URL: `s3://${props.publicKeys.bucketName}/${jwksKey}`,
        SUPERNODE_REVOCATIONS_URL: `s3://${props.publicKeys.bucketName}/${revocationsKey}`,
        SUPERNODE_S3_REGION: keysRegion,
        ...(props.audience ? { SUPERNODE_AUDIENCE: props.audience } : {}),
        SUPERNODE_DRAIN_TIMEOUT_MS: String(drainSeconds * 1000),
        SUPERNODE_STUN_PORT: String(FLEET_PORTS.stun),
        ...(turn
          ? {
              SUPERNODE_TURN: 'true',
              SUPERNODE_TURN_SECRET_FILE: `${paths.etc}/turn-secret`,
              SUPERNODE_TURN_REALM: turn.realm,
              SUPERNODE_TURN_MIN_PORT: String(turn.minPort),
              SUPERNODE_TURN_MAX_PORT: String(turn.maxPort),
            }
          : {}),
        SUPERNODE_MESH: 'true',
        SUPERNODE_MESH_PORT: String(FLEET_PORTS.mesh),
        SUPERNODE_MESH_SECRET_FILE: `${paths.etc}/mesh-secret`,
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
        ...(turn ? { SUPERNODE_TURN_EXTERNAL_ADDRESS: '$PUBLIC_IP' } : {}),
      },
    });
    this.group = this.service.group;

    const [lbSecurityGroup] = this.loadBalancer.connections.securityGroups;
    lbSecurityGroup.addIngressRule(Peer.anyIpv4(), Port.tcp(443), 'Client sessions');
    lbSecurityGroup.addIngressRule(
      Peer.anyIpv4(),
      Port.udp(FLEET_PORTS.stun),
      turn ? 'STUN and TURN' : 'STUN',
    );
    if (turn) {
      lbSecurityGroup.addIngressRule(Peer.anyIpv4(), Port.tcp(FLEET_PORTS.stun), 'TURN over TCP');
      if (tls) lbSecurityGroup.addIngressRule(Peer.anyIpv4(), Port.tcp(FLEET_PORTS.turnTls), 'TURN over TLS');
    }
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
    // The NLB keeps the client's address; the rule on its group still admits it (and nothing direct).
    if (turn)
      this.loadBalancer.connections.allowTo(
        this.securityGroup,
        Port.tcp(FLEET_PORTS.stun),
        'TURN over TCP and TLS',
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
    // An NLB takes TCP and UDP on one port only as one TCP_UDP listener with a TCP_UDP target group.
    const stunProtocol = turn ? Protocol.TCP_UDP : Protocol.UDP;
    this.stunTargets = new NetworkTargetGroup(this, 'StunTargets', {
      vpc: props.vpc,
      port: FLEET_PORTS.stun,
      protocol: stunProtocol,
      targetType: TargetType.INSTANCE,
      targets: [this.group],
      healthCheck,
      deregistrationDelay,
    });
    this.loadBalancer.addListener('Sessions', {
      port: 443,
      protocol: tls ? Protocol.TLS : Protocol.TCP,
      certificates: tls ? [ListenerCertificate.fromArn(props.certificateArn as string)] : undefined,
      sslPolicy: tls ? SslPolicy.RECOMMENDED_TLS : undefined,
      defaultTargetGroups: [this.sessionTargets],
    });
    this.loadBalancer.addListener('Stun', {
      port: FLEET_PORTS.stun,
      protocol: stunProtocol,
      defaultTargetGroups: [this.stunTargets],
    });
    // TURN over TLS ends at the NLB with the session listener's certificate (ACM keys never leave
    // AWS); the node gets plain TURN over TCP on its STUN port.
    if (turn && tls) {
      this.turnTlsTargets = new NetworkTargetGroup(this, 'TurnTlsTargets', {
        vpc: props.vpc,
        port: FLEET_PORTS.stun,
        protocol: Protocol.TCP,
        targetType: TargetType.INSTANCE,
        targets: [this.group],
        healthCheck,
        deregistrationDelay,
      });
      this.loadBalancer.addListener('TurnTls', {
        port: FLEET_PORTS.turnTls,
        protocol: Protocol.TLS,
        certificates: [ListenerCertificate.fromArn(props.certificateArn as string)],
        sslPolicy: SslPolicy.RECOMMENDED_TLS,
        defaultTargetGroups: [this.turnTlsTargets],
      });
    }

    // Termination waits (up to the heartbeat) while the node drains; the node completes the action.
    this.group.addLifecycleHook('Drain', {
      lifecycleHookName: DRAIN_HOOK_NAME,
      lifecycleTransition: LifecycleTransition.INSTANCE_TERMINATING,
      heartbeatTimeout: Duration.seconds(drainSeconds + 90),
      defaultResult: DefaultResult.CONTINUE,
    });
    // Both hooks (launch: the boot script; drain: the node). A separate policy: the group must exist
    // before its ARN can be named, and not the reverse.
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
    this.group.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: props.cpuTargetPercent ?? FLEET_DEFAULTS.cpuTargetPercent,
    });
  }
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
  // Warm instances go in service only by scale-out: the pool never needs more than the headroom.
  if (warmPoolSize < 0 || warmPoolSize > ceiling - floor)
    fail(`warmPoolSize must be 0..ceiling - floor (${ceiling - floor}) (got ${warmPoolSize})`);
}

interface TurnSettings {
  secret: TurnSecretRef;
  realm: string;
  minPort: number;
  maxPort: number;
  secretRefreshMinutes: number;
  /** The kernel's ephemeral port range, outside the relay range. */
  ephemeralPorts: string;
}

/** Linux's default ephemeral range is 32768-60999, inside the default relay range. */
const EPHEMERAL_LOW = 32768;
const EPHEMERAL_PORTS_NEEDED = 4096;

function turnSettings(props: FleetTurnProps): TurnSettings {
  const minPort = props.minPort ?? TURN_DEFAULTS.minPort;
  const maxPort = props.maxPort ?? TURN_DEFAULTS.maxPort;
  const realm = props.realm ?? TURN_DEFAULTS.realm;
  const secretRefreshMinutes = props.secretRefreshMinutes ?? TURN_DEFAULTS.secretRefreshMinutes;
  const fail = (message: string): never => {
    throw new Error(`SupernodeFleet: turn.${message}`);
  };
  if (!Number.isInteger(minPort) || !Number.isInteger(maxPort) || minPort < 1024 || maxPort > 65535)
    fail(`minPort and maxPort must be integers in 1024..65535 (got ${minPort}-${maxPort})`);
  if (maxPort - minPort < 99)
    fail(`the relay range must hold at least 100 ports (got ${minPort}-${maxPort})`);
  for (const [name, port] of Object.entries(FLEET_PORTS)) {
    if (port >= minPort && port <= maxPort)
      fail(`the relay range ${minPort}-${maxPort} holds the ${name} port ${port}`);
  }
  // Below the range if there is room there, else above it.
  let ephemeralPorts: string | undefined;
  if (minPort - EPHEMERAL_LOW >= EPHEMERAL_PORTS_NEEDED) ephemeralPorts = `${EPHEMERAL_LOW} ${minPort - 1}`;
  else if (65535 - maxPort >= EPHEMERAL_PORTS_NEEDED)
    ephemeralPorts = `${Math.max(maxPort + 1, EPHEMERAL_LOW)} 65535`;
  if (!ephemeralPorts)
    fail(
      `the relay range ${minPort}-${maxPort} must leave ${EPHEMERAL_PORTS_NEEDED} ports from 32768 up for the kernel's outbound connections`,
    );
  // The runtime's rule (SUPERNODE_TURN_REALM); a domain name fits it.
  if (!/^[A-Za-z0-9._-]{1,128}$/.test(realm))
    fail(`realm must be 1-128 characters of A-Z a-z 0-9 . _ - (got ${JSON.stringify(realm)})`);
  if (!Number.isInteger(secretRefreshMinutes) || secretRefreshMinutes < 1 || secretRefreshMinutes > 60)
    fail(`secretRefreshMinutes must be 1..60 (got ${secretRefreshMinutes})`);
  return {
    secret: props.secret,
    realm,
    minPort,
    maxPort,
    secretRefreshMinutes,
    ephemeralPorts: ephemeralPorts as string,
  };
}
