import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULTS, readTierConfig, TierConfigError } from '../../lib/config';
import { cdkJsonContext } from './tier';

const read = (context: Record<string, unknown>) => readTierConfig((key) => context[key]);
const ARN = 'arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';
// A certificate of the agnostic home stack: any region passes the region check.
const HOME_ARN = 'arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';

test('cdk.json as shipped: the dev stage, one fleet in the home region at the documented defaults', () => {
  const config = read(cdkJsonContext);
  expect(config.stage).toBe('dev');
  expect(config.homeRegion).toBe('us-east-1');
  expect(config.fleets).toEqual([{ region: 'us-east-1', floor: 3, ceiling: 12, certificateArn: undefined }]);
  expect(config).toMatchObject({
    instanceType: DEFAULTS.instanceType,
    authFloor: DEFAULTS.authFloor,
    soakSeconds: DEFAULTS.soakSeconds,
    warmPoolSize: 2,
    natGateways: DEFAULTS.natGateways.dev,
    interfaceEndpoints: false,
    allowPlainHttp: false,
  });
});

test('no context at all is production: refused without TLS, with a message that says what to give', () => {
  expect(() => read({})).toThrow(TierConfigError);
  expect(() => read({})).toThrow(
    'stage "production" needs TLS: context "certificateArns" has no certificate for the auth API (home), the fleet in the home region',
  );
});

test('production: one region-agnostic fleet and the defaults once TLS is given, or plain HTTP asked for', () => {
  for (const context of [{ certificateArns: { home: HOME_ARN } }, { allowPlainHttp: 'true' }]) {
    const config = read(context);
    expect(config.stage).toBe('production');
    expect(config.homeRegion).toBeUndefined();
    expect(config.natGateways).toBe(2);
    expect(config.fleets).toEqual([
      { region: undefined, floor: 3, ceiling: 12, certificateArn: context.certificateArns?.home },
    ]);
  }
});

test('production with a hosted zone: the stacks issue the certificates', () => {
  const config = read({
    homeRegion: 'eu-west-1',
    domainName: 'example.com',
    hostedZoneId: 'Z0123456789ABCDEFGHIJ',
  });
  expect(config.hostedZone).toEqual({ id: 'Z0123456789ABCDEFGHIJ', name: 'example.com' });
});

test('production needs a certificate for every fleet region, not only the home one', () => {
  expect(() =>
    read({
      homeRegion: 'eu-west-1',
      fleetRegions: 'eu-west-1,us-east-1',
      certificateArns: { 'eu-west-1': ARN },
    }),
  ).toThrow('no certificate for the fleet in us-east-1');
});

test('-c values arrive as strings: numbers, lists and JSON objects are parsed', () => {
  const config = read({
    stage: 'dev',
    homeRegion: 'eu-west-1',
    fleetRegions: 'eu-west-1,ap-southeast-2',
    floor: '4',
    ceiling: '9',
    fleetSizes: '{"ap-southeast-2":{"floor":3,"ceiling":30}}',
    certificateArns: `{"eu-west-1":"${ARN}"}`,
    alarmEmail: 'ops@example.com',
  });
  expect(config.fleets).toEqual([
    { region: 'eu-west-1', floor: 4, ceiling: 9, certificateArn: ARN },
    { region: 'ap-southeast-2', floor: 3, ceiling: 30, certificateArn: undefined },
  ]);
  expect(config.authCertificateArn).toBe(ARN);
  expect(config.alarmEmail).toBe('ops@example.com');
});

test.each([
  [{ floor: 2 }, 'context "floor" must be an integer from 3 to 1000 (got 2)'],
  [{ stage: 'staging' }, 'context "stage" must be one of "dev", "production" (got "staging")'],
  [{ allowPlainHttp: 'yes' }, 'context "allowPlainHttp" must be true or false (got "yes")'],
  [{ interfaceEndpoints: 1 }, 'context "interfaceEndpoints" must be true or false (got 1)'],
  [{ warmPoolSize: 11 }, 'context "warmPoolSize" must be an integer from 0 to 10 (got 11)'],
  [
    { warmPoolSize: 3, floor: 10, ceiling: 12 },
    'context "warmPoolSize" (3) must be at most ceiling - floor (2)',
  ],
  [
    { instanceType: 'c7g.huge' },
    'context "instanceType" must be a Graviton (arm64) EC2 type like c7g.large (got "c7g.huge")',
  ],
  [
    { instanceType: 'compute7-graviton3.large' },
    'context "instanceType" must be a Graviton (arm64) EC2 type',
  ],
  [{ instanceType: 'c7g.large.x' }, 'context "instanceType" must be a Graviton (arm64) EC2 type'],
  [{ instanceType: 'm7i.large' }, 'supernodes run on Graviton (got "m7i.large")'],
  [
    { authInstanceType: 'zz9.large' },
    'context "authInstanceType" must be an EC2 type like c7g.large (got "zz9.large")',
  ],
  [{ hostedZoneId: 'Z0123456789ABCDEFGHIJ' }, 'context "hostedZoneId" needs "domainName" too'],
  [
    { domainName: 'example.com', hostedZoneId: 'zone' },
    'context "hostedZoneId" must be a Route 53 hosted zone id',
  ],
  [{ floor: 'three' }, 'context "floor" must be an integer from 3 to 1000 (got "three")'],
  [{ floor: 6, ceiling: 6 }, 'ceiling (6) must be greater than floor (6)'],
  [{ homeRegion: 'moon-1' }, 'context "homeRegion" must be a region name such as eu-west-1 (got "moon-1")'],
  [{ fleetRegions: 'eu-west-1' }, 'context "fleetRegions" needs "homeRegion" too'],
  [{ homeRegion: 'eu-west-1', fleetRegions: 'eu-west-1,eu-west-1' }, 'lists a region twice'],
  [{ homeRegion: 'eu-west-1', fleetRegions: 'eu-west-1,Paris' }, '"Paris" is not a region name'],
  [
    { homeRegion: 'eu-west-1', fleetSizes: '{"us-east-1":{"floor":3}}' },
    'names us-east-1, which is not in "fleetRegions"',
  ],
  [
    { homeRegion: 'eu-west-1', fleetRegions: 'eu-west-1', fleetSizes: '{"eu-west-1":{"floor":2}}' },
    'floor must be at least 3',
  ],
  [{ fleetSizes: '{oops' }, 'context "fleetSizes" is not valid JSON'],
  [
    { homeRegion: 'us-east-1', certificateArns: { 'us-east-1': ARN } },
    'is a certificate of eu-west-1, not of us-east-1',
  ],
  [{ certificateArns: { home: 'arn:nope' } }, 'is not an ACM certificate ARN'],
  [{ instanceType: 'big' }, 'context "instanceType" must be a Graviton (arm64) EC2 type like c7g.large'],
  [{ authFloor: 3, authCeiling: 2 }, 'must be at least "authFloor"'],
  [{ alarmEmail: 'not-an-address' }, 'context "alarmEmail" must be an e-mail address'],
  [{ natGateways: 0 }, 'context "natGateways" must be an integer from 1 to 3'],
])('%j is refused: %s', (context, message) => {
  // The dev stage, so that only the value under test is wrong.
  expect(() => read({ stage: 'dev', ...context })).toThrow(TierConfigError);
  expect(() => read({ stage: 'dev', ...context })).toThrow(message);
});

test('an auth type of any architecture CDK knows is fine (its AMI follows it)', () => {
  expect(read({ stage: 'dev', authInstanceType: 'm7i.large' }).authInstanceType).toBe('m7i.large');
});

test('the app refuses a bad value before synthesis, with one line naming it', () => {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(__dirname, '../../bin/supernode-tier.ts')],
    {
      env: { ...process.env, CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext, floor: '2' }) },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  expect(result.status).toBe(1);
  expect(result.stderr.trim()).toBe(
    'supernode-tier: context "floor" must be an integer from 3 to 1000 (got "2")',
  );
});

test('an instance type CDK would reject deep in synth stops the app with one line naming it', () => {
  const result = spawnSync(
    process.execPath,
    ['--import', 'tsx', join(__dirname, '../../bin/supernode-tier.ts')],
    {
      env: {
        ...process.env,
        CDK_CONTEXT_JSON: JSON.stringify({ ...cdkJsonContext, instanceType: 'big.large' }),
      },
      encoding: 'utf8',
      timeout: 60_000,
    },
  );
  expect(result.status).toBe(1);
  expect(result.stderr.trim()).toBe(
    'supernode-tier: context "instanceType" must be a Graviton (arm64) EC2 type like c7g.large (got "big.large")',
  );
});

test('docs/deploy.md documents every context key', () => {
  const { CONTEXT_KEYS } = require('../../lib/config') as typeof import('../../lib/config');
  const doc = require('node:fs').readFileSync(join(__dirname, '../../docs/deploy.md'), 'utf8') as string;
  for (const key of CONTEXT_KEYS) expect(doc).toContain(`\`${key}\``);
});
