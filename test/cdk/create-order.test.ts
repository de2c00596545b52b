import { bootScriptOf, fakeInstance } from './boot-script';
import { resourcesOf, type SynthesizedTier, synthTier } from './tier';

// Issue 12, item 5: a fleet node is ready only once jwks.json exists, so nothing of a fleet is created
// before the auth service has published it.

let tier: SynthesizedTier;
beforeAll(() => {
  tier = synthTier({ fleetRegions: ['us-east-1', 'eu-west-1'] });
});

function groupId(prefix: string): string {
  const [id] = Object.keys(resourcesOf(tier.homeTemplate, 'AWS::AutoScaling::AutoScalingGroup')).filter(
    (key) => key.startsWith(prefix),
  );
  return id;
}

test('home stack: the fleet group is created only after the auth group (its creation signals)', () => {
  const fleet = resourcesOf(tier.homeTemplate, 'AWS::AutoScaling::AutoScalingGroup')[groupId('FleetGroup')];
  expect(fleet.DependsOn).toContain(groupId('AuthGroup'));
  // The auth group's creation waits for one success signal per instance of its floor.
  tier.homeTemplate.hasResource('AWS::AutoScaling::AutoScalingGroup', {
    Properties: { MinSize: '2' },
    CreationPolicy: { ResourceSignal: { Count: 2, Timeout: 'PT17M' } },
  });
});

test('other regions: a fleet stack deploys after the whole home stack', () => {
  expect(tier.fleets.map((stack) => stack.dependencies.map((dep) => dep.stackName))).toEqual([
    ['SupernodeTier'],
  ]);
});

describe('an auth instance signals success only once the public key set is in the bucket', () => {
  const HEAD =
    /^aws s3api head-object --region us-east-1 --bucket REF:_Ref_AuthPublicationBucketFAC615A6_ --key jwks\.json$/;

  test('published: soak, then the key set is found, then success', () => {
    const instance = fakeInstance();
    try {
      const boot = instance.boot(bootScriptOf(tier.homeTemplate, 'auth'), { lifecycleState: 'InService' });
      expect(boot.status).toBe(0);
      const head = boot.calls.findIndex((call) => HEAD.test(call));
      const soak = boot.calls.findIndex((call) =>
        / soak --url http:\/\/127\.0\.0\.1:8080\/readyz /.test(call),
      );
      const success = boot.calls.findIndex((call) => call.startsWith('cfn-signal --exit-code 0 '));
      expect(soak).toBeGreaterThanOrEqual(0);
      expect(head).toBeGreaterThan(soak);
      expect(success).toBeGreaterThan(head);
      expect(boot.callsOf('cfn-signal')).toEqual([
        'cfn-signal --exit-code 0 --stack SupernodeTier --resource AuthGroupASGD129A802 --region us-east-1',
      ]);
    } finally {
      instance.dispose();
    }
  });

  test('never published: the instance retries for a while, then signals failure (the fleet is not created)', () => {
    const instance = fakeInstance();
    try {
      const boot = instance.boot(bootScriptOf(tier.homeTemplate, 'auth'), {
        lifecycleState: 'InService',
        failingAws: ['s3api head-object'],
      });
      expect(boot.status).toBe(1);
      expect(boot.calls.filter((call) => HEAD.test(call))).toHaveLength(30);
      expect(boot.callsOf('cfn-signal')).toEqual([expect.stringMatching(/^cfn-signal --exit-code 1 /)]);
    } finally {
      instance.dispose();
    }
  });

  test('the auth role may read back exactly that object', () => {
    const statements = Object.values(resourcesOf(tier.homeTemplate, 'AWS::IAM::Policy'))
      .filter((policy) => JSON.stringify(policy.Properties.Roles).includes('AuthRole'))
      .flatMap(
        (policy) => (policy.Properties.PolicyDocument as { Statement: Record<string, unknown>[] }).Statement,
      );
    const reads = statements.filter((statement) => statement.Action === 's3:GetObject');
    expect(reads).toHaveLength(1);
    expect(JSON.stringify(reads[0].Resource)).toMatch(/AuthPublicationBucket.*"\/jwks\.json"/);
  });
});
