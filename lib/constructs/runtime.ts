import { join } from 'node:path';
import { AssetHashType, BundlingOutput, DockerImage, Stack } from 'aws-cdk-lib';
import type { CfnAutoScalingGroup } from 'aws-cdk-lib/aws-autoscaling';
import type { UserData } from 'aws-cdk-lib/aws-ec2';
import { Effect, type IRole, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { Construct } from 'constructs';
import { bundleSync } from '../../supernode/build/bundle';

/**
 * Node on the instances: AL2023's namespaced package (binary /usr/bin/node-<major>). 22, not the 20
 * used in development: 20 is past its end of life, and AWS SDK releases from 2027 require 22.
 */
export const NODE_MAJOR = 22;

/** Namespace of every custom metric; the IAM condition on PutMetricData names it. */
export const METRIC_NAMESPACE = 'Supernode';

/**
 * The runtime (supernode, auth service and CLI in one file) as an S3 asset, built with the local
 * esbuild: no Docker. The hash is taken from the bundle, so a dependency upgrade is a new release.
 */
export class RuntimeBundle extends Construct {
  readonly asset: Asset;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.asset = new Asset(this, 'Resource', {
      path: join(__dirname, '..', '..', 'supernode'),
      assetHashType: AssetHashType.OUTPUT,
      bundling: {
        // Never used: the local bundler always succeeds or throws. CDK requires an image anyway.
        image: DockerImage.fromRegistry('local-esbuild-only'),
        outputType: BundlingOutput.SINGLE_FILE,
        local: {
          tryBundle(outputDir: string): boolean {
            bundleSync(join(outputDir, 'supernode.cjs'));
            return true;
          },
        },
      },
    });
  }

  /** Read of exactly this object, not the whole staging bucket that `grantRead` opens. */
  grantRead(role: IRole): void {
    role.addToPrincipalPolicy(
      new PolicyStatement({
        effect: Effect.ALLOW,
        actions: ['s3:GetObject'],
        resources: [
          `arn:${Stack.of(this).partition}:s3:::${this.asset.s3BucketName}/${this.asset.s3ObjectKey}`,
        ],
      }),
    );
  }
}

export interface ServiceUserDataProps {
  bundle: RuntimeBundle;
  /** systemd unit name and system user, e.g. `supernode`. */
  service: string;
  /** CLI command the unit runs: `node` or `auth`. */
  command: 'node' | 'auth';
  /** Fixed settings, written to the unit's EnvironmentFile. Never secrets. */
  environment: Record<string, string>;
  /** Settings only known on the instance, as shell expressions (e.g. `$INSTANCE_ID`). */
  instanceEnvironment?: Record<string, string>;
  /** Secrets fetched at boot into root-owned files the service user can read. */
  secretFiles?: { secretArn: string; region?: string; path: string }[];
  /** What the soak gate watches before the success signal. */
  readinessUrl: string;
  soakSeconds: number;
  /** systemd waits this long for a graceful stop (drain) before SIGKILL. */
  stopTimeoutSeconds: number;
  /** The group whose rolling update waits for this instance's signal. */
  group: CfnAutoScalingGroup;
}

/**
 * Boot script for Amazon Linux 2023: installs Node and the bundle, writes a hardened systemd unit
 * (restart on failure, high file limit), starts it, runs `supernode soak` on it and only then sends
 * cfn-signal. Any failure before that signals failure, so CloudFormation rolls the release back.
 * Instances launched into the warm pool install everything and stop without starting the service:
 * the unit is enabled and starts when the instance is put in service.
 */
export function serviceUserData(userData: UserData, props: ServiceUserDataProps): void {
  const stack = Stack.of(props.group);
  const envFile = `/etc/${props.service}/${props.service}.env`;
  const bundlePath = `/opt/${props.service}/supernode.cjs`;
  const fixed = Object.entries(props.environment).map(([key, value]) => `${key}=${value}`);
  const dynamic = Object.entries(props.instanceEnvironment ?? {}).map(([key, value]) => `${key}=${value}`);
  userData.addCommands(
    'set -euo pipefail',
    'exec > >(tee -a /var/log/supernode-setup.log) 2>&1',
    `signal() { /opt/aws/bin/cfn-signal --exit-code "$1" --stack ${stack.stackName} --resource ${stack.getLogicalId(props.group)} --region ${stack.region} || true; }`,
    "trap 'signal 1' ERR",
    'TOKEN=$(curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" http://169.254.169.254/latest/api/token)',
    'imds() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }',
    'INSTANCE_ID=$(imds instance-id)',
    'PRIVATE_IP=$(imds local-ipv4)',
    'REGION=$(imds placement/region)',
    'GROUP_NAME=$(imds tags/instance/aws:autoscaling:groupName)',
    'LIFECYCLE_STATE=$(imds autoscaling/target-lifecycle-state || echo InService)',
    `dnf install -y nodejs${NODE_MAJOR} aws-cfn-bootstrap`,
    `id ${props.service} >/dev/null 2>&1 || useradd --system --home-dir /var/lib/${props.service} --create-home --shell /sbin/nologin ${props.service}`,
    `install -d -m 0755 /opt/${props.service}`,
    `install -d -m 0750 -g ${props.service} /etc/${props.service}`,
  );
  userData.addS3DownloadCommand({
    bucket: props.bundle.asset.bucket,
    bucketKey: props.bundle.asset.s3ObjectKey,
    localFile: bundlePath,
  });
  for (const secret of props.secretFiles ?? []) {
    userData.addCommands(
      `umask 027; aws secretsmanager get-secret-value --region ${secret.region ?? '"$REGION"'} --secret-id ${secret.secretArn} --query SecretString --output text > ${secret.path}; umask 022`,
      `chown root:${props.service} ${secret.path}`,
    );
  }
  userData.addCommands(
    `cat > ${envFile} <<'EOF'`,
    ...fixed,
    'EOF',
    `cat >> ${envFile} <<EOF`,
    ...dynamic,
    'EOF',
    `chown root:${props.service} ${envFile}`,
    `chmod 0640 ${envFile}`,
    `cat > /etc/systemd/system/${props.service}.service <<'EOF'`,
    '[Unit]',
    `Description=Supernode Tier ${props.command === 'node' ? 'supernode' : 'auth service'}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '[Service]',
    `User=${props.service}`,
    `EnvironmentFile=${envFile}`,
    `ExecStart=/usr/bin/node-${NODE_MAJOR} ${bundlePath} ${props.command}`,
    'Restart=on-failure',
    'RestartSec=2',
    'LimitNOFILE=1048576',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${props.stopTimeoutSeconds}`,
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    `ReadWritePaths=/var/lib/${props.service}`,
    '[Install]',
    'WantedBy=multi-user.target',
    'EOF',
    'systemctl daemon-reload',
    `systemctl enable ${props.service}`,
    // Warm pool: prepared and stopped; the enabled unit starts when the instance goes in service.
    'case "$LIFECYCLE_STATE" in Warmed:*) echo "warm pool instance: prepared, not started"; exit 0;; esac',
    `systemctl start ${props.service}`,
    `if /usr/bin/node-${NODE_MAJOR} ${bundlePath} soak --url ${props.readinessUrl} --soak-sec ${props.soakSeconds}; then signal 0; else signal 1; fi`,
  );
}
