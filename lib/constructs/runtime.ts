import { copyFileSync, existsSync } from 'node:fs';
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
            bundleOncePerProcess(join(outputDir, 'supernode.cjs'));
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

let firstBundle: string | undefined;

/**
 * CDK's asset cache is keyed by the output directory, so every new App would run esbuild again (about
 * a second each; the CDK tests synthesize dozens). The sources do not change during one process, so
 * later apps get a copy of the first bundle.
 */
function bundleOncePerProcess(outfile: string): void {
  if (firstBundle && existsSync(firstBundle)) {
    copyFileSync(firstBundle, outfile);
    return;
  }
  bundleSync(outfile);
  firstBundle = outfile;
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

/** Counted by a boot script whose install, soak or gate failed; the release gate alarm watches it. */
export const RELEASE_GATE_METRIC = 'ReleaseGateFailures';

/** The dimensions of a group's release-gate metric: literals, so an alarm on it needs no group reference. */
export function releaseGateDimensions(stackName: string, service: string): Record<string, string> {
  return { Stack: stackName, Service: service };
}

/** Where the boot script puts a service's files. Absolute paths the script and the unit share. */
export function servicePaths(service: string) {
  return {
    etc: `/etc/${service}`,
    opt: `/opt/${service}`,
    data: `/var/lib/${service}`,
    envFile: `/etc/${service}/${service}.env`,
    bundle: `/opt/${service}/supernode.cjs`,
    perBoot: `/var/lib/cloud/scripts/per-boot/${service}.sh`,
    log: `/var/log/${service}-setup.log`,
    node: `/usr/bin/node-${NODE_MAJOR}`,
  };
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
  /** Secrets fetched at every boot into root-owned files (`/etc/<service>/<file>`) the service user reads. */
  secretFiles?: SecretFile[];
  /**
   * Reads the instance's public IPv4 address from IMDSv2 into `$PUBLIC_IP` (for `instanceEnvironment`);
   * the boot fails, naming the cause, when the instance has none.
   * @default false
   */
  publicIpv4?: boolean;
  /** Kernel settings applied on every boot (`sysctl -w`), before the service starts. @default none */
  sysctls?: Record<string, string>;
  /** What the soak gate watches before the success signal. */
  readinessUrl: string;
  soakSeconds: number;
  /** systemd waits this long for a graceful stop (drain) before SIGKILL. */
  stopTimeoutSeconds: number;
  /** The group whose creation waits for this instance's cfn-signal. */
  group: CfnAutoScalingGroup;
  /**
   * The EC2_INSTANCE_LAUNCHING hook that holds every new instance (warm or not) until this script
   * completes it: CONTINUE once installed (warm pool) or soaked (in service), ABANDON on failure.
   * @default - no launch hook: nothing to complete
   */
  launchHookName?: string;
  /**
   * One more condition after the soak, retried for up to 150 s: a shell command that exits 0 once
   * the service has done what others wait for (the auth service: jwks.json is published).
   * @default - the soak alone
   */
  gate?: { description: string; command: string };
}

export interface SecretFile {
  /** ARN or name; a name is looked up in `region`, so it finds a replica of a secret there. */
  secretId: string;
  /** @default - the instance's region */
  region?: string;
  /** File name under `/etc/<service>/`. */
  file: string;
  /**
   * Fetched again every this many minutes by a systemd timer while the service runs, for secrets
   * the service re-reads (rotation without a restart). Written whole or not at all.
   * @default - fetched at boot only
   */
  refreshMinutes?: number;
}

/**
 * Boot script for Amazon Linux 2023, run on every boot: by cloud-init on the first one, then from a
 * copy in cloud-init's per-boot folder (user data itself runs once per instance). Each run installs
 * Node and the bundle, fetches the secrets, writes the env file and a hardened systemd unit (restart
 * on failure, high file limit), then reads the instance's target lifecycle state from IMDSv2:
 *
 * - `Warmed:*` (launched into the warm pool): installed, not started; completes the launch hook so
 *   Auto Scaling stops the instance. The unit is never enabled, so nothing serves from the pool.
 * - anything else (in service: a direct launch, or a warm instance waking up): starts the unit, runs
 *   `supernode soak` on it and the gate, then completes the launch hook and sends cfn-signal success.
 *
 * Any failure counts a release-gate failure metric, abandons the launch hook (Auto Scaling replaces
 * the instance; an instance refresh fails on the metric's alarm) and signals failure. Every path the
 * script writes is a variable at its top (test/cdk/boot-script.ts runs it with stubs).
 */
export function serviceUserData(userData: UserData, props: ServiceUserDataProps): void {
  const stack = Stack.of(props.group);
  const paths = servicePaths(props.service);
  const fixed = Object.entries(props.environment).map(([key, value]) => `${key}=${value}`);
  const dynamic = Object.entries(props.instanceEnvironment ?? {}).map(([key, value]) => `${key}=${value}`);
  const dimensions = Object.entries(releaseGateDimensions(stack.stackName, props.service))
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
  const unit = `${props.service}.service`;
  userData.addCommands(
    `# Boot script of ${props.service} (Supernode Tier): runs on every boot, see lib/constructs/runtime.ts.`,
    'set -euo pipefail',
    `ETC_DIR=${paths.etc}`,
    `OPT_DIR=${paths.opt}`,
    `DATA_DIR=${paths.data}`,
    'UNIT_DIR=/etc/systemd/system',
    `PER_BOOT=${paths.perBoot}`,
    `LOG_FILE=${paths.log}`,
    `NODE_BIN=${paths.node}`,
    'PATH="$PATH:/opt/aws/bin"',
    'exec > >(tee -a "$LOG_FILE") 2>&1',
    'echo "boot script of $0 at $(date -u +%FT%TZ)"',
    'INSTANCE_ID= REGION= GROUP_NAME=',
    `signal() { cfn-signal --exit-code "$1" --stack ${stack.stackName} --resource ${stack.getLogicalId(props.group)} --region ${stack.region} || true; }`,
    props.launchHookName
      ? `complete_launch() { aws autoscaling complete-lifecycle-action --region "$REGION" --auto-scaling-group-name "$GROUP_NAME" --lifecycle-hook-name ${props.launchHookName} --instance-id "$INSTANCE_ID" --lifecycle-action-result "$1" || true; }`
      : 'complete_launch() { :; } # no launch hook on this group',
    `gate_failed() { aws cloudwatch put-metric-data --region "\${REGION:-${stack.region}}" --namespace ${METRIC_NAMESPACE} --metric-name ${RELEASE_GATE_METRIC} --dimensions ${dimensions} --value 1 || true; }`,
    'fail() { trap - ERR; echo "boot failed: $1"; gate_failed; complete_launch ABANDON; signal 1; exit 1; }',
    `trap 'fail "command failed on line $LINENO"' ERR`,
    'retry() { local tries=$1 pause=$2; shift 2; for _ in $(seq "$tries"); do "$@" && return 0; sleep "$pause"; done; return 1; }',
    'TOKEN=$(retry 5 2 curl -sf -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 21600" http://169.254.169.254/latest/api/token)',
    'imds() { curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" "http://169.254.169.254/latest/meta-data/$1"; }',
    'INSTANCE_ID=$(retry 5 2 imds instance-id)',
    'PRIVATE_IP=$(retry 5 2 imds local-ipv4)',
    'REGION=$(retry 5 2 imds placement/region)',
    'GROUP_NAME=$(retry 5 2 imds tags/instance/aws:autoscaling:groupName)',
    // Read on every boot: a warm instance gets a new public address each time it starts.
    ...(props.publicIpv4
      ? [
          'PUBLIC_IP=$(retry 5 2 imds public-ipv4) || fail "no public IPv4 address in instance metadata: the instance needs one in a public subnet"',
          'echo "public IPv4: $PUBLIC_IP"',
        ]
      : []),
    // Warmed:Stopped while prepared for the pool, InService on the boot that puts it in service.
    'LIFECYCLE_STATE=$(retry 5 2 imds autoscaling/target-lifecycle-state || echo InService)',
    'echo "target lifecycle state: $LIFECYCLE_STATE"',
    `dnf install -y nodejs${NODE_MAJOR} aws-cfn-bootstrap`,
    `id ${props.service} >/dev/null 2>&1 || useradd --system --home-dir "$DATA_DIR" --create-home --shell /sbin/nologin ${props.service}`,
    'install -d -m 0755 "$OPT_DIR"',
    'install -d -m 0750 "$ETC_DIR"',
    `chown root:${props.service} "$ETC_DIR"`,
    `aws s3 cp 's3://${props.bundle.asset.s3BucketName}/${props.bundle.asset.s3ObjectKey}' "$OPT_DIR/supernode.cjs" --region "$REGION" --only-show-errors`,
  );
  const refreshed = (props.secretFiles ?? []).filter((secret) => secret.refreshMinutes !== undefined);
  for (const secret of props.secretFiles ?? []) {
    if (secret.refreshMinutes !== undefined) continue;
    userData.addCommands(
      `(umask 027; aws secretsmanager get-secret-value --region ${secret.region ?? '"$REGION"'} --secret-id ${secret.secretId} --query SecretString --output text > "$ETC_DIR/${secret.file}")`,
      `chown root:${props.service} "$ETC_DIR/${secret.file}"`,
    );
  }
  if (refreshed.length > 0) refreshedSecrets(userData, props.service, refreshed);
  for (const [key, value] of Object.entries(props.sysctls ?? {})) {
    userData.addCommands(`sysctl -w ${key}=${value}`);
  }
  userData.addCommands(
    `cat > "$ETC_DIR/${props.service}.env" <<'EOF'`,
    ...fixed,
    'EOF',
    `cat >> "$ETC_DIR/${props.service}.env" <<EOF`,
    ...dynamic,
    'EOF',
    `chown root:${props.service} "$ETC_DIR/${props.service}.env"`,
    `chmod 0640 "$ETC_DIR/${props.service}.env"`,
    // No [Install] section and never enabled: this script starts it, only on a boot into service.
    `cat > "$UNIT_DIR/${unit}" <<'EOF'`,
    '[Unit]',
    `Description=Supernode Tier ${props.command === 'node' ? 'supernode' : 'auth service'}`,
    'After=network-online.target',
    'Wants=network-online.target',
    '[Service]',
    `User=${props.service}`,
    `EnvironmentFile=${paths.envFile}`,
    `ExecStart=${paths.node} ${paths.bundle} ${props.command}`,
    'Restart=on-failure',
    'RestartSec=2',
    'LimitNOFILE=1048576',
    'KillSignal=SIGTERM',
    `TimeoutStopSec=${props.stopTimeoutSeconds}`,
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    `ReadWritePaths=${paths.data}`,
    'EOF',
    'systemctl daemon-reload',
    // User data runs once per instance; this copy runs on every later boot (cloud-init per-boot).
    'if [ "$0" != "$PER_BOOT" ]; then install -D -m 0700 "$0" "$PER_BOOT"; fi',
    'case "$LIFECYCLE_STATE" in',
    '  Warmed:*)',
    '    complete_launch CONTINUE',
    '    echo "warm pool instance: installed, not started; the boot into service starts it"',
    '    exit 0;;',
    'esac',
    `systemctl start ${props.service}`,
    ...(refreshed.length > 0 ? [`systemctl start ${props.service}-secrets.timer`] : []),
    ...(props.gate
      ? [`gate() { retry 30 5 ${props.gate.command} >/dev/null 2>&1; } # ${props.gate.description}`]
      : ['gate() { :; }']),
    `if "$NODE_BIN" "$OPT_DIR/supernode.cjs" soak --url ${props.readinessUrl} --soak-sec ${props.soakSeconds} && gate; then`,
    '  complete_launch CONTINUE',
    '  signal 0',
    'else',
    '  fail "not ready: the soak or the gate failed"',
    'fi',
  );
}

/**
 * Secrets the service re-reads while it runs: a script that fetches each into a temporary file and
 * renames it over the old one (the service never reads half a secret, and a failed fetch keeps the
 * last good one), run now and then by a systemd timer (started with the service, never enabled).
 */
function refreshedSecrets(userData: UserData, service: string, secrets: SecretFile[]): void {
  const paths = servicePaths(service);
  const minutes = Math.min(...secrets.map((secret) => secret.refreshMinutes as number));
  if (!Number.isInteger(minutes) || minutes < 1 || minutes > 60) {
    throw new Error(`serviceUserData: refreshMinutes must be 1..60 (got ${minutes})`);
  }
  userData.addCommands(
    // Unquoted: the directory and region are fixed when the script is written.
    'cat > "$OPT_DIR/refresh-secrets.sh" <<EOF',
    '#!/bin/bash',
    `# Fetches the secrets ${service} re-reads; run at boot and by ${service}-secrets.timer.`,
    'set -euo pipefail',
    'ETC_DIR=$ETC_DIR',
    'REGION=$REGION',
    'EOF',
    `cat >> "$OPT_DIR/refresh-secrets.sh" <<'EOF'`,
    'fetch() {',
    '  local tmp="$ETC_DIR/.$1.new"',
    '  if (umask 027; aws secretsmanager get-secret-value --region "$2" --secret-id "$3" --query SecretString --output text > "$tmp") && [ -s "$tmp" ]; then',
    `    chown root:${service} "$tmp"`,
    '    mv -f "$tmp" "$ETC_DIR/$1"',
    '  else',
    '    rm -f "$tmp"',
    '    echo "could not fetch $3; $1 keeps its last good value" >&2',
    '    return 1',
    '  fi',
    '}',
    ...secrets.map((secret) => `fetch ${secret.file} "${secret.region ?? '$REGION'}" ${secret.secretId}`),
    'EOF',
    'chmod 0700 "$OPT_DIR/refresh-secrets.sh"',
    'retry 5 2 "$OPT_DIR/refresh-secrets.sh"',
    `cat > "$UNIT_DIR/${service}-secrets.service" <<'EOF'`,
    '[Unit]',
    `Description=Fetch the secrets ${service} re-reads`,
    '[Service]',
    'Type=oneshot',
    `ExecStart=${paths.opt}/refresh-secrets.sh`,
    'EOF',
    `cat > "$UNIT_DIR/${service}-secrets.timer" <<'EOF'`,
    '[Unit]',
    `Description=Fetch the secrets ${service} re-reads every ${minutes} minutes`,
    '[Timer]',
    `OnActiveSec=${minutes}min`,
    `OnUnitActiveSec=${minutes}min`,
    'RandomizedDelaySec=30',
    'EOF',
  );
}
