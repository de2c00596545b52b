import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AuthData, type AuthDataProps } from '../../lib/constructs/auth-data';
import { cdkJsonContext, synthTier, WITHOUT_BUILTIN_VALIDATION } from './tier';

// The logical IDs deployed stacks know the auth state by, written out rather than imported from
// lib/ so that changing them there fails here: a new ID replaces the resource (a new, empty table).
const DEPLOYED_AUTH_STATE = [
  ['AuthTable60C69E80', 'AWS::DynamoDB::GlobalTable'],
  ['AuthKeyRingSecretF4D43613', 'AWS::SecretsManager::Secret'],
  ['AuthPublicationBucketFAC615A6', 'AWS::S3::Bucket'],
  ['AuthPublicationBucketPolicy8343BE20', 'AWS::S3::BucketPolicy'],
] as const;

describe.each([
  ['cdk.json as shipped', {}],
  ['region-agnostic', { homeRegion: '', fleetRegions: '' }],
])('home stack (%s)', (_name, overrides) => {
  let resources: Record<string, { Type: string; DeletionPolicy?: string; UpdateReplacePolicy?: string }>;
  beforeAll(() => {
    resources = synthTier(overrides).homeTemplate.toJSON().Resources;
  });

  test.each(DEPLOYED_AUTH_STATE)('the auth state keeps logical ID %s (%s)', (logicalId, type) => {
    expect(resources[logicalId]?.Type).toBe(type);
  });

  test('no auth state under an ID derived from the new construct path (a pin that did not take)', () => {
    const stateTypes = new Set<string>(DEPLOYED_AUTH_STATE.map(([, type]) => type));
    const unpinned = Object.entries(resources).filter(
      ([id, resource]) => id.startsWith('AuthData') && stateTypes.has(resource.Type),
    );
    expect(unpinned).toEqual([]);
    // What AuthData adds besides its state is the bucket's emptier (stateless, new in issue 12).
    expect(
      Object.entries(resources)
        .filter(([id]) => id.startsWith('AuthData'))
        .map(([, resource]) => resource.Type),
    ).toEqual(['Custom::S3AutoDeleteObjects']);
  });

  test('removal policies match the data: table and key ring kept, the derived bucket deleted', () => {
    // Losing the key ring signs every user out: it stays, like the accounts.
    for (const id of ['AuthTable60C69E80', 'AuthKeyRingSecretF4D43613'])
      expect(resources[id]).toMatchObject({ DeletionPolicy: 'Retain', UpdateReplacePolicy: 'Retain' });
    expect(resources.AuthPublicationBucketFAC615A6).toMatchObject({
      DeletionPolicy: 'Delete',
      UpdateReplacePolicy: 'Delete',
    });
  });

  test('the versioned publication bucket is emptied (all versions) before it is deleted, after its writers', () => {
    const template = synthTier(overrides).homeTemplate;
    const emptiers = Object.entries(template.findResources('Custom::S3AutoDeleteObjects'));
    expect(emptiers.map(([, r]) => r.Properties.BucketName)).toEqual([
      { Ref: 'AuthPublicationBucketFAC615A6' },
    ]);
    const [emptierId] = emptiers[0];
    // The auth instances write jwks.json: their group goes first, so nothing lands after the emptying.
    const [auth] = Object.entries(template.findResources('AWS::AutoScaling::AutoScalingGroup')).filter(
      ([id]) => id.startsWith('AuthGroup'),
    );
    expect(auth[1].DependsOn).toContain(emptierId);
  });
});

test('docs/deploy.md teardown: no `aws s3 rm --recursive` for the versioned bucket (it leaves the versions)', () => {
  const doc = require('node:fs').readFileSync(`${__dirname}/../../docs/deploy.md`, 'utf8') as string;
  const teardown = doc.slice(
    doc.indexOf('## Teardown'),
    doc.indexOf('\n## ', doc.indexOf('## Teardown') + 1),
  );
  expect(teardown).not.toMatch(/s3 rm s3:\/\/supernode-public/);
  expect(teardown).toMatch(/version/i);
});

test('fleets read the derived bucket name only from a bucket of their own account', () => {
  const { fleetTemplates } = synthTier({ fleetRegions: ['us-east-1', 'eu-west-1'] });
  fleetTemplates[0].hasResourceProperties('AWS::IAM::Policy', {
    PolicyDocument: {
      Statement: Match.arrayWith([
        Match.objectLike({
          Action: 's3:GetObject',
          Resource: Match.arrayWith([Match.objectLike({ 'Fn::Join': Match.anyValue() })]),
          Condition: { StringEquals: { 's3:ResourceAccount': { Ref: 'AWS::AccountId' } } },
        }),
      ]),
    },
  });
});

function dataStack(...instances: [string, AuthDataProps][]): Template {
  const app = new App({ context: cdkJsonContext, ...WITHOUT_BUILTIN_VALIDATION });
  const stack = new Stack(app, 'State', { env: { region: 'eu-west-1' } });
  for (const [id, props] of instances) new AuthData(stack, id, props);
  return Template.fromStack(stack);
}

test('AuthData on its own: only the state, with the removal policies it is given', () => {
  const template = dataStack([
    'Accounts',
    {
      publicationBucketName: 'example-auth-keys',
      tableRemovalPolicy: RemovalPolicy.DESTROY,
      keyRingSecretRemovalPolicy: RemovalPolicy.RETAIN,
      publicationBucketRemovalPolicy: RemovalPolicy.RETAIN,
    },
  ]);
  template.hasResource('AWS::DynamoDB::GlobalTable', {
    DeletionPolicy: 'Delete',
    UpdateReplacePolicy: 'Delete',
  });
  template.hasResource('AWS::SecretsManager::Secret', {
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
  template.hasResource('AWS::S3::Bucket', {
    Properties: { BucketName: 'example-auth-keys' },
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
  for (const type of ['AWS::AutoScaling::AutoScalingGroup', 'AWS::IAM::Role', 'AWS::WAFv2::WebACL'])
    template.resourceCountIs(type, 0);
});

test('AuthData defaults: table and key ring retained, bucket destroyed after emptying itself', () => {
  const template = dataStack(['Accounts', { publicationBucketName: 'example-auth-keys' }]);
  template.hasResource('AWS::DynamoDB::GlobalTable', {
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
  template.hasResource('AWS::SecretsManager::Secret', {
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
  template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  template.resourceCountIs('Custom::S3AutoDeleteObjects', 1);
});

test('a retained bucket is not emptied on deletion', () => {
  const template = dataStack([
    'Accounts',
    { publicationBucketName: 'example-auth-keys', publicationBucketRemovalPolicy: RemovalPolicy.RETAIN },
  ]);
  template.resourceCountIs('Custom::S3AutoDeleteObjects', 0);
});

test('AuthData is reusable: two in one stack get distinct logical IDs (pins live in the home stack)', () => {
  const template = dataStack(
    ['Staging', { publicationBucketName: 'example-auth-keys-staging' }],
    ['Production', { publicationBucketName: 'example-auth-keys-production' }],
  );
  template.resourceCountIs('AWS::DynamoDB::GlobalTable', 2);
  template.resourceCountIs('AWS::SecretsManager::Secret', 2);
  template.resourceCountIs('AWS::S3::Bucket', 2);
});

test.each(['tableRemovalPolicy', 'keyRingSecretRemovalPolicy', 'publicationBucketRemovalPolicy'] as const)(
  '%s: SNAPSHOT is refused (none of these resources supports it)',
  (prop) => {
    expect(() =>
      dataStack(['Accounts', { publicationBucketName: 'example-auth-keys', [prop]: RemovalPolicy.SNAPSHOT }]),
    ).toThrow(new RegExp(`AuthData: ${prop} cannot be SNAPSHOT`));
  },
);
