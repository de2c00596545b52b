import { App, RemovalPolicy, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AuthData, type AuthDataProps } from '../../lib/constructs/auth-data';
import { cdkJsonContext, synthTier } from './tier';

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
    expect(Object.keys(resources).filter((id) => id.startsWith('AuthData'))).toEqual([]);
  });

  test('removal policies as before the split: table kept, secret and bucket deleted', () => {
    expect(resources.AuthTable60C69E80).toMatchObject({
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
    for (const id of ['AuthKeyRingSecretF4D43613', 'AuthPublicationBucketFAC615A6'])
      expect(resources[id]).toMatchObject({ DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
  });
});

function dataStack(...instances: [string, AuthDataProps][]): Template {
  const app = new App({ context: cdkJsonContext });
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

test('AuthData defaults: table retained, secret and bucket destroyed', () => {
  const template = dataStack(['Accounts', { publicationBucketName: 'example-auth-keys' }]);
  template.hasResource('AWS::DynamoDB::GlobalTable', {
    DeletionPolicy: 'Retain',
    UpdateReplacePolicy: 'Retain',
  });
  template.hasResource('AWS::SecretsManager::Secret', {
    DeletionPolicy: 'Delete',
    UpdateReplacePolicy: 'Delete',
  });
  template.hasResource('AWS::S3::Bucket', { DeletionPolicy: 'Delete', UpdateReplacePolicy: 'Delete' });
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
