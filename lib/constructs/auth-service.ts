import { Duration, Stack } from 'aws-cdk-lib';
import {
  AdditionalHealthCheckType,
  AutoScalingGroup,
  type CfnAutoScalingGroup,
  HealthChecks,
  Signals,
  UpdatePolicy,
} from 'aws-cdk-lib/aws-autoscaling';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  InstanceType,
  type IVpc,
  LaunchTemplate,
  MachineImage,
  Port,
  SecurityGroup,
  SubnetType,
  UserData,
} from 'aws-cdk-lib/aws-ec2';
import {
  ApplicationLoadBalancer,
  ApplicationProtocol,
  ApplicationTargetGroup,
  ListenerAction,
  ListenerCertificate,
  SslPolicy,
} from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Effect, ManagedPolicy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { CfnWebACL, CfnWebACLAssociation } from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { type RuntimeBundle, serviceUserData } from './runtime';
import { putMetricDataStatement } from './supernode-fleet';

export const AUTH_PORT = 8080;

export interface AuthServiceProps {
  readonly vpc: IVpc;
  readonly bundle: RuntimeBundle;
  /** Accounts, refresh tokens and revocations (`AuthData.table`). */
  readonly table: ITableV2;
  /** The signing key ring the service creates and rotates (`AuthData.keyRingSecret`). */
  readonly keyRingSecret: ISecret;
  /** Where the service publishes jwks.json and revocations.json (`AuthData.publicationBucket`). */
  readonly publicationBucket: IBucket;
  /** @default 'c7g.large' */
  readonly instanceType?: string;
  /** Instances always in service. @default 2 */
  readonly floor?: number;
  /** @default 6 */
  readonly ceiling?: number;
  /** HTTPS on the ALB with this ACM certificate (HTTP redirects to it); plain HTTP without. @default - HTTP */
  readonly certificateArn?: string;
  /** Requests one IP may make in 5 minutes before WAF answers 429. WAF's minimum is 10. @default 600 */
  readonly requestsPerIpPer5Minutes?: number;
  /** Seconds in the Retry-After header of the WAF 429. @default 60 */
  readonly wafRetryAfterSeconds?: number;
  /** @default 120 */
  readonly soakSeconds?: number;
  /** Bucket for the ALB's access logs. @default - no access logs */
  readonly accessLogs?: IBucket;
}

/**
 * The front door: the auth service on its own Auto Scaling group behind an ALB guarded by WAF
 * (per-IP rate rule answering 429 with Retry-After, AWS managed rules). Compute only: its state
 * (`AuthData`) comes in through props, so replacing this construct never touches accounts or keys.
 * It publishes the public key set to S3, where supernodes read it even while this service is down.
 */
export class AuthService extends Construct {
  readonly group: AutoScalingGroup;
  readonly loadBalancer: ApplicationLoadBalancer;
  readonly targetGroup: ApplicationTargetGroup;
  readonly webAcl: CfnWebACL;
  /** The WebACL dimension of WAF's metrics. */
  readonly webAclName: string;
  readonly role: Role;
  /** Base URL of the API. */
  readonly url: string;

  constructor(scope: Construct, id: string, props: AuthServiceProps) {
    super(scope, id);
    const floor = props.floor ?? 2;
    const ceiling = props.ceiling ?? 6;
    const rateLimit = props.requestsPerIpPer5Minutes ?? 600;
    const retryAfter = props.wafRetryAfterSeconds ?? 60;
    const soakSeconds = props.soakSeconds ?? 120;
    if (!Number.isInteger(floor) || floor < 1)
      throw new Error(`AuthService: floor must be at least 1 (got ${floor})`);
    if (!Number.isInteger(ceiling) || ceiling <= floor) {
      throw new Error(
        `AuthService: ceiling (${ceiling}) must be greater than floor (${floor}) for rolling updates`,
      );
    }
    if (!Number.isInteger(rateLimit) || rateLimit < 10 || rateLimit > 2_000_000_000) {
      throw new Error(
        `AuthService: requestsPerIpPer5Minutes must be 10..2e9, WAF's range (got ${rateLimit})`,
      );
    }
    if (!Number.isInteger(retryAfter) || retryAfter < 1 || retryAfter > 3600) {
      throw new Error(`AuthService: wafRetryAfterSeconds must be 1..3600 (got ${retryAfter})`);
    }
    const stack = Stack.of(this);
    const tls = props.certificateArn !== undefined;
    const instanceType = new InstanceType(props.instanceType ?? 'c7g.large');

    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('ec2.amazonaws.com'),
      description: 'Supernode auth service instances',
      managedPolicies: [ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    props.bundle.grantRead(this.role);
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:Scan',
          'dynamodb:DescribeTable',
        ],
        resources: [props.table.tableArn],
      }),
    );
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: [
          'secretsmanager:GetSecretValue',
          'secretsmanager:PutSecretValue',
          'secretsmanager:DescribeSecret',
        ],
        // An imported secret may only know its partial ARN; IAM needs the random suffix matched.
        resources: [props.keyRingSecret.secretFullArn ?? `${props.keyRingSecret.secretArn}-??????`],
      }),
    );
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['s3:PutObject'],
        resources: [
          props.publicationBucket.arnForObjects('jwks.json'),
          props.publicationBucket.arnForObjects('revocations.json'),
        ],
      }),
    );
    // Customer-managed keys (none on AuthData's resources) must let the service use the data.
    props.table.encryptionKey?.grantEncryptDecrypt(this.role);
    props.keyRingSecret.encryptionKey?.grantEncryptDecrypt(this.role);
    this.role.addToPrincipalPolicy(putMetricDataStatement());

    const securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Auth service instances: API from the ALB only',
      allowAllOutbound: true,
    });
    const userData = UserData.forLinux();
    const launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      instanceType,
      userData,
      machineImage: MachineImage.latestAmazonLinux2023({
        cpuType:
          instanceType.architecture === 'arm64' ? AmazonLinuxCpuType.ARM_64 : AmazonLinuxCpuType.X86_64,
      }),
      role: this.role,
      securityGroup,
      requireImdsv2: true,
      instanceMetadataTags: true,
      detailedMonitoring: true,
      blockDevices: [
        {
          deviceName: '/dev/xvda',
          volume: BlockDeviceVolume.ebs(16, { encrypted: true, volumeType: EbsDeviceVolumeType.GP3 }),
        },
      ],
    });
    this.group = new AutoScalingGroup(this, 'Group', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate,
      minCapacity: floor,
      maxCapacity: ceiling,
      healthChecks: HealthChecks.withAdditionalChecks({
        additionalTypes: [AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.seconds(soakSeconds + 300),
      }),
      signals: Signals.waitForMinCapacity({ timeout: Duration.seconds(soakSeconds + 900) }),
      updatePolicy: UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: floor }),
      defaultInstanceWarmup: Duration.seconds(60),
    });
    // Password hashing is CPU-bound: CPU is the load signal.
    this.group.scaleOnCpuUtilization('Cpu', { targetUtilizationPercent: 60 });

    this.loadBalancer = new ApplicationLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: true,
      vpcSubnets: { subnetType: SubnetType.PUBLIC },
      dropInvalidHeaderFields: true,
    });
    if (props.accessLogs) this.loadBalancer.logAccessLogs(props.accessLogs, 'auth-alb');
    this.targetGroup = new ApplicationTargetGroup(this, 'Targets', {
      vpc: props.vpc,
      port: AUTH_PORT,
      protocol: ApplicationProtocol.HTTP,
      targets: [this.group],
      healthCheck: { path: '/readyz', interval: Duration.seconds(10), healthyThresholdCount: 2 },
      deregistrationDelay: Duration.seconds(30),
    });
    if (tls) {
      this.loadBalancer.addListener('Https', {
        port: 443,
        protocol: ApplicationProtocol.HTTPS,
        certificates: [ListenerCertificate.fromArn(props.certificateArn as string)],
        sslPolicy: SslPolicy.RECOMMENDED_TLS,
        defaultTargetGroups: [this.targetGroup],
      });
      this.loadBalancer.addListener('HttpRedirect', {
        port: 80,
        protocol: ApplicationProtocol.HTTP,
        defaultAction: ListenerAction.redirect({ protocol: 'HTTPS', port: '443', permanent: true }),
      });
    } else {
      this.loadBalancer.addListener('Http', {
        port: 80,
        protocol: ApplicationProtocol.HTTP,
        defaultTargetGroups: [this.targetGroup],
      });
    }
    securityGroup.connections.allowFrom(
      this.loadBalancer,
      Port.tcp(AUTH_PORT),
      'API and health checks from the ALB',
    );
    this.url = `${tls ? 'https' : 'http'}://${this.loadBalancer.loadBalancerDnsName}`;

    this.webAclName = `${stack.stackName}-auth`;
    this.webAcl = new CfnWebACL(this, 'WebAcl', {
      name: this.webAclName,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility('supernode-auth'),
      customResponseBodies: {
        'rate-limited': {
          contentType: 'APPLICATION_JSON',
          content: JSON.stringify({ error: 'rate_limited', message: 'Too many requests from this address' }),
        },
      },
      rules: [
        {
          // Per client IP, before anything else: a login storm from one address costs WAF, not us.
          name: 'per-ip-rate',
          priority: 0,
          statement: {
            rateBasedStatement: { aggregateKeyType: 'IP', limit: rateLimit, evaluationWindowSec: 300 },
          },
          action: {
            block: {
              customResponse: {
                responseCode: 429,
                customResponseBodyKey: 'rate-limited',
                responseHeaders: [{ name: 'Retry-After', value: String(retryAfter) }],
              },
            },
          },
          visibilityConfig: visibility('per-ip-rate'),
        },
        managedRule('AWSManagedRulesAmazonIpReputationList', 1),
        managedRule('AWSManagedRulesCommonRuleSet', 2),
        managedRule('AWSManagedRulesKnownBadInputsRuleSet', 3),
      ],
    });
    new CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: this.loadBalancer.loadBalancerArn,
      webAclArn: this.webAcl.attrArn,
    });

    serviceUserData(userData, {
      bundle: props.bundle,
      service: 'supernode-auth',
      command: 'auth',
      group: this.group.node.defaultChild as CfnAutoScalingGroup,
      readinessUrl: `http://127.0.0.1:${AUTH_PORT}/readyz`,
      soakSeconds,
      stopTimeoutSeconds: 45,
      environment: {
        AUTH_HOST: '0.0.0.0',
        AUTH_PORT: String(AUTH_PORT),
        AUTH_DATA_DIR: '/var/lib/supernode-auth',
        AUTH_AWS_DYNAMODB: 'true',
        AUTH_TABLE: props.table.tableName,
        AUTH_KEY_RING_SECRET: props.keyRingSecret.secretArn,
        AUTH_PUBLISH_BUCKET: props.publicationBucket.bucketName,
        // The ALB puts the client address in X-Forwarded-For; per-IP limits need it.
        AUTH_TRUST_PROXY: 'true',
        AUTH_CLOUDWATCH: 'true',
        AUTH_LOG_LEVEL: 'info',
      },
      instanceEnvironment: { AUTH_AUTO_SCALING_GROUP: '$GROUP_NAME', AWS_REGION: '$REGION' },
    });
  }
}

function visibility(metricName: string): CfnWebACL.VisibilityConfigProperty {
  return { cloudWatchMetricsEnabled: true, metricName, sampledRequestsEnabled: true };
}

function managedRule(name: string, priority: number): CfnWebACL.RuleProperty {
  return {
    name,
    priority,
    statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
    overrideAction: { none: {} },
    visibilityConfig: visibility(name),
  };
}
