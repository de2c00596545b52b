import { Duration, Fn, Stack, Token } from 'aws-cdk-lib';
import type { AutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import type { ITableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { type IVpc, Port, SecurityGroup, SubnetType } from 'aws-cdk-lib/aws-ec2';
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
import { type CfnWebACL, CfnWebACLAssociation } from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { AUTH_DEFAULTS, TURN_DEFAULTS } from '../defaults';
import { AuthWaf } from './auth-waf';
import { putMetricDataStatement, type RuntimeBundle, servicePaths } from './runtime';
import { ServiceGroup } from './service-group';
import type { TurnSecretRef } from './turn-secret';

export const AUTH_PORT = 8080;

/** The object the fleets wait for: the auth service's first publication of the public key set. */
export const JWKS_KEY = 'jwks.json';

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
  /** Host name of the API when the ALB has a DNS record of its own. @default - the ALB's DNS name */
  readonly hostName?: string;
  /** Requests one IP may make in 5 minutes before WAF answers 429. WAF's minimum is 10. @default 600 */
  readonly requestsPerIpPer5Minutes?: number;
  /** Seconds in the Retry-After header of the WAF 429. @default 60 */
  readonly wafRetryAfterSeconds?: number;
  /** @default 120 */
  readonly soakSeconds?: number;
  /** Bucket for the ALB's access logs. @default - no access logs */
  readonly accessLogs?: IBucket;
  /**
   * TURN credentials for logged-in clients: the service mints them with the secret's first line and
   * returns `iceServers` with these URLs. @default - no TURN
   */
  readonly turn?: AuthTurnProps;
}

export interface AuthTurnProps {
  /** The shared secret (the primary, in the home region). */
  readonly secret: TurnSecretRef;
  /** `turn:`/`turns:` URLs of every fleet, handed to clients as they are (a list token is fine). */
  readonly urls: string[];
  /** Lifetime of the credentials; an allocation cannot outlive them. @default 86400 */
  readonly credentialTtlSeconds?: number;
  /** How often instances fetch the secret again (rotation). @default 5 */
  readonly secretRefreshMinutes?: number;
}

/**
 * The front door: the auth service on its own Auto Scaling group behind an ALB guarded by WAF
 * (`AuthWaf`). Compute only: its state (`AuthData`) comes in through props, so replacing this
 * construct never touches accounts or keys. It publishes the public key set to S3, where supernodes
 * read it even while this service is down; an instance signals success only once the key set is
 * there, so whatever waits for this group's creation finds the keys.
 */
export class AuthService extends Construct {
  readonly group: AutoScalingGroup;
  readonly service: ServiceGroup;
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
    const floor = props.floor ?? AUTH_DEFAULTS.floor;
    const ceiling = props.ceiling ?? AUTH_DEFAULTS.ceiling;
    const soakSeconds = props.soakSeconds ?? AUTH_DEFAULTS.soakSeconds;
    if (!Number.isInteger(floor) || floor < 1)
      throw new Error(`AuthService: floor must be at least 1 (got ${floor})`);
    if (!Number.isInteger(ceiling) || ceiling <= floor) {
      throw new Error(
        `AuthService: ceiling (${ceiling}) must be greater than floor (${floor}) for rolling updates`,
      );
    }
    const stack = Stack.of(this);
    const tls = props.certificateArn !== undefined;

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
          props.publicationBucket.arnForObjects(JWKS_KEY),
          props.publicationBucket.arnForObjects('revocations.json'),
        ],
      }),
    );
    // The boot script's gate: HeadObject on the key set it just published.
    this.role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['s3:GetObject'],
        resources: [props.publicationBucket.arnForObjects(JWKS_KEY)],
      }),
    );
    // Customer-managed keys (none on AuthData's resources) must let the service use the data.
    props.table.encryptionKey?.grantEncryptDecrypt(this.role);
    props.keyRingSecret.encryptionKey?.grantEncryptDecrypt(this.role);
    this.role.addToPrincipalPolicy(putMetricDataStatement());
    const turn = props.turn;
    const credentialTtlSeconds = turn?.credentialTtlSeconds ?? TURN_DEFAULTS.credentialTtlSeconds;
    if (turn) {
      if (!Token.isUnresolved(turn.urls) && turn.urls.length === 0)
        throw new Error('AuthService: turn.urls must name at least one TURN URL');
      if (
        !Number.isInteger(credentialTtlSeconds) ||
        credentialTtlSeconds < 60 ||
        credentialTtlSeconds > 604_800
      ) {
        throw new Error(
          `AuthService: turn.credentialTtlSeconds must be 60..604800 (got ${credentialTtlSeconds})`,
        );
      }
      this.role.addToPrincipalPolicy(
        new PolicyStatement({
          effect: Effect.ALLOW,
          actions: ['secretsmanager:GetSecretValue'],
          resources: [turn.secret.resourceArn],
        }),
      );
    }

    const securityGroup = new SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Auth service instances: API from the ALB only',
      allowAllOutbound: true,
    });
    this.service = new ServiceGroup(this, 'Group', {
      vpc: props.vpc,
      bundle: props.bundle,
      role: this.role,
      securityGroup,
      instanceType: props.instanceType ?? AUTH_DEFAULTS.instanceType,
      floor,
      ceiling,
      soakSeconds,
      defaultInstanceWarmup: Duration.seconds(60),
      service: 'supernode-auth',
      command: 'auth',
      readinessUrl: `http://127.0.0.1:${AUTH_PORT}/readyz`,
      stopTimeoutSeconds: 45,
      secretFiles: turn && [
        {
          secretId: turn.secret.secretId,
          file: 'turn-secret',
          refreshMinutes: turn.secretRefreshMinutes ?? TURN_DEFAULTS.secretRefreshMinutes,
        },
      ],
      gate: {
        description: `the public key set is published (s3://.../${JWKS_KEY})`,
        command: `aws s3api head-object --region "$REGION" --bucket ${props.publicationBucket.bucketName} --key ${JWKS_KEY}`,
      },
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
        ...(turn
          ? {
              AUTH_TURN_URLS: Fn.join(',', turn.urls),
              AUTH_TURN_SECRET_FILE: `${servicePaths('supernode-auth').etc}/turn-secret`,
              AUTH_TURN_CREDENTIAL_TTL_SEC: String(credentialTtlSeconds),
            }
          : {}),
      },
      instanceEnvironment: { AUTH_AUTO_SCALING_GROUP: '$GROUP_NAME', AWS_REGION: '$REGION' },
    });
    this.group = this.service.group;
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
    this.url = tls
      ? `https://${props.hostName ?? this.loadBalancer.loadBalancerDnsName}`
      : `http://${this.loadBalancer.loadBalancerDnsName}`;

    const waf = new AuthWaf(this, 'WebAcl', {
      name: `${stack.stackName}-auth`,
      requestsPerIpPer5Minutes: props.requestsPerIpPer5Minutes,
      retryAfterSeconds: props.wafRetryAfterSeconds,
    });
    this.webAcl = waf.webAcl;
    this.webAclName = waf.webAclName;
    new CfnWebACLAssociation(this, 'WebAclAssociation', {
      resourceArn: this.loadBalancer.loadBalancerArn,
      webAclArn: this.webAcl.attrArn,
    });
  }
}
