import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { DEFAULTS } from '../../lib/config';
import { RuntimeBundle } from '../../lib/constructs/runtime';
import { SupernodeFleet } from '../../lib/constructs/supernode-fleet';
import { TierNetwork } from '../../lib/constructs/tier-network';
import {
  cdkJsonContext,
  resourcesOf,
  type SynthesizedTier,
  synthTier,
  WITHOUT_BUILTIN_VALIDATION,
} from './tier';

let tier: SynthesizedTier;
let template: Template;
beforeAll(() => {
  tier = synthTier();
  template = tier.homeTemplate;
});

function fleetUserData(t: Template): string {
  const templates = Object.values(resourcesOf(t, 'AWS::EC2::LaunchTemplate'));
  const rendered = templates.map((lt) => JSON.stringify(lt.Properties.LaunchTemplateData));
  const fleet = rendered.find((text) => text.includes('supernode.cjs node'));
  if (!fleet) throw new Error('no fleet launch template');
  return JSON.parse(fleet)
    .UserData['Fn::Base64']['Fn::Join'][1].map((part: unknown) => (typeof part === 'string' ? part : '<ref>'))
    .join('');
}

test('the group keeps the floor: min 3, never below it during a release (launch before terminate)', () => {
  template.hasResource('AWS::AutoScaling::AutoScalingGroup', {
    Properties: Match.objectLike({
      MinSize: '3',
      MaxSize: '12',
      HealthCheckType: 'ELB',
      HealthCheckGracePeriod: 600,
    }),
    UpdatePolicy: {
      AutoScalingInstanceRefresh: {
        Strategy: 'Rolling',
        Preferences: Match.objectLike({ MinHealthyPercentage: 100, MaxHealthyPercentage: 110 }),
      },
      AutoScalingScheduledAction: Match.anyValue(),
    },
    CreationPolicy: { ResourceSignal: { Count: 3, Timeout: 'PT20M' } },
  });
  // desiredCapacity would reset the fleet size on every deploy.
  for (const group of Object.values(resourcesOf(template, 'AWS::AutoScaling::AutoScalingGroup'))) {
    expect(group.Properties.DesiredCapacity).toBeUndefined();
  }
});

test('launch template: IMDSv2 only, encrypted volume, no SSH key, Graviton AL2023', () => {
  template.hasResourceProperties('AWS::EC2::LaunchTemplate', {
    LaunchTemplateData: Match.objectLike({
      InstanceType: 'c7g.large',
      MetadataOptions: { HttpTokens: 'required', InstanceMetadataTags: 'enabled' },
      BlockDeviceMappings: [
        { DeviceName: '/dev/xvda', Ebs: { Encrypted: true, VolumeSize: 16, VolumeType: 'gp3' } },
      ],
      ImageId: { Ref: Match.stringLikeRegexp('al2023amikernel.*arm64') },
    }),
  });
  for (const lt of Object.values(resourcesOf(template, 'AWS::EC2::LaunchTemplate'))) {
    expect(lt.Properties.LaunchTemplateData).not.toHaveProperty('KeyName');
  }
});

test('user data installs a systemd service, soaks it, and signals only after the soak', () => {
  const script = fleetUserData(template);
  expect(script).toContain('Restart=on-failure');
  expect(script).toContain('dnf install -y nodejs22 aws-cfn-bootstrap');
  expect(script).toContain('ExecStart=/usr/bin/node-22 /opt/supernode/supernode.cjs node');
  expect(script).toMatch(/LimitNOFILE=\d{6,}/);
  expect(script).toContain('SUPERNODE_NODE_ID=$INSTANCE_ID');
  expect(script).toContain('SUPERNODE_DISCOVERY=ec2');
  expect(script).toContain('SUPERNODE_AUTO_SCALING_GROUP=$GROUP_NAME');
  expect(script).toContain('SUPERNODE_LIFECYCLE_HOOK=drain');
  expect(script).toContain('SUPERNODE_JWKS_URL=s3://<ref>/jwks.json');
  // The base URL lookups hand out: the SDK adds /v1/session; plain ws must name port 443.
  expect(script).toContain('SUPERNODE_PUBLIC_URL=ws://<ref>:443\n');
  expect(script).toContain('SUPERNODE_MESH_SECRET_FILE=/etc/supernode/mesh-secret');
  expect(script).toContain(`trap 'fail "command failed on line $LINENO"' ERR`);
  const soak = script.indexOf('soak --url http://127.0.0.1:7001/readyz --soak-sec 300 && gate; then');
  expect(soak).toBeGreaterThan(script.indexOf('systemctl start supernode'));
  // Success is signalled in one place only: after the soak.
  expect(script.match(/signal 0/g)).toHaveLength(1);
  // The mesh secret is fetched at boot from Secrets Manager, never written into the template.
  expect(script).toMatch(/aws secretsmanager get-secret-value .*--secret-id <ref>/);
  expect(script).not.toMatch(/SUPERNODE_MESH_SECRET=/);
});

test('NLB: 443 to the session port, UDP 3478 to STUN, /readyz health checks, deregistration longer than the drain', () => {
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
    Type: 'network',
    Scheme: 'internet-facing',
  });
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'TCP' });
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 3478, Protocol: 'UDP' });
  const drainMs = Number(/SUPERNODE_DRAIN_TIMEOUT_MS=(\d+)/.exec(fleetUserData(template))?.[1]);
  for (const [port, protocol] of [
    [7001, 'TCP'],
    [3478, 'UDP'],
  ] as const) {
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: port,
      Protocol: protocol,
      HealthCheckProtocol: 'HTTP',
      HealthCheckPath: '/readyz',
      HealthCheckPort: '7001',
    });
  }
  const groups = Object.values(resourcesOf(template, 'AWS::ElasticLoadBalancingV2::TargetGroup')).filter(
    (group) => group.Properties.Protocol !== 'HTTP',
  );
  expect(groups).toHaveLength(2);
  for (const group of groups) {
    const attributes = group.Properties.TargetGroupAttributes as { Key: string; Value: string }[];
    const delay = Number(attributes.find((a) => a.Key === 'deregistration_delay.timeout_seconds')?.Value);
    expect(delay * 1000).toBeGreaterThan(drainMs);
  }
});

test('security groups: the mesh port only from fleet members, sessions and STUN only from the NLB', () => {
  const ingress = Object.values(resourcesOf(template, 'AWS::EC2::SecurityGroupIngress')).map(
    (r) => r.Properties,
  );
  const mesh = ingress.filter((rule) => rule.FromPort === 7101);
  expect(mesh).toHaveLength(1);
  expect(mesh[0].SourceSecurityGroupId).toEqual(mesh[0].GroupId);
  const nodeGroup = mesh[0].GroupId;
  const toNodes = ingress.filter((rule) => JSON.stringify(rule.GroupId) === JSON.stringify(nodeGroup));
  expect(toNodes.map((rule) => `${rule.IpProtocol}/${rule.FromPort}`).sort()).toEqual([
    'tcp/7001',
    'tcp/7101',
    'udp/3478',
  ]);
  for (const rule of toNodes) expect(rule).not.toHaveProperty('CidrIp');
  // And the NLB may send to them (its group denies all egress otherwise; health checks would fail).
  const egress = Object.values(resourcesOf(template, 'AWS::EC2::SecurityGroupEgress')).map(
    (r) => r.Properties,
  );
  const fromNlb = egress.filter(
    (rule) => JSON.stringify(rule.DestinationSecurityGroupId) === JSON.stringify(nodeGroup),
  );
  expect(fromNlb.map((rule) => `${rule.IpProtocol}/${rule.FromPort}`).sort()).toEqual([
    'tcp/7001',
    'udp/3478',
  ]);
});

test('scaling: target tracking on connected clients per node and on CPU; a stopped warm pool', () => {
  template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
    PolicyType: 'TargetTrackingScaling',
    TargetTrackingConfiguration: {
      CustomizedMetricSpecification: Match.objectLike({
        MetricName: 'ConnectedClients',
        Namespace: 'Supernode',
        Statistic: 'Average',
      }),
      TargetValue: 50000,
    },
  });
  template.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
    TargetTrackingConfiguration: {
      PredefinedMetricSpecification: { PredefinedMetricType: 'ASGAverageCPUUtilization' },
      TargetValue: 60,
    },
  });
  template.hasResourceProperties('AWS::AutoScaling::WarmPool', { PoolState: 'Stopped', MinSize: 2 });
});

test('termination waits for the drain through a lifecycle hook the node completes on its own group only', () => {
  template.hasResourceProperties('AWS::AutoScaling::LifecycleHook', {
    LifecycleHookName: 'drain',
    LifecycleTransition: 'autoscaling:EC2_INSTANCE_TERMINATING',
    DefaultResult: 'CONTINUE',
    HeartbeatTimeout: 120,
  });
  template.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: [
        {
          Action: 'autoscaling:CompleteLifecycleAction',
          Effect: 'Allow',
          Resource: {
            'Fn::Join': [
              '',
              [
                Match.stringLikeRegexp(':autoscaling:'),
                { Ref: 'AWS::AccountId' },
                ':autoScalingGroup:*:autoScalingGroupName/',
                { Ref: Match.stringLikeRegexp('^FleetGroupASG') },
              ],
            ],
          },
        },
      ],
    },
  });
});

test('node IAM: DescribeInstances unscoped (no resource scoping exists), PutMetricData only in our namespace', () => {
  const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((policy) => JSON.stringify(policy.Properties.Roles).includes('FleetNodeRole'))
    .flatMap(
      (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
    );
  const wildcard = statements.filter((statement) => statement.Resource === '*');
  expect(wildcard.map((statement) => statement.Action).sort()).toEqual([
    'cloudwatch:PutMetricData',
    'ec2:DescribeInstances',
  ]);
  expect(wildcard.find((statement) => statement.Action === 'cloudwatch:PutMetricData')?.Condition).toEqual({
    StringEquals: { 'cloudwatch:namespace': 'Supernode' },
  });
  // Secrets: the mesh secret only; never the auth service's signing keys.
  const secretReads = statements.filter((statement) => String(statement.Action).includes('secretsmanager'));
  expect(secretReads).toHaveLength(1);
  expect(JSON.stringify(secretReads[0].Resource)).toMatch(/^\{"Ref":"FleetMeshSecret[0-9A-F]{8}"\}$/);
  expect(JSON.stringify(statements)).not.toContain('KeyRingSecret');
  expect(JSON.stringify(statements)).not.toMatch(/"s3:\*"|"s3:GetObject\*"|"s3:List/);
});

test('a certificate turns the session listener into TLS and the URL into wss', () => {
  const arn = 'arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';
  const withTls = synthTier({ certificateArns: { 'us-east-1': arn } });
  withTls.homeTemplate.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
    Port: 443,
    Protocol: 'TLS',
    Certificates: [{ CertificateArn: arn }],
  });
  expect(withTls.home.resolve(withTls.home.fleet?.sessionUrl)).toEqual({
    'Fn::Join': ['', ['wss://', { 'Fn::GetAtt': [expect.stringMatching(/^FleetLoadBalancer/), 'DNSName'] }]],
  });
});

/** SupernodeFleet alone in a stack, with only the props it requires plus `props`. */
function fleetAlone(props: Record<string, unknown> = {}): Stack {
  const app = new App({ context: cdkJsonContext, ...WITHOUT_BUILTIN_VALIDATION });
  const stack = new Stack(app, 'T', { env: { region: 'us-east-1' } });
  const { vpc } = new TierNetwork(stack, 'Net');
  new SupernodeFleet(stack, 'Fleet', {
    vpc,
    bundle: new RuntimeBundle(stack, 'Runtime'),
    publicKeys: { bucketName: 'b' },
    ...props,
  });
  return stack;
}

test('a fleet built without props is what an empty context builds: one source of defaults', () => {
  const alone = Template.fromStack(fleetAlone());
  alone.hasResourceProperties('AWS::AutoScaling::AutoScalingGroup', {
    MinSize: String(DEFAULTS.floor),
    MaxSize: String(DEFAULTS.ceiling),
  });
  alone.hasResourceProperties('AWS::AutoScaling::WarmPool', { MinSize: DEFAULTS.warmPoolSize });
  alone.hasResourceProperties('AWS::EC2::LaunchTemplate', {
    LaunchTemplateData: Match.objectLike({ InstanceType: DEFAULTS.instanceType }),
  });
  alone.hasResourceProperties('AWS::AutoScaling::ScalingPolicy', {
    TargetTrackingConfiguration: Match.objectLike({ TargetValue: DEFAULTS.clientsPerNode }),
  });
  expect(fleetUserData(alone)).toContain(`--soak-sec ${DEFAULTS.soakSeconds} `);
});

describe('props validation', () => {
  const fleetIn = (props: Record<string, unknown>) => fleetAlone(props);
  test.each([
    [{ floor: 2 }, /floor must be at least 3/],
    [{ floor: 5, ceiling: 5 }, /ceiling \(5\) must be greater than floor \(5\)/],
    [{ soakSeconds: 5 }, /soakSeconds must be 30\.\.1800/],
    [{ warmPoolSize: 99 }, /warmPoolSize must be 0\.\.ceiling - floor \(9\)/],
    [{ floor: 3.5 }, /floor must be an integer/],
  ])('%j is refused', (props, message) => {
    expect(() => fleetIn(props)).toThrow(message);
  });
});
