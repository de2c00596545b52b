import { buildAuthService } from '../../supernode/auth/server';
import { authOptionTable, checkAuthConfig } from '../../supernode/config/auth-options';
import { ConfigError, parseOptions } from '../../supernode/config/options';

const parse = (argv: string[], env: NodeJS.ProcessEnv = {}) => parseOptions(authOptionTable, argv, env);

describe('auth options for AWS', () => {
  it('reads the key ring secret, the publication bucket and CloudWatch from the environment', () => {
    const config = parse([], {
      AUTH_KEY_RING_SECRET: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-keys-AbCdEf',
      AUTH_PUBLISH_BUCKET: 'sn-auth-public',
      AUTH_PUBLISH_PREFIX: 'auth/',
      AUTH_CLOUDWATCH: 'true',
      AUTH_CLOUDWATCH_INTERVAL_MS: '30000',
      AUTH_AUTO_SCALING_GROUP: 'AuthStack-Fleet-1A2B3C',
    });
    expect(config).toMatchObject({
      keyRingSecret: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-keys-AbCdEf',
      publishBucket: 'sn-auth-public',
      publishPrefix: 'auth/',
      cloudwatch: true,
      cloudwatchIntervalMs: 30_000,
      autoScalingGroup: 'AuthStack-Fleet-1A2B3C',
    });
    expect(checkAuthConfig(config)).toBe(config);
    expect(parse(['--key-ring-secret', 'supernode/auth-keys']).keyRingSecret).toBe('supernode/auth-keys');
  });

  it('defaults to none of them', () => {
    expect(parse([])).toMatchObject({
      keyRingSecret: undefined,
      publishBucket: undefined,
      publishPrefix: undefined,
      cloudwatch: false,
      cloudwatchIntervalMs: 60_000,
    });
  });

  it.each([
    [
      ['--publish-bucket', 'Not_A_Bucket'],
      /--publish-bucket \(AUTH_PUBLISH_BUCKET\) must be an S3 bucket name/,
    ],
    [['--publish-prefix', 'a b'], /--publish-prefix \(AUTH_PUBLISH_PREFIX\) must be an S3 key prefix/],
    [['--key-ring-secret', 'no spaces allowed'], /--key-ring-secret .* must be a Secrets Manager secret/],
    [['--cloudwatch-interval-ms', '500'], /--cloudwatch-interval-ms .* from 1000/],
  ])('rejects %j naming the option', (argv, message) => {
    expect(() => parse(argv)).toThrow(ConfigError);
    expect(() => parse(argv)).toThrow(message);
  });

  it('requires --auto-scaling-group with --cloudwatch', async () => {
    expect(() => checkAuthConfig(parse(['--cloudwatch']))).toThrow(
      /--auto-scaling-group \(AUTH_AUTO_SCALING_GROUP\) is required with --cloudwatch/,
    );
    await expect(buildAuthService({ cloudwatch: true, logLevel: 'silent' })).rejects.toThrow(ConfigError);
  });
});
