import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { DEFAULTS, readTierConfig, TierConfigError } from '../../lib/config';
import { cdkJsonContext } from './tier';

const read = (context: Record<string, unknown>) => readTierConfig((key) => context[key]);
const ARN = 'arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012';

test('cdk.json as shipped: one fleet in the home region at the documented defaults', () => {
  const config = read(cdkJsonContext);
  expect(config.homeRegion).toBe('us-east-1');
  expect(config.fleets).toEqual([{ region: 'us-east-1', floor: 3, ceiling: 12, certificateArn: undefined }]);
  expect(config).toMatchObject({
    instanceType: DEFAULTS.instanceType,
    authFloor: DEFAULTS.authFloor,
    soakSeconds: DEFAULTS.soakSeconds,
    natGateways: DEFAULTS.natGateways,
  });
});

test('no context at all: one region-agnostic fleet and the defaults', () => {
  const config = read({});
  expect(config.homeRegion).toBeUndefined();
  expect(config.fleets).toEqual([{ region: undefined, floor: 3, ceiling: 12, certificateArn: undefined }]);
});

test('-c values arrive as strings: numbers, lists and JSON objects are parsed', () => {
  const config = read({
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
  [{ instanceType: 'big' }, 'context "instanceType" must be an EC2 type like c7g.large'],
  [{ authFloor: 3, authCeiling: 2 }, 'must be at least "authFloor"'],
  [{ alarmEmail: 'not-an-address' }, 'context "alarmEmail" must be an e-mail address'],
  [{ natGateways: 0 }, 'context "natGateways" must be an integer from 1 to 3'],
])('%j is refused: %s', (context, message) => {
  expect(() => read(context)).toThrow(TierConfigError);
  expect(() => read(context)).toThrow(message);
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

test('docs/deploy.md documents every context key', () => {
  const { CONTEXT_KEYS } = require('../../lib/config') as typeof import('../../lib/config');
  const doc = require('node:fs').readFileSync(join(__dirname, '../../docs/deploy.md'), 'utf8') as string;
  for (const key of CONTEXT_KEYS) expect(doc).toContain(`\`${key}\``);
});
