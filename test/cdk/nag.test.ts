import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Peer, Port, SecurityGroup } from 'aws-cdk-lib/aws-ec2';
import { buildTierApp } from '../../lib/app';
import { cdkJsonContext } from './tier';

// With the plugin attached, synth throws "Validation failed" on any finding not acknowledged.
test.each([
  ['cdk.json as shipped', {}],
  [
    'two regions with TLS',
    {
      fleetRegions: ['us-east-1', 'eu-west-1'],
      certificateArns: {
        'us-east-1': 'arn:aws:acm:us-east-1:123456789012:certificate/12345678-1234-1234-1234-123456789012',
        'eu-west-1': 'arn:aws:acm:eu-west-1:123456789012:certificate/12345678-1234-1234-1234-123456789012',
      },
    },
  ],
  ['region-agnostic', { homeRegion: '', fleetRegions: '' }],
  [
    'production with a hosted zone and interface endpoints',
    {
      stage: 'production',
      fleetRegions: ['us-east-1', 'eu-west-1'],
      domainName: 'example.com',
      hostedZoneId: 'Z0123456789ABCDEFGHIJ',
      interfaceEndpoints: true,
    },
  ],
  ['no warm pool', { warmPoolSize: 0 }],
])('cdk-nag AwsSolutions reports nothing unacknowledged: %s', (_name, overrides) => {
  const { app } = buildTierApp({ context: { ...cdkJsonContext, ...overrides }, nag: true });
  expect(() => app.synth()).not.toThrow();
});

test('the check can fail: a new open security group is reported', () => {
  const { app, home } = buildTierApp({ context: cdkJsonContext, nag: true });
  const open = new SecurityGroup(home, 'Open', { vpc: home.auth.loadBalancer.vpc as never });
  open.addIngressRule(Peer.anyIpv4(), Port.tcp(22));
  expect(() => app.synth()).toThrow(
    /AwsSolutions[\s\S]*SupernodeTier\/Open\/Resource[\s\S]*AwsSolutions-EC23/,
  );
});

test('`cdk synth` from the CLI, offline and without credentials, writes every template and no warning', () => {
  const out = mkdtempSync(join(tmpdir(), 'cdk-out-'));
  try {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      CDK_DISABLE_CLI_TELEMETRY: 'true',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    for (const key of ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_PROFILE'])
      delete env[key];
    const result = spawnSync(
      join(__dirname, '../../node_modules/.bin/cdk'),
      ['synth', '--no-notices', '-q', '-o', out, '-c', 'fleetRegions=us-east-1,eu-west-1'],
      { cwd: join(__dirname, '../..'), env, encoding: 'utf8', timeout: 120_000 },
    );
    expect(result.stderr).not.toMatch(/warning|error/i);
    expect(result.status).toBe(0);
    expect(
      readdirSync(out)
        .filter((file) => file.endsWith('.template.json'))
        .sort(),
    ).toEqual(['SupernodeTier-eu-west-1.template.json', 'SupernodeTier.template.json']);
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
