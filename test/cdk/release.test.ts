import { Match, type Template } from 'aws-cdk-lib/assertions';
import { type BootResult, bootScriptOf, fakeInstance, type Instance } from './boot-script';
import { resourcesOf, type SynthesizedTier, synthTier } from './tier';

// Issue 12, items 1-3: warm-pool instances are held by a launch hook until installed and never serve
// from the pool; the pool is the size asked for; a release rolls in-service and warm instances alike.

let tier: SynthesizedTier;
let template: Template;
beforeAll(() => {
  tier = synthTier({ fleetRegions: ['us-east-1', 'eu-west-1'] });
  template = tier.homeTemplate;
});

function fleetGroup(t: Template): { id: string; resource: Record<string, unknown> } {
  const groups = Object.entries(t.findResources('AWS::AutoScaling::AutoScalingGroup')).filter(([id]) =>
    id.startsWith('FleetGroup'),
  );
  expect(groups).toHaveLength(1);
  const [id, resource] = groups[0];
  return { id, resource };
}

/** Position of the first call matching `pattern`, failing when there is none. */
function indexOf(result: BootResult, pattern: RegExp): number {
  const index = result.calls.findIndex((call) => pattern.test(call));
  if (index < 0) throw new Error(`no call matches ${pattern}:\n${result.calls.join('\n')}\n${result.output}`);
  return index;
}

const COMPLETE = (result: string) =>
  new RegExp(
    `^aws autoscaling complete-lifecycle-action --region us-east-1 --auto-scaling-group-name fleet-group --lifecycle-hook-name launch --instance-id i-0123456789abcdef0 --lifecycle-action-result ${result}$`,
  );
const START = /^systemctl start supernode$/;
const SOAK = /^node \S+supernode\.cjs soak --url http:\/\/127\.0\.0\.1:7001\/readyz --soak-sec 300$/;
const GATE_METRIC = /^aws cloudwatch put-metric-data .*--metric-name ReleaseGateFailures /;

describe('item 1: the launch hook and the boot script on every boot', () => {
  let script: string;
  let instance: Instance;
  beforeAll(() => {
    script = bootScriptOf(template, 'node');
  });
  beforeEach(() => {
    instance = fakeInstance();
  });
  afterEach(() => instance.dispose());

  test('the group holds every new instance in a launch hook (on the group, so creation too) until the boot script answers', () => {
    const { resource } = fleetGroup(template);
    expect(resource).toMatchObject({
      Properties: {
        LifecycleHookSpecificationList: [
          {
            LifecycleHookName: 'launch',
            LifecycleTransition: 'autoscaling:EC2_INSTANCE_LAUNCHING',
            // Install (minutes) plus the 300 s soak; silence abandons the instance, it never serves.
            HeartbeatTimeout: 900,
            DefaultResult: 'ABANDON',
          },
        ],
      },
    });
  });

  test('warm-pool launch: installs everything, completes the hook with CONTINUE, starts nothing, signals nothing', () => {
    const boot = instance.boot(script, { lifecycleState: 'Warmed:Stopped' });
    expect(boot.status).toBe(0);
    expect(boot.calls).toContainEqual(expect.stringMatching(COMPLETE('CONTINUE')));
    expect(boot.callsOf('systemctl')).toEqual(['systemctl daemon-reload']);
    expect(boot.callsOf('node')).toEqual([]);
    expect(boot.callsOf('cfn-signal')).toEqual([]);
    expect(instance.file('/opt/supernode/supernode.cjs')).toBe('bundle\n');
    expect(instance.file('/etc/supernode/mesh-secret')).toBe('secret-value\n');
    expect(instance.file('/etc/supernode/supernode.env')).toContain('SUPERNODE_NODE_ID=i-0123456789abcdef0');
    const unit = instance.file('/etc/systemd/system/supernode.service');
    expect(unit).toContain('ExecStart=/usr/bin/node-22 /opt/supernode/supernode.cjs node');
    // No [Install]: systemd never starts it at boot on its own; only the boot script does, in service.
    expect(unit).not.toContain('[Install]');
    expect(boot.callsOf('systemctl')).not.toContainEqual(expect.stringMatching(/enable/));
  });

  test('warm instance woken into service: the per-boot copy starts the service, soaks, completes the hook', () => {
    instance.boot(script, { lifecycleState: 'Warmed:Stopped' });
    expect(instance.file('/var/lib/cloud/scripts/per-boot/supernode.sh')).toBeDefined();
    const wake = instance.reboot({ lifecycleState: 'InService' });
    expect(wake.status).toBe(0);
    const start = indexOf(wake, START);
    const soak = indexOf(wake, SOAK);
    const complete = indexOf(wake, COMPLETE('CONTINUE'));
    expect(start).toBeLessThan(soak);
    expect(soak).toBeLessThan(complete);
    // Installs again (idempotent): a secret rotated while the instance slept is picked up.
    expect(wake.calls).toContainEqual(expect.stringMatching(/^aws secretsmanager get-secret-value /));
  });

  test('a boot while still in the pool (Warmed:*) starts nothing', () => {
    instance.boot(script, { lifecycleState: 'Warmed:Stopped' });
    const again = instance.reboot({ lifecycleState: 'Warmed:Stopped' });
    expect(again.status).toBe(0);
    expect(again.calls.filter((call) => START.test(call) || SOAK.test(call))).toEqual([]);
  });

  test('direct launch into service: start, soak, complete the hook, then cfn-signal success', () => {
    const boot = instance.boot(script, { lifecycleState: 'InService' });
    expect(boot.status).toBe(0);
    const order = [START, SOAK, COMPLETE('CONTINUE'), /^cfn-signal --exit-code 0 /].map((p) =>
      indexOf(boot, p),
    );
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(boot.callsOf('cfn-signal')).toEqual([
      'cfn-signal --exit-code 0 --stack SupernodeTier --resource FleetGroupASGF037160E --region us-east-1',
    ]);
    expect(boot.calls).not.toContainEqual(expect.stringMatching(GATE_METRIC));
  });

  test('a failed soak abandons the instance (never in service), counts a release-gate failure, signals failure', () => {
    const boot = instance.boot(script, { lifecycleState: 'InService', soakExit: 1 });
    expect(boot.status).toBe(1);
    expect(boot.calls).toContainEqual(expect.stringMatching(COMPLETE('ABANDON')));
    expect(boot.calls).not.toContainEqual(expect.stringMatching(COMPLETE('CONTINUE')));
    expect(boot.calls).toContainEqual(expect.stringMatching(GATE_METRIC));
    expect(boot.callsOf('cfn-signal')).toEqual([expect.stringMatching(/^cfn-signal --exit-code 1 /)]);
  });

  test('a failed install in the warm pool abandons it too: no half-installed instance is kept', () => {
    const boot = instance.boot(script, { lifecycleState: 'Warmed:Stopped', failingCommand: 'dnf' });
    expect(boot.status).toBe(1);
    expect(boot.calls).toContainEqual(expect.stringMatching(COMPLETE('ABANDON')));
    expect(boot.calls).toContainEqual(expect.stringMatching(GATE_METRIC));
    expect(boot.calls.filter((call) => START.test(call) || COMPLETE('CONTINUE').test(call))).toEqual([]);
  });

  test('completing the hook is allowed on the fleet group only', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: [
          Match.objectLike({
            Action: 'autoscaling:CompleteLifecycleAction',
            Resource: { 'Fn::Join': ['', Match.arrayWith([{ Ref: fleetGroup(template).id }])] },
          }),
        ],
      },
      Roles: [{ Ref: Match.stringLikeRegexp('^FleetNodeRole') }],
    });
  });
});

describe('item 2: the warm pool is the size asked for', () => {
  test('warmPoolSize from context: MinSize and MaxGroupPreparedCapacity = floor + size, so never max - desired', () => {
    template.hasResourceProperties('AWS::AutoScaling::WarmPool', {
      AutoScalingGroupName: { Ref: fleetGroup(template).id },
      MinSize: 2,
      MaxGroupPreparedCapacity: 5,
      PoolState: 'Stopped',
    });
    const one = synthTier({ warmPoolSize: 1, floor: 4 }).homeTemplate;
    one.hasResourceProperties('AWS::AutoScaling::WarmPool', { MinSize: 1, MaxGroupPreparedCapacity: 5 });
  });

  test('the first deploy of the defaults fits a new account of 16 vCPUs (docs/deploy.md says 14)', () => {
    const vcpus: Record<string, number> = { 'c7g.large': 2 };
    const groups = Object.values(resourcesOf(template, 'AWS::AutoScaling::AutoScalingGroup'));
    const pools = Object.values(resourcesOf(template, 'AWS::AutoScaling::WarmPool'));
    const types = Object.values(resourcesOf(template, 'AWS::EC2::LaunchTemplate')).map(
      (lt) => (lt.Properties.LaunchTemplateData as { InstanceType: string }).InstanceType,
    );
    expect(new Set(types)).toEqual(new Set(['c7g.large']));
    // The pool Auto Scaling keeps: MaxGroupPreparedCapacity - desired (the group's max when unset),
    // at least MinSize. Warm instances run while they install, so they count at first deploy.
    const fleet = fleetGroup(template).resource.Properties as Record<string, unknown>;
    const pool = (p: { Properties: Record<string, unknown> }) =>
      Math.max(
        Number(p.Properties.MinSize ?? 0),
        Number(p.Properties.MaxGroupPreparedCapacity ?? fleet.MaxSize) - Number(fleet.MinSize),
      );
    const instances =
      groups.reduce((sum, g) => sum + Number(g.Properties.MinSize), 0) +
      pools.reduce((sum, p) => sum + pool(p), 0);
    expect(instances * vcpus['c7g.large']).toBe(14);
    expect(require('node:fs').readFileSync(`${__dirname}/../../docs/deploy.md`, 'utf8')).toContain(
      '14 vCPUs',
    );
  });

  test('warmPoolSize 0: no warm pool, no launch hook, and the group is released by a rolling update', () => {
    const none = synthTier({ warmPoolSize: 0 }).homeTemplate;
    none.resourceCountIs('AWS::AutoScaling::WarmPool', 0);
    const { resource } = fleetGroup(none);
    expect(resource).not.toHaveProperty('Properties.LifecycleHookSpecificationList');
    expect(resource).toHaveProperty('UpdatePolicy.AutoScalingRollingUpdate.MinInstancesInService', 3);
  });
});

describe('item 3: one release path for in-service and warm instances', () => {
  test.each([
    ['home stack', () => template],
    ['fleet stack of another region', () => tier.fleetTemplates[0]],
  ])(
    '%s: a new launch template version is rolled out by an instance refresh that fails on the release gate',
    (_name, get) => {
      const t = get();
      const { id, resource } = fleetGroup(t);
      const stack = t === template ? 'SupernodeTier' : 'SupernodeTier-eu-west-1';
      const alarmName = `${stack}-supernode-release-gate`;
      // Every build (the bundle's hash is in the user data) is a new version of this launch template,
      // and the group follows the latest version: a release is a LaunchTemplate change of the group.
      const lts = resourcesOf(t, 'AWS::EC2::LaunchTemplate');
      const ref = (resource.Properties as { LaunchTemplate: Record<string, unknown> }).LaunchTemplate;
      const [ltId] = Object.keys(lts).filter((key) => JSON.stringify(ref).includes(key));
      expect(ref).toEqual({
        LaunchTemplateId: { Ref: ltId },
        Version: { 'Fn::GetAtt': [ltId, 'LatestVersionNumber'] },
      });
      expect(bootScriptOf(t, 'node')).toMatch(/\/[0-9a-f]{64}\.cjs' "\$OPT_DIR\/supernode\.cjs"/);
      // CloudFormation answers a LaunchTemplate change with an instance refresh: launch before
      // terminate (never below the floor), in-service instances first, then the warm pool.
      expect(resource.UpdatePolicy).toEqual({
        AutoScalingInstanceRefresh: {
          Strategy: 'Rolling',
          Preferences: {
            MinHealthyPercentage: 100,
            MaxHealthyPercentage: 110,
            SkipMatching: true,
            AlarmSpecification: { Alarms: [alarmName] },
          },
        },
        AutoScalingScheduledAction: { IgnoreUnmodifiedGroupSizeProperties: true },
      });
      expect(resource.CreationPolicy).toEqual({ ResourceSignal: { Count: 3, Timeout: 'PT20M' } });
      t.hasResourceProperties('AWS::AutoScaling::WarmPool', { AutoScalingGroupName: { Ref: id } });
      // The alarm the refresh watches counts exactly what a failing boot script reports.
      const [alarmId, alarm] = Object.entries(resourcesOf(t, 'AWS::CloudWatch::Alarm')).find(
        ([, a]) => a.Properties.AlarmName === alarmName,
      ) ?? ['', { Properties: {} }];
      expect(alarm.Properties).toMatchObject({
        Namespace: 'Supernode',
        MetricName: 'ReleaseGateFailures',
        Statistic: 'Sum',
        Period: 60,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        EvaluationPeriods: 1,
        TreatMissingData: 'notBreaching',
      });
      expect(resource.DependsOn).toContain(alarmId);
      const dimensions = (alarm.Properties.Dimensions as { Name: string; Value: string }[])
        .map((d) => `${d.Name}=${d.Value}`)
        .sort();
      const instance = fakeInstance();
      try {
        const boot = instance.boot(bootScriptOf(t, 'node'), { lifecycleState: 'InService', soakExit: 1 });
        const put = boot.calls.find((call) => GATE_METRIC.test(call)) ?? '';
        expect(put).toContain('--namespace Supernode');
        expect(/--dimensions (\S+)/.exec(put)?.[1].split(',').sort()).toEqual(dimensions);
      } finally {
        instance.dispose();
      }
    },
  );

  test('the auth group, with no warm pool, keeps its rolling update waiting on signals', () => {
    const [, auth] = Object.entries(resourcesOf(template, 'AWS::AutoScaling::AutoScalingGroup')).find(
      ([id]) => id.startsWith('AuthGroup'),
    ) ?? ['', {}];
    expect(auth).toHaveProperty('UpdatePolicy.AutoScalingRollingUpdate.WaitOnResourceSignals', true);
    expect(auth).not.toHaveProperty('UpdatePolicy.AutoScalingInstanceRefresh');
  });
});
