import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { AuthService } from '../../lib/constructs/auth-service';
import { RuntimeBundle } from '../../lib/constructs/runtime';
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

function authUserData(t: Template): string {
  const lt = Object.values(resourcesOf(t, 'AWS::EC2::LaunchTemplate')).find((r) =>
    JSON.stringify(r.Properties).includes('supernode.cjs auth'),
  );
  if (!lt) throw new Error('no auth launch template');
  const data = lt.Properties.LaunchTemplateData as {
    UserData: { 'Fn::Base64': { 'Fn::Join': [string, unknown[]] } };
  };
  return data.UserData['Fn::Base64']['Fn::Join'][1]
    .map((part) => (typeof part === 'string' ? part : '<ref>'))
    .join('');
}

test('table: on demand, point-in-time recovery, deletion protection, TTL, kept on stack deletion', () => {
  template.hasResource('AWS::DynamoDB::GlobalTable', {
    Properties: Match.objectLike({
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'ttl', Enabled: true },
      Replicas: [
        Match.objectLike({
          DeletionProtectionEnabled: true,
          PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        }),
      ],
    }),
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
});

test('WAF: a per-IP rate rule answering 429 with Retry-After, then AWS managed rule groups, on the ALB', () => {
  template.hasResourceProperties('AWS::WAFv2::WebACL', {
    Scope: 'REGIONAL',
    DefaultAction: { Allow: {} },
    Rules: Match.arrayWith([
      Match.objectLike({
        Name: 'per-ip-rate',
        Priority: 0,
        Statement: { RateBasedStatement: { AggregateKeyType: 'IP', Limit: 600, EvaluationWindowSec: 300 } },
        Action: {
          Block: {
            CustomResponse: {
              ResponseCode: 429,
              CustomResponseBodyKey: 'rate-limited',
              ResponseHeaders: [{ Name: 'Retry-After', Value: '60' }],
            },
          },
        },
      }),
    ]),
  });
  const acl = Object.values(resourcesOf(template, 'AWS::WAFv2::WebACL'))[0].Properties;
  const managed = (
    acl.Rules as { Statement: { ManagedRuleGroupStatement?: { Name: string; VendorName: string } } }[]
  )
    .map((rule) => rule.Statement.ManagedRuleGroupStatement)
    .filter((group) => group !== undefined);
  expect(managed.map((group) => `${group.VendorName}/${group.Name}`)).toEqual([
    'AWS/AWSManagedRulesAmazonIpReputationList',
    'AWS/AWSManagedRulesCommonRuleSet',
    'AWS/AWSManagedRulesKnownBadInputsRuleSet',
  ]);
  template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', {
    ResourceArn: { Ref: Match.stringLikeRegexp('^AuthLoadBalancer') },
    WebACLArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^AuthWebAcl'), 'Arn'] },
  });
});

test('auth group: floor 2, ELB health on /readyz, rolling update with signals after a soak', () => {
  template.hasResource('AWS::AutoScaling::AutoScalingGroup', {
    Properties: Match.objectLike({ MinSize: '2', MaxSize: '6', HealthCheckType: 'ELB' }),
    UpdatePolicy: Match.objectLike({
      AutoScalingRollingUpdate: Match.objectLike({ MinInstancesInService: 2, WaitOnResourceSignals: true }),
    }),
    CreationPolicy: { ResourceSignal: Match.objectLike({ Count: 2 }) },
  });
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
    Port: 8080,
    Protocol: 'HTTP',
    HealthCheckPath: '/readyz',
  });
  const script = authUserData(template);
  expect(script).toContain('soak --url http://127.0.0.1:8080/readyz');
  expect(script).toContain('AUTH_AWS_DYNAMODB=true');
  expect(script).toContain('AUTH_TRUST_PROXY=true');
  expect(script).toContain('AUTH_KEY_RING_SECRET=<ref>');
  expect(script).toContain('AUTH_PUBLISH_BUCKET=<ref>');
  expect(script).toContain('AUTH_AUTO_SCALING_GROUP=$GROUP_NAME');
});

test('signing keys live in Secrets Manager: generated there, never in the template or user data', () => {
  const secrets = Object.values(resourcesOf(template, 'AWS::SecretsManager::Secret')).map(
    (r) => r.Properties,
  );
  expect(secrets).toHaveLength(2); // the key ring and the mesh secret
  for (const secret of secrets) {
    expect(secret).not.toHaveProperty('SecretString');
    expect(secret).toHaveProperty('GenerateSecretString');
  }
  expect(authUserData(template)).not.toMatch(/PRIVATE KEY|"d":/);
});

test('auth IAM: exactly its table, its secret, its two published objects, metrics in our namespace', () => {
  const statements = Object.values(resourcesOf(template, 'AWS::IAM::Policy'))
    .filter((policy) => JSON.stringify(policy.Properties.Roles).includes('AuthRole'))
    .flatMap(
      (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
    );
  const byAction = (prefix: string) => statements.filter((s) => JSON.stringify(s.Action).includes(prefix));
  expect(byAction('dynamodb:')).toEqual([
    expect.objectContaining({ Resource: { 'Fn::GetAtt': [expect.stringMatching(/^AuthTable/), 'Arn'] } }),
  ]);
  expect(JSON.stringify(byAction('dynamodb:')[0].Action)).not.toMatch(/\*|DeleteTable|CreateTable/);
  expect(byAction('secretsmanager:')).toEqual([
    expect.objectContaining({ Resource: { Ref: expect.stringMatching(/^AuthKeyRingSecret/) } }),
  ]);
  expect(byAction('s3:PutObject')).toHaveLength(1);
  expect(JSON.stringify(byAction('s3:PutObject')[0].Resource)).toMatch(/jwks\.json.*revocations\.json/);
  const wildcard = statements.filter((s) => s.Resource === '*');
  expect(wildcard).toEqual([
    expect.objectContaining({
      Action: 'cloudwatch:PutMetricData',
      Condition: { StringEquals: { 'cloudwatch:namespace': 'Supernode' } },
    }),
  ]);
});

test('without a certificate the ALB serves HTTP; with one, HTTPS and a redirect from 80', () => {
  template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
  const arn = 'arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';
  const withTls = synthTier({ certificateArns: { 'us-east-1': arn } }).homeTemplate;
  withTls.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
    Port: 443,
    Protocol: 'HTTPS',
    Certificates: [{ CertificateArn: arn }],
    SslPolicy: Match.stringLikeRegexp('TLS'),
  });
  withTls.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
    Port: 80,
    DefaultActions: [
      Match.objectLike({ Type: 'redirect', RedirectConfig: Match.objectLike({ Protocol: 'HTTPS' }) }),
    ],
  });
});

test('public keys are published to a private, TLS-only bucket the fleets read', () => {
  template.hasResourceProperties('AWS::S3::Bucket', {
    BucketName: { 'Fn::Join': ['', ['supernode-public-', { Ref: 'AWS::AccountId' }, '-us-east-1']] },
    PublicAccessBlockConfiguration: {
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    },
  });
});

/** AuthService alone, on state it did not create (imported by name, as another stack would). */
function authOnImportedState(props: Record<string, unknown> = {}): Stack {
  const app = new App({ context: cdkJsonContext, ...WITHOUT_BUILTIN_VALIDATION });
  const stack = new Stack(app, 'T', { env: { region: 'us-east-1' } });
  const { vpc } = new TierNetwork(stack, 'Net');
  new AuthService(stack, 'Auth', {
    vpc,
    bundle: new RuntimeBundle(stack, 'Runtime'),
    table: TableV2.fromTableName(stack, 'Table', 'accounts'),
    keyRingSecret: Secret.fromSecretNameV2(stack, 'KeyRing', 'auth/key-ring'),
    publicationBucket: Bucket.fromBucketName(stack, 'Publication', 'supernode-public-test'),
    ...props,
  });
  return stack;
}

test('compute only: on imported state it creates no table, secret or bucket and grants the same actions', () => {
  const imported = Template.fromStack(authOnImportedState());
  for (const type of ['AWS::DynamoDB::GlobalTable', 'AWS::SecretsManager::Secret', 'AWS::S3::Bucket'])
    imported.resourceCountIs(type, 0);
  const statements = Object.values(resourcesOf(imported, 'AWS::IAM::Policy')).flatMap(
    (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
  );
  const secret = statements.find((s) => JSON.stringify(s.Action).includes('secretsmanager:'));
  // A secret imported by name has a partial ARN: the grant must match the random suffix.
  expect(JSON.stringify(secret?.Resource)).toContain(':secret:auth/key-ring-??????');
  const table = statements.find((s) => JSON.stringify(s.Action).includes('dynamodb:'));
  expect(JSON.stringify(table?.Resource)).toContain(':table/accounts');
});

describe('props validation', () => {
  const authIn = (props: Record<string, unknown>) => authOnImportedState(props);
  test.each([
    [{ floor: 0 }, /floor must be at least 1/],
    [{ floor: 3, ceiling: 3 }, /ceiling \(3\) must be greater than floor \(3\)/],
    [{ requestsPerIpPer5Minutes: 5 }, /AuthWaf: requestsPerIpPer5Minutes must be 10\.\./],
    [{ wafRetryAfterSeconds: 0 }, /AuthWaf: retryAfterSeconds must be 1\.\.3600/],
  ])('%j is refused', (props, message) => {
    expect(() => authIn(props)).toThrow(message);
  });
});
