import { Annotations, type CfnResource, Duration, Stack } from 'aws-cdk-lib';
import {
  AdditionalHealthCheckType,
  AutoScalingGroup,
  type CfnAutoScalingGroup,
  HealthChecks,
  InstanceRefreshStrategy,
  PoolState,
  Signals,
  UpdatePolicy,
  type WarmPool,
} from 'aws-cdk-lib/aws-autoscaling';
import { Alarm, ComparisonOperator, Metric, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import {
  AmazonLinuxCpuType,
  BlockDeviceVolume,
  EbsDeviceVolumeType,
  InstanceType,
  type ISecurityGroup,
  type IVpc,
  LaunchTemplate,
  MachineImage,
  SubnetType,
  UserData,
} from 'aws-cdk-lib/aws-ec2';
import type { IRole } from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import {
  METRIC_NAMESPACE,
  RELEASE_GATE_METRIC,
  releaseGateDimensions,
  type ServiceUserDataProps,
  serviceUserData,
} from './runtime';

/** The EC2_INSTANCE_LAUNCHING hook of a group with a warm pool; the boot script completes it. */
export const LAUNCH_HOOK_NAME = 'launch';

export interface ServiceGroupProps
  extends Omit<ServiceUserDataProps, 'group' | 'launchHookName' | 'soakSeconds' | 'readinessUrl'> {
  readonly vpc: IVpc;
  /** Instance role (its policies are the caller's). */
  readonly role: IRole;
  readonly securityGroup: ISecurityGroup;
  readonly instanceType: string;
  /** Instances always in service, during releases included. */
  readonly floor: number;
  readonly ceiling: number;
  /** `/readyz` of the service on the instance: the soak watches it. */
  readonly readinessUrl: string;
  readonly soakSeconds: number;
  /** Seconds a new instance's metrics are left out of scaling decisions. */
  readonly defaultInstanceWarmup: Duration;
  /**
   * Stopped, installed instances kept for scale-out. A group with a warm pool gets a launch hook the
   * boot script completes, and releases roll out by instance refresh (which replaces warm instances
   * too); a group without one is released by a CloudFormation rolling update.
   * @default - no warm pool
   */
  readonly warmPoolSize?: number;
  /**
   * Instances in the public subnets with a public IPv4 address each (read into `$PUBLIC_IP` by the
   * boot script), for a service peers must reach directly (TURN relays). Inbound traffic is still only
   * what the security group allows.
   * @default false - private subnets, egress through NAT
   */
  readonly publicIpv4?: boolean;
}

/**
 * An Auto Scaling group of one service of the tier with its launch template and boot script: IMDSv2
 * only, encrypted gp3 root volume, AL2023 for the type's architecture, ELB health checks, creation
 * waiting on cfn-signals sent after the soak, and a release path that never goes below the floor.
 *
 * Releases (a new bundle or setting is a new launch template version):
 * - without a warm pool: a rolling update, one instance at a time, each waiting for its signal;
 * - with a warm pool: an instance refresh (CloudFormation's AutoScalingInstanceRefresh policy) that
 *   launches before it terminates (100-110% healthy), replaces in-service and then warm instances,
 *   and fails, rolling the stack back, when the release-gate alarm fires: a new instance whose
 *   install, soak or gate failed counts a failure from its boot script.
 */
export class ServiceGroup extends Construct {
  readonly group: AutoScalingGroup;
  readonly launchTemplate: LaunchTemplate;
  readonly warmPool: WarmPool | undefined;
  /** Alarm on failed boots of new instances; the instance refresh fails on it. */
  readonly releaseGateAlarm: Alarm | undefined;
  /** Name of the launch hook (groups with a warm pool only). */
  readonly launchHookName: string | undefined;

  constructor(scope: Construct, id: string, props: ServiceGroupProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const instanceType = new InstanceType(props.instanceType);
    const warmPoolSize = props.warmPoolSize ?? 0;
    const userData = UserData.forLinux();
    this.launchTemplate = new LaunchTemplate(this, 'LaunchTemplate', {
      instanceType,
      userData,
      machineImage: MachineImage.latestAmazonLinux2023({
        cpuType:
          instanceType.architecture === 'arm64' ? AmazonLinuxCpuType.ARM_64 : AmazonLinuxCpuType.X86_64,
      }),
      role: props.role,
      securityGroup: props.securityGroup,
      requireImdsv2: true,
      ...(props.publicIpv4 ? { associatePublicIpAddress: true } : {}),
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

    // A literal name, so the group's update policy names it without a reference (and no cycle).
    const gateAlarmName = `${stack.stackName}-${props.service}-release-gate`;
    if (warmPoolSize > 0) {
      this.releaseGateAlarm = new Alarm(this, 'ReleaseGate', {
        alarmName: gateAlarmName,
        alarmDescription: `A new ${props.service} instance failed its install, soak or gate; a release in progress fails and rolls back. Runbook: docs/deploy.md#release-gate-failed`,
        metric: new Metric({
          namespace: METRIC_NAMESPACE,
          metricName: RELEASE_GATE_METRIC,
          dimensionsMap: releaseGateDimensions(stack.stackName, props.service),
          statistic: 'Sum',
          period: Duration.minutes(1),
        }),
        threshold: 1,
        comparisonOperator: ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: TreatMissingData.NOT_BREACHING,
      });
    }

    // 'Default': the group keeps the logical ID it had as a direct child of the service construct.
    this.group = new AutoScalingGroup(this, 'Default', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: props.publicIpv4 ? SubnetType.PUBLIC : SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate: this.launchTemplate,
      minCapacity: props.floor,
      maxCapacity: props.ceiling,
      healthChecks: HealthChecks.withAdditionalChecks({
        additionalTypes: [AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.seconds(props.soakSeconds + 300),
      }),
      // Creation waits for signals sent only after the soak passed.
      signals: Signals.waitForMinCapacity({ timeout: Duration.seconds(props.soakSeconds + 900) }),
      updatePolicy: this.releaseGateAlarm
        ? UpdatePolicy.instanceRefresh({
            strategy: InstanceRefreshStrategy.ROLLING,
            // Launch before terminate: the floor stays in service, one extra node at a time.
            minHealthyPercentage: 100,
            maxHealthyPercentage: 110,
            skipMatching: true,
            alarms: [Alarm.fromAlarmName(this, 'ReleaseGateByName', gateAlarmName)],
          })
        : UpdatePolicy.rollingUpdate({ maxBatchSize: 1, minInstancesInService: props.floor }),
      defaultInstanceWarmup: props.defaultInstanceWarmup,
    });
    const cfnGroup = this.group.node.defaultChild as CfnAutoScalingGroup;
    if (this.releaseGateAlarm) {
      cfnGroup.addResourceDependency(
        this.releaseGateAlarm.node.defaultChild as CfnResource,
        'the instance refresh fails on this alarm, so it must exist first',
      );
      Annotations.of(this.group).acknowledgeWarning(
        '@aws-cdk/aws-autoscaling:signalsNotUsedByInstanceRefresh',
        'Signals gate the creation only; during a refresh the launch hook (completed after the soak) is the readiness check.',
      );
      this.launchHookName = LAUNCH_HOOK_NAME;
      // On the group itself, so it holds the instances launched at creation too. Heartbeat: install
      // (about 3 minutes) plus the soak; without an answer the instance is abandoned, never served.
      cfnGroup.lifecycleHookSpecificationList = [
        {
          lifecycleHookName: LAUNCH_HOOK_NAME,
          lifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
          heartbeatTimeout: props.soakSeconds + 600,
          defaultResult: 'ABANDON',
        },
      ];
      this.warmPool = this.group.addWarmPool({
        minSize: warmPoolSize,
        // Without it the pool is max - desired (9 instances at the defaults), not the size asked for.
        maxGroupPreparedCapacity: props.floor + warmPoolSize,
        poolState: PoolState.STOPPED,
        reuseOnScaleIn: false,
      });
    }

    serviceUserData(userData, {
      bundle: props.bundle,
      service: props.service,
      command: props.command,
      environment: props.environment,
      instanceEnvironment: props.instanceEnvironment,
      secretFiles: props.secretFiles,
      publicIpv4: props.publicIpv4,
      sysctls: props.sysctls,
      readinessUrl: props.readinessUrl,
      soakSeconds: props.soakSeconds,
      stopTimeoutSeconds: props.stopTimeoutSeconds,
      gate: props.gate,
      group: cfnGroup,
      launchHookName: this.launchHookName,
    });
  }
}
