import { App, Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { Observability } from '../../lib/constructs/observability';
import { TierNetwork } from '../../lib/constructs/tier-network';
import { resourcesOf, type SynthesizedTier, synthTier } from './tier';

let tier: SynthesizedTier;
let template: Template;
beforeAll(() => {
  tier = synthTier({ alarmEmail: 'ops@example.com', fleetRegions: ['us-east-1', 'eu-west-1'] });
  template = tier.homeTemplate;
});

/** An alarm's properties, with a labelled single metric (rendered as `Metrics: [...]`) flattened. */
function alarm(t: Template, name: string): Record<string, unknown> {
  const found = Object.entries(resourcesOf(t, 'AWS::CloudWatch::Alarm')).find(([id]) => id.includes(name));
  if (!found) throw new Error(`no alarm ${name}`);
  const properties = found[1].Properties;
  const queries = properties.Metrics as
    | { MetricStat?: { Metric: Record<string, unknown>; Stat: string } }[]
    | undefined;
  if (queries?.length === 1 && queries[0].MetricStat) {
    const { Metric, Stat } = queries[0].MetricStat;
    return { ...properties, MetricName: Metric.MetricName, Namespace: Metric.Namespace, Statistic: Stat };
  }
  return properties;
}

test('every alarm notifies the SNS topic, on alarm and on recovery', () => {
  const alarms = Object.values(resourcesOf(template, 'AWS::CloudWatch::Alarm')).map((r) => r.Properties);
  expect(alarms.length).toBe(6);
  for (const properties of alarms) {
    expect(properties.AlarmActions).toEqual([{ Ref: expect.stringMatching(/^ObservabilityAlarmTopic/) }]);
    expect(properties.OKActions).toEqual(properties.AlarmActions);
    expect(String(properties.AlarmDescription)).toMatch(/Runbook: docs\/deploy\.md#/);
  }
  template.hasResourceProperties('AWS::SNS::Subscription', {
    Protocol: 'email',
    Endpoint: 'ops@example.com',
  });
});

test('healthy nodes below the floor: NLB healthy hosts under 3, missing data counts as breaching', () => {
  expect(alarm(template, 'HealthyNodesBelowFloor')).toMatchObject({
    MetricName: 'HealthyHostCount',
    Namespace: 'AWS/NetworkELB',
    Statistic: 'Minimum',
    Threshold: 3,
    ComparisonOperator: 'LessThanThreshold',
    EvaluationPeriods: 3,
    TreatMissingData: 'breaching',
  });
});

test('node CPU, connections per node, login shed rate and auth 5xx alarms', () => {
  expect(alarm(template, 'NodeCpuHigh')).toMatchObject({
    Namespace: 'AWS/EC2',
    MetricName: 'CPUUtilization',
    Threshold: 80,
    ComparisonOperator: 'GreaterThanThreshold',
  });
  expect(alarm(template, 'ConnectionsPerNodeHigh')).toMatchObject({
    Namespace: 'Supernode',
    MetricName: 'ConnectedClients',
    Statistic: 'Maximum',
    Threshold: 75000,
  });
  const shed = alarm(template, 'LoginShedRateHigh');
  expect(shed).toMatchObject({ Threshold: 0.5, ComparisonOperator: 'GreaterThanThreshold' });
  const queries = shed.Metrics as {
    Id: string;
    Expression?: string;
    MetricStat?: { Metric: { MetricName: string } };
  }[];
  expect(queries.find((q) => q.Expression)?.Expression).toBe(
    'IF(admitted + shed > 0, shed / (admitted + shed), 0)',
  );
  expect(queries.flatMap((q) => (q.MetricStat ? [q.MetricStat.Metric.MetricName] : [])).sort()).toEqual([
    'LoginsAdmitted',
    'LoginsShed',
  ]);
  expect(alarm(template, 'Auth5xx')).toMatchObject({
    Namespace: 'AWS/ApplicationELB',
    MetricName: 'HTTPCode_ELB_5XX_Count',
    Threshold: 5,
  });
});

test('the dashboard shows every widget the operator needs, remote regions included', () => {
  const body = JSON.stringify(
    Object.values(resourcesOf(template, 'AWS::CloudWatch::Dashboard'))[0].Properties.DashboardBody,
  );
  for (const title of [
    'Healthy nodes per region',
    'Connected clients',
    'Sessions refused by reason',
    'Relay rate',
    'Logins admitted and shed',
    'Auth latency',
    'Auth 4xx / 5xx',
    'Alarms',
  ]) {
    expect(body).toContain(title);
  }
  // The eu-west-1 fleet lives in another stack: the home dashboard reaches it with a regional SEARCH.
  expect(body).toMatch(/SEARCH\(.*MetricName=\\\\\\"Ready\\\\\\".*\\"region\\":\\"eu-west-1\\"/);
});

test('a fleet stack in another region has its own alarms and topic, and no dashboard', () => {
  const [fleet] = tier.fleetTemplates;
  fleet.resourceCountIs('AWS::CloudWatch::Dashboard', 0);
  fleet.resourceCountIs('AWS::SNS::Topic', 1);
  expect(
    Object.keys(resourcesOf(fleet, 'AWS::CloudWatch::Alarm')).map((id) => id.replace(/[0-9A-F]{8}$/, '')),
  ).toEqual([
    'FleetGroupReleaseGate',
    'ObservabilityFleetHealthyNodesBelowFloor',
    'ObservabilityFleetNodeCpuHigh',
    'ObservabilityFleetConnectionsPerNodeHigh',
  ]);
  // Its nodes read the public keys from the home region's bucket, by name.
  fleet.hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: 's3:GetObject',
          Resource: Match.arrayWith([
            {
              'Fn::Join': [
                '',
                ['arn:aws:s3:::supernode-public-', { Ref: 'AWS::AccountId' }, '-us-east-1/jwks.json'],
              ],
            },
          ]),
        }),
      ]),
    },
  });
});

test('outputs tell the operator the endpoints and what to run next', () => {
  const outputs = template.toJSON().Outputs as Record<string, { Description: string }>;
  expect(Object.keys(outputs).sort()).toEqual(
    [
      'AlarmTopicArn',
      'AuthUrl',
      'DashboardUrl',
      'PublicKeys',
      'SessionUrl',
      'StunAddress',
      'TableName',
      'TryIt',
    ].sort(),
  );
  expect(JSON.stringify(template.toJSON().Outputs.TryIt)).toContain('supernode client signup');
});

describe('props validation', () => {
  const stack = () => new Stack(new App(), 'T');
  test.each([
    [{ shedRatio: 1.5 }, /shedRatio must be in \(0, 1\)/],
    [{ nodeCpuPercent: 0 }, /nodeCpuPercent must be in \(0, 100\]/],
  ])('Observability refuses %j', (props, message) => {
    expect(() => new Observability(stack(), 'O', { fleets: [], ...props })).toThrow(message);
  });
  test('TierNetwork refuses 0 NAT gateways', () => {
    expect(() => new TierNetwork(stack(), 'N', { natGateways: 0 })).toThrow(/natGateways must be 1, 2 or 3/);
  });
});
