import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { buildTierApp } from '../../lib/app';
import { TierConfigError } from '../../lib/config';
import { RuntimeBundle } from '../../lib/constructs/runtime';
import { SupernodeFleet } from '../../lib/constructs/supernode-fleet';
import { TierNetwork } from '../../lib/constructs/tier-network';
import { type BootResult, bootScriptOf, fakeInstance, type Instance } from './boot-script';
import {
  cdkJsonContext,
  resourcesOf,
  type SynthesizedTier,
  synthTier,
  WITHOUT_BUILTIN_VALIDATION,
} from './tier';

// Issue 14, CDK part: TURN on the fleet. `plain` is cdk.json plus turn=true (one region, dev, no TLS);
// `hosted` is two regions in production with a hosted zone (certificates, so TLS on 5349 too).

const HOSTED = {
  turn: true,
  stage: 'production',
  fleetRegions: ['us-east-1', 'eu-west-1'],
  domainName: 'example.com',
  hostedZoneId: 'Z0123456789ABCDEFGHIJ',
};
const PUBLIC_IP = '203.0.113.7';

let plain: SynthesizedTier;
let hosted: SynthesizedTier;
let off: SynthesizedTier;
beforeAll(() => {
  plain = synthTier({ turn: 'true' });
  hosted = synthTier(HOSTED);
  off = synthTier();
});

type Properties = Record<string, unknown>;
const props = (t: Template, type: string): [string, Properties][] =>
  Object.entries(resourcesOf(t, type)).map(([id, r]) => [id, r.Properties]);
const json = (value: unknown) => JSON.stringify(value);

function fleetListeners(t: Template): string[] {
  return props(t, 'AWS::ElasticLoadBalancingV2::Listener')
    .filter(([, p]) => json(p.LoadBalancerArn).includes('FleetLoadBalancer'))
    .map(([, p]) => `${p.Protocol}/${p.Port}`)
    .sort();
}

/** The id of the target group a listener on `port` forwards to. */
function targetGroupOf(t: Template, port: number): Properties {
  const [, listener] =
    props(t, 'AWS::ElasticLoadBalancingV2::Listener').find(([, p]) => p.Port === port) ?? [];
  if (!listener) throw new Error(`no listener on ${port}`);
  const ref = (listener.DefaultActions as { TargetGroupArn: { Ref: string } }[])[0].TargetGroupArn.Ref;
  return resourcesOf(t, 'AWS::ElasticLoadBalancingV2::TargetGroup')[ref].Properties;
}

function nodeGroupId(t: Template): string {
  const [[id]] = props(t, 'AWS::EC2::SecurityGroup').filter(([groupId]) =>
    groupId.startsWith('FleetNodeSecurityGroup'),
  );
  return id;
}

describe('the NLB', () => {
  test('carries TURN on UDP and TCP 3478 (one TCP_UDP listener: an NLB cannot have both on one port otherwise), no 5349 without a certificate', () => {
    expect(fleetListeners(plain.homeTemplate)).toEqual(['TCP/443', 'TCP_UDP/3478']);
    expect(targetGroupOf(plain.homeTemplate, 3478)).toMatchObject({ Protocol: 'TCP_UDP', Port: 3478 });
  });

  test('with a certificate, TLS on 5349 ends at the NLB and goes on as TCP to the node port 3478', () => {
    for (const t of [hosted.homeTemplate, hosted.fleetTemplates[0]]) {
      expect(fleetListeners(t)).toEqual(['TCP_UDP/3478', 'TLS/443', 'TLS/5349']);
      const fleetListener = (port: number) =>
        props(t, 'AWS::ElasticLoadBalancingV2::Listener')
          .filter(([, p]) => p.Port === port && json(p.LoadBalancerArn).includes('FleetLoadBalancer'))
          .map(([, p]) => p);
      const [tls] = fleetListener(5349);
      const [session] = fleetListener(443);
      // The session listener's certificate: the same name, so turns: verifies as wss: does.
      expect(tls.Certificates).toEqual(session.Certificates);
      expect(tls.SslPolicy).toBe(session.SslPolicy);
      expect(targetGroupOf(t, 5349)).toMatchObject({ Protocol: 'TCP', Port: 3478 });
    }
  });

  test('every TURN target group is health checked by HTTP /readyz on the session port (UDP cannot be)', () => {
    const groups = [targetGroupOf(plain.homeTemplate, 3478), targetGroupOf(hosted.homeTemplate, 5349)];
    for (const group of groups) {
      expect(group).toMatchObject({
        HealthCheckProtocol: 'HTTP',
        HealthCheckPath: '/readyz',
        HealthCheckPort: '7001',
        TargetType: 'instance',
      });
    }
  });
});

describe('security groups', () => {
  test('the nodes take the relay range (UDP) from anywhere, and nothing else from a CIDR', () => {
    const t = plain.homeTemplate;
    const node = resourcesOf(t, 'AWS::EC2::SecurityGroup')[nodeGroupId(t)].Properties;
    expect(node.SecurityGroupIngress).toEqual([
      expect.objectContaining({ CidrIp: '0.0.0.0/0', IpProtocol: 'udp', FromPort: 49152, ToPort: 65535 }),
    ]);
    const separate = props(t, 'AWS::EC2::SecurityGroupIngress').filter(
      ([, p]) => json(p.GroupId) === json({ 'Fn::GetAtt': [nodeGroupId(t), 'GroupId'] }),
    );
    for (const [, rule] of separate) expect(rule).not.toHaveProperty('CidrIp');
    // TURN's own port, both protocols, only through the NLB (its group; it keeps client addresses).
    const fromNlb = separate
      .filter(([, p]) => json(p.SourceSecurityGroupId).includes('FleetLoadBalancerSecurityGroup'))
      .map(([, p]) => `${p.IpProtocol}/${p.FromPort}`)
      .sort();
    expect(fromNlb).toEqual(['tcp/3478', 'tcp/7001', 'udp/3478']);
    const egress = props(t, 'AWS::EC2::SecurityGroupEgress')
      .filter(([, p]) => json(p.DestinationSecurityGroupId).includes(nodeGroupId(t)))
      .map(([, p]) => `${p.IpProtocol}/${p.FromPort}`)
      .sort();
    expect(egress).toEqual(['tcp/3478', 'tcp/7001', 'udp/3478']);
  });

  test('the NLB takes UDP and TCP 3478 from anywhere, and TCP 5349 when it has a certificate', () => {
    const nlbIngress = (t: Template) => {
      const [, nlbGroup] =
        props(t, 'AWS::EC2::SecurityGroup').find(([id]) => id.startsWith('FleetLoadBalancerSecurityGroup')) ??
        [];
      return ((nlbGroup?.SecurityGroupIngress ?? []) as Properties[])
        .map((rule) => `${rule.CidrIp} ${rule.IpProtocol}/${rule.FromPort}-${rule.ToPort}`)
        .sort();
    };
    expect(nlbIngress(plain.homeTemplate)).toEqual([
      '0.0.0.0/0 tcp/3478-3478',
      '0.0.0.0/0 tcp/443-443',
      '0.0.0.0/0 udp/3478-3478',
    ]);
    expect(nlbIngress(hosted.fleetTemplates[0])).toEqual([
      '0.0.0.0/0 tcp/3478-3478',
      '0.0.0.0/0 tcp/443-443',
      '0.0.0.0/0 tcp/5349-5349',
      '0.0.0.0/0 udp/3478-3478',
    ]);
  });
});

test('the nodes run in the public subnets with a public IPv4 address each; the auth service stays private', () => {
  const t = plain.homeTemplate;
  const groups = Object.fromEntries(props(t, 'AWS::AutoScaling::AutoScalingGroup'));
  const subnetsOf = (prefix: string) =>
    json(Object.entries(groups).find(([id]) => id.startsWith(prefix))?.[1].VPCZoneIdentifier);
  expect(subnetsOf('FleetGroup')).toMatch(/^\[\{"Ref":"NetworkVpcpublicSubnet1.*publicSubnet2[^"]*"\}\]$/);
  expect(subnetsOf('AuthGroup')).toMatch(/^\[\{"Ref":"NetworkVpcprivateSubnet1.*privateSubnet2[^"]*"\}\]$/);
  const templates = props(t, 'AWS::EC2::LaunchTemplate').map(([, p]) => p.LaunchTemplateData as Properties);
  const fleet = templates.find((data) => json(data).includes('supernode.cjs node'));
  const auth = templates.find((data) => json(data).includes('supernode.cjs auth'));
  // The security group moves onto the interface: EC2 refuses both places at once.
  expect(fleet?.NetworkInterfaces).toEqual([
    {
      AssociatePublicIpAddress: true,
      DeviceIndex: 0,
      Groups: [{ 'Fn::GetAtt': [nodeGroupId(t), 'GroupId'] }],
    },
  ]);
  expect(fleet).not.toHaveProperty('SecurityGroupIds');
  expect(auth).not.toHaveProperty('NetworkInterfaces');
});

describe('the boot script', () => {
  let instance: Instance;
  beforeEach(() => {
    instance = fakeInstance();
  });
  afterEach(() => instance.dispose());
  const givePublicIp = () => writeFileSync(join(instance.root, 'imds', 'public-ipv4'), PUBLIC_IP);
  const position = (result: BootResult, pattern: RegExp) => {
    const index = result.calls.findIndex((call) => pattern.test(call));
    if (index < 0)
      throw new Error(`no call matches ${pattern}:\n${result.calls.join('\n')}\n${result.output}`);
    return index;
  };

  test('reads the public IPv4 from IMDSv2 (token first) into the external address, and writes every TURN setting', () => {
    givePublicIp();
    const result = instance.boot(bootScriptOf(plain.homeTemplate, 'node'), { lifecycleState: 'InService' });
    expect(result.status).toBe(0);
    const token = position(
      result,
      /^curl -sf -X PUT -H X-aws-ec2-metadata-token-ttl-seconds: \d+ http:\/\/169\.254\.169\.254\/latest\/api\/token$/,
    );
    const read = position(
      result,
      /^curl -sf -H X-aws-ec2-metadata-token: token http:\/\/169\.254\.169\.254\/latest\/meta-data\/public-ipv4$/,
    );
    expect(read).toBeGreaterThan(token);
    const env = instance.file('/etc/supernode/supernode.env') ?? '';
    expect(env).toContain(`SUPERNODE_TURN_EXTERNAL_ADDRESS=${PUBLIC_IP}\n`);
    for (const line of [
      'SUPERNODE_TURN=true',
      'SUPERNODE_TURN_SECRET_FILE=/etc/supernode/turn-secret',
      'SUPERNODE_TURN_REALM=supernode',
      'SUPERNODE_TURN_MIN_PORT=49152',
      'SUPERNODE_TURN_MAX_PORT=65535',
      // TURN answers Binding on the STUN port; the node keeps serving it there.
      'SUPERNODE_STUN_PORT=3478',
    ]) {
      expect(env).toContain(`${line}\n`);
    }
    // TLS ends at the NLB: the node gets no certificate.
    expect(env).not.toMatch(/SUPERNODE_TURN_TLS/);
    expect(instance.file('/etc/supernode/turn-secret')).toBe('secret-value\n');
    // The kernel's own outbound ports stay below the relay range.
    expect(result.callsOf('sysctl')).toEqual([
      'sysctl -w net.ipv4.ip_local_port_range=32768 49151',
      'sysctl -w net.core.rmem_max=4194304',
      'sysctl -w net.core.wmem_max=4194304',
    ]);
    expect(position(result, /^systemctl start supernode-secrets\.timer$/)).toBeGreaterThan(
      position(result, /^systemctl start supernode$/),
    );
    expect(instance.file('/etc/systemd/system/supernode-secrets.timer')).toMatch(/OnUnitActiveSec=5min/);
    expect(instance.file('/etc/systemd/system/supernode-secrets.service')).toContain(
      'ExecStart=/opt/supernode/refresh-secrets.sh',
    );
  });

  test('without a public IPv4 address the boot fails, saying so, and the instance never serves', () => {
    const result = instance.boot(bootScriptOf(plain.homeTemplate, 'node'), { lifecycleState: 'InService' });
    expect(result.status).toBe(1);
    expect(result.output).toContain('boot failed: no public IPv4 address in instance metadata');
    expect(result.callsOf('cfn-signal')).toEqual([expect.stringMatching(/^cfn-signal --exit-code 1 /)]);
    expect(result.calls).toContainEqual(expect.stringMatching(/--lifecycle-action-result ABANDON$/));
    expect(result.callsOf('systemctl').filter((call) => call.startsWith('systemctl start'))).toEqual([]);
  });

  test('a warm instance is installed with the secret but starts neither the service nor the timer', () => {
    givePublicIp();
    const result = instance.boot(bootScriptOf(plain.homeTemplate, 'node'), {
      lifecycleState: 'Warmed:Stopped',
    });
    expect(result.status).toBe(0);
    expect(instance.file('/etc/supernode/turn-secret')).toBe('secret-value\n');
    expect(result.callsOf('systemctl').filter((call) => call.startsWith('systemctl start'))).toEqual([]);
  });

  test('the refresh (what the timer runs) replaces the secret file whole, and a failed fetch keeps the last good one', () => {
    givePublicIp();
    expect(
      instance.boot(bootScriptOf(plain.homeTemplate, 'node'), { lifecycleState: 'InService' }).status,
    ).toBe(0);
    const secretFile = join(instance.root, 'fs', 'etc', 'supernode', 'turn-secret');
    writeFileSync(secretFile, 'old-value\n');
    const refresh = (failingAws: string) =>
      spawnSync(join(instance.root, 'fs', 'opt', 'supernode', 'refresh-secrets.sh'), [], {
        env: {
          PATH: `${join(instance.root, 'bin')}:/usr/bin:/bin`,
          FAKE: instance.root,
          FAILING_AWS: failingAws,
        },
        encoding: 'utf8',
      });
    expect(refresh('secretsmanager:get-secret-value').status).not.toBe(0);
    expect(instance.file('/etc/supernode/turn-secret')).toBe('old-value\n');
    expect(existsSync(join(instance.root, 'fs', 'etc', 'supernode', '.turn-secret.new'))).toBe(false);
    const ok = refresh('');
    expect(ok.status).toBe(0);
    expect(instance.file('/etc/supernode/turn-secret')).toBe('secret-value\n');
  });

  test('the auth service fetches the same secret the same way and gets the URLs, the file and the TTL', () => {
    const result = instance.boot(bootScriptOf(hosted.homeTemplate, 'auth'), { lifecycleState: undefined });
    expect(result.status).toBe(0);
    expect(instance.file('/etc/supernode-auth/turn-secret')).toBe('secret-value\n');
    const env = instance.file('/etc/supernode-auth/supernode-auth.env') ?? '';
    const urls = (region: string) => [
      `turn:nodes.${region}.example.com:3478?transport=udp`,
      `turn:nodes.${region}.example.com:3478?transport=tcp`,
      `turns:nodes.${region}.example.com:5349?transport=tcp`,
    ];
    expect(env).toContain(`AUTH_TURN_URLS=${[...urls('us-east-1'), ...urls('eu-west-1')].join(',')}\n`);
    expect(env).toContain('AUTH_TURN_SECRET_FILE=/etc/supernode-auth/turn-secret\n');
    expect(env).toContain('AUTH_TURN_CREDENTIAL_TTL_SEC=86400\n');
    expect(result.calls).toContain('systemctl start supernode-auth-secrets.timer');
    // The auth service relays nothing: no public address, no kernel settings.
    expect(result.callsOf('curl').some((call) => call.endsWith('public-ipv4'))).toBe(false);
    expect(result.callsOf('sysctl')).toEqual([]);
  });
});

test('without a certificate or a name the URLs are the NLB DNS name, and no turns:', () => {
  const fleet = plain.home.fleet as SupernodeFleet;
  const dns = { 'Fn::GetAtt': [expect.stringMatching(/^FleetLoadBalancer/), 'DNSName'] };
  expect(plain.home.resolve(fleet.turnUrls)).toEqual([
    { 'Fn::Join': ['', ['turn:', dns, ':3478?transport=udp']] },
    { 'Fn::Join': ['', ['turn:', dns, ':3478?transport=tcp']] },
  ]);
  const outputs = plain.homeTemplate.toJSON().Outputs as Record<string, { Value: unknown }>;
  expect(json(outputs.TurnUrls.Value)).toContain('3478?transport=udp');
  expect(json(outputs.TurnUrls.Value)).not.toContain('turns:');
});

describe('the secret', () => {
  const secretStatements = (t: Template, roleId: string) =>
    props(t, 'AWS::IAM::Policy')
      .filter(([, p]) => json(p.Roles).includes(roleId))
      .flatMap(([, p]) => (p.PolicyDocument as { Statement: Properties[] }).Statement)
      .filter((statement) => json(statement.Action).includes('secretsmanager'));
  const turnSecretId = (t: Template) =>
    props(t, 'AWS::SecretsManager::Secret').find(([id]) => id.startsWith('TurnSecret'))?.[0];

  test('one secret in the home region, replicated to every other fleet region under a name fleets find it by', () => {
    const secrets = props(hosted.homeTemplate, 'AWS::SecretsManager::Secret').filter(([id]) =>
      id.startsWith('TurnSecret'),
    );
    expect(secrets).toHaveLength(1);
    expect(secrets[0][1]).toMatchObject({
      Name: 'supernode-turn-secret-us-east-1',
      ReplicaRegions: [{ Region: 'eu-west-1' }],
    });
    expect(props(hosted.fleetTemplates[0], 'AWS::SecretsManager::Secret').map(([id]) => id)).toEqual([
      expect.stringMatching(/^FleetMeshSecret/),
    ]);
    expect(
      props(plain.homeTemplate, 'AWS::SecretsManager::Secret').find(([id]) =>
        id.startsWith('TurnSecret'),
      )?.[1],
    ).not.toHaveProperty('ReplicaRegions');
  });

  test('nodes and the auth service may only GetSecretValue on it: the primary at home, the replica elsewhere', () => {
    const home = hosted.homeTemplate;
    const id = turnSecretId(home);
    const turnOnly = (statements: Properties[]) =>
      statements.filter((s) => /TurnSecret|turn-secret/.test(json(s)));
    for (const role of ['FleetNodeRole', 'AuthRole']) {
      expect(turnOnly(secretStatements(home, role))).toEqual([
        { Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: { Ref: id } },
      ]);
    }
    expect(turnOnly(secretStatements(hosted.fleetTemplates[0], 'FleetNodeRole'))).toEqual([
      {
        Action: 'secretsmanager:GetSecretValue',
        Effect: 'Allow',
        Resource: {
          'Fn::Join': [
            '',
            [
              'arn:aws:secretsmanager:eu-west-1:',
              { Ref: 'AWS::AccountId' },
              ':secret:supernode-turn-secret-us-east-1-??????',
            ],
          ],
        },
      },
    ]);
    // The remote boot script fetches the replica by name in its own region.
    expect(bootScriptOf(hosted.fleetTemplates[0], 'node')).toContain(
      'fetch turn-secret "$REGION" supernode-turn-secret-us-east-1\n',
    );
  });
});

describe('observability', () => {
  test('a TURN fleet alarms on its busiest node near the allocation limit and graphs allocations and relayed bytes', () => {
    const t = plain.homeTemplate;
    const alarms = props(t, 'AWS::CloudWatch::Alarm').filter(([, p]) =>
      json(p).includes('"TurnAllocations"'),
    );
    expect(alarms).toHaveLength(1);
    expect(alarms[0][1]).toMatchObject({
      Metrics: [
        {
          MetricStat: {
            Metric: {
              Namespace: 'Supernode',
              MetricName: 'TurnAllocations',
              Dimensions: [{ Name: 'AutoScalingGroupName' }],
            },
            Stat: 'Maximum',
          },
        },
      ],
      Threshold: 8000,
      ComparisonOperator: 'GreaterThanThreshold',
      EvaluationPeriods: 5,
    });
    expect(json(alarms[0][1].AlarmDescription)).toContain('docs/deploy.md#turn-allocations-high');
    const [[, dashboard]] = props(t, 'AWS::CloudWatch::Dashboard');
    const body = json(dashboard.DashboardBody);
    expect(body).toContain('TURN allocations');
    expect(body).toMatch(/Supernode\\",\\"TurnRelayedBytes/);
  });

  test('the home dashboard finds the TURN metrics of the other regions too', () => {
    const [[, dashboard]] = props(hosted.homeTemplate, 'AWS::CloudWatch::Dashboard');
    // The body as CloudWatch gets it, references left out.
    const body = (dashboard.DashboardBody as { 'Fn::Join': [string, unknown[]] })['Fn::Join'][1]
      .filter((part) => typeof part === 'string')
      .join('');
    for (const metric of ['TurnAllocations', 'TurnRelayedBytes']) {
      expect(body).toContain(
        `"expression":"SEARCH('{Supernode,AutoScalingGroupName} MetricName=\\"${metric}\\"', 'Sum', 60)","region":"eu-west-1"`,
      );
    }
  });
});

test('without `turn` (the default) nothing of it is there: private subnets, UDP 3478 only, no secret, no settings', () => {
  const t = off.homeTemplate;
  expect(fleetListeners(t)).toEqual(['TCP/443', 'UDP/3478']);
  expect(json(t.toJSON())).not.toMatch(/TCP_UDP|TurnSecret|TurnAllocations|49152|AssociatePublicIpAddress/);
  const script = bootScriptOf(t, 'node');
  expect(script).not.toMatch(/TURN|public-ipv4|sysctl|refresh-secrets/);
  expect(bootScriptOf(t, 'auth')).not.toMatch(/TURN/);
  expect(off.config.turn).toBe(false);
});

describe('context', () => {
  test.each([
    [{ turn: 'yes' }, 'context "turn" must be true or false (got "yes")'],
    [
      { turn: true, fleetRegions: ['us-east-1', 'eu-west-1'] },
      'context "turn" with fleets outside the home region (eu-west-1) needs "domainName"',
    ],
    [
      {
        turn: true,
        domainName: 'example.com',
        hostedZoneId: 'Z0123456789ABCDEFGHIJ',
        fleetRegions: ['us-east-1', 'us-east-2', 'us-west-1', 'us-west-2', 'eu-west-1', 'eu-west-2'],
      },
      'context "turn": 6 fleet regions make 18 TURN URLs, more than the 16 the auth service hands out',
    ],
  ])('%j is refused before synthesis', (overrides, message) => {
    const build = () =>
      buildTierApp({ context: { ...cdkJsonContext, ...overrides }, ...WITHOUT_BUILTIN_VALIDATION });
    expect(build).toThrow(TierConfigError);
    expect(build).toThrow(message);
  });
});

describe('SupernodeFleet turn props', () => {
  const fleetWith = (turn: Record<string, unknown>) => {
    const app = new App({ context: cdkJsonContext, ...WITHOUT_BUILTIN_VALIDATION });
    const stack = new Stack(app, 'T', { env: { region: 'us-east-1' } });
    new SupernodeFleet(stack, 'Fleet', {
      vpc: new TierNetwork(stack, 'Net').vpc,
      bundle: new RuntimeBundle(stack, 'Runtime'),
      publicKeys: { bucketName: 'b' },
      turn: {
        secret: { secretId: 's', resourceArn: 'arn:aws:secretsmanager:us-east-1:1:secret:s-??????' },
        ...turn,
      },
    });
  };
  test.each([
    [{ minPort: 7000, maxPort: 8000 }, /the relay range 7000-8000 holds the session port 7001/],
    [{ minPort: 50000, maxPort: 50010 }, /at least 100 ports/],
    [{ minPort: 33000, maxPort: 63000 }, /must leave 4096 ports from 32768 up/],
    [{ minPort: 100, maxPort: 65535 }, /integers in 1024\.\.65535/],
    [{ realm: 'two words' }, /realm must be 1-128 characters of A-Z a-z 0-9/],
  ])('%j is refused', (turn, message) => {
    expect(() => fleetWith(turn)).toThrow(message);
  });
});

test('the home stack with TURN has no dependency cycle (the auth service names the NLB the fleet waits behind)', () => {
  const resources = plain.homeTemplate.toJSON().Resources as Record<string, Record<string, unknown>>;
  const edges = (id: string): string[] => {
    const text = json({ ...resources[id], DependsOn: undefined });
    const refs = [...text.matchAll(/"(?:Ref|Fn::GetAtt)":(?:"|\[")([A-Za-z0-9]+)/g)].map((m) => m[1]);
    const dependsOn = resources[id].DependsOn;
    return [
      ...refs,
      ...(Array.isArray(dependsOn) ? dependsOn : dependsOn ? [dependsOn as string] : []),
    ].filter((target) => target in resources);
  };
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (id: string, path: string[]): void => {
    if (state.get(id) === 'done') return;
    if (state.get(id) === 'visiting') throw new Error(`cycle: ${[...path, id].join(' -> ')}`);
    state.set(id, 'visiting');
    for (const next of edges(id)) visit(next, [...path, id]);
    state.set(id, 'done');
  };
  expect(() => {
    for (const id of Object.keys(resources)) visit(id, []);
  }).not.toThrow();
});

// With the plugin attached, synth throws "Validation failed" on any finding not acknowledged.
test.each([
  ['cdk.json with turn', { turn: true }],
  ['two regions, production, hosted zone', HOSTED],
  ['region-agnostic', { turn: true, homeRegion: '', fleetRegions: '' }],
  ['no warm pool, interface endpoints', { turn: true, warmPoolSize: 0, interfaceEndpoints: true }],
])('cdk-nag AwsSolutions reports nothing unacknowledged with TURN: %s', (_name, overrides) => {
  const { app } = buildTierApp({ context: { ...cdkJsonContext, ...overrides }, nag: true });
  expect(() => app.synth()).not.toThrow();
});
