import { Match } from 'aws-cdk-lib/assertions';
import { buildTierApp } from '../../lib/app';
import { TierConfigError } from '../../lib/config';
import { cdkJsonContext, resourcesOf, synthTier, WITHOUT_BUILTIN_VALIDATION } from './tier';

// Issue 12: passwords and tokens never cross the internet in cleartext in a production stage.

const ARN = (region: string) =>
  `arn:aws:acm:${region}:123456789012:certificate/12345678-1234-1234-1234-123456789012`;
const TWO_REGIONS = { fleetRegions: ['us-east-1', 'eu-west-1'] };

test('production without certificates is refused before synthesis, naming what is missing', () => {
  const build = () =>
    buildTierApp({
      context: { ...cdkJsonContext, ...TWO_REGIONS, stage: 'production' },
      ...WITHOUT_BUILTIN_VALIDATION,
    });
  expect(build).toThrow(TierConfigError);
  expect(build).toThrow(
    'no certificate for the auth API (us-east-1), the fleet in us-east-1, the fleet in eu-west-1',
  );
});

test('production with allowPlainHttp=true synthesizes plain HTTP and TCP, on purpose', () => {
  const { homeTemplate } = synthTier({ stage: 'production', allowPlainHttp: 'true' });
  homeTemplate.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 80, Protocol: 'HTTP' });
  homeTemplate.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', { Port: 443, Protocol: 'TCP' });
});

describe('production with certificates', () => {
  const tier = () =>
    synthTier({
      ...TWO_REGIONS,
      stage: 'production',
      certificateArns: { 'us-east-1': ARN('us-east-1'), 'eu-west-1': ARN('eu-west-1') },
    });
  let synthesized: ReturnType<typeof tier>;
  beforeAll(() => {
    synthesized = tier();
  });

  test('the auth ALB serves HTTPS only: port 80 redirects to 443', () => {
    const listeners = Object.values(
      resourcesOf(synthesized.homeTemplate, 'AWS::ElasticLoadBalancingV2::Listener'),
    ).map((listener) => listener.Properties);
    const alb = listeners.filter((l) => JSON.stringify(l.LoadBalancerArn).includes('AuthLoadBalancer'));
    expect(alb.map((l) => `${l.Protocol}/${l.Port}`).sort()).toEqual(['HTTP/80', 'HTTPS/443']);
    expect(alb.find((l) => l.Port === 80)?.DefaultActions).toEqual([
      expect.objectContaining({
        Type: 'redirect',
        RedirectConfig: expect.objectContaining({ Protocol: 'HTTPS', Port: '443' }),
      }),
    ]);
  });

  test.each([
    ['home', 0, 'us-east-1'],
    ['eu-west-1', 1, 'eu-west-1'],
  ])(
    'the %s fleet terminates TLS on the NLB with its region certificate and writes NLB access logs',
    (_n, index, region) => {
      const t = index === 0 ? synthesized.homeTemplate : synthesized.fleetTemplates[0];
      t.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 443,
        Protocol: 'TLS',
        Certificates: [{ CertificateArn: ARN(region) }],
        SslPolicy: Match.stringLikeRegexp('TLS13'),
      });
      t.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
        Type: 'network',
        LoadBalancerAttributes: Match.arrayWith([{ Key: 'access_logs.s3.enabled', Value: 'true' }]),
      });
    },
  );

  test('outputs give https and wss URLs', () => {
    const outputs = synthesized.homeTemplate.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(JSON.stringify(outputs.AuthUrl.Value)).toMatch(/^\{"Fn::Join":\["",\["https:\/\//);
    expect(JSON.stringify(outputs.SessionUrl.Value)).toMatch(/^\{"Fn::Join":\["",\["wss:\/\//);
  });
});

test('production with a hosted zone: certificates issued by DNS validation, alias records, https and wss names', () => {
  const { homeTemplate, fleetTemplates, home } = synthTier({
    ...TWO_REGIONS,
    stage: 'production',
    domainName: 'example.com',
    hostedZoneId: 'Z0123456789ABCDEFGHIJ',
  });
  for (const [t, names] of [
    [homeTemplate, ['auth.example.com', 'nodes.us-east-1.example.com']],
    [fleetTemplates[0], ['nodes.eu-west-1.example.com']],
  ] as const) {
    for (const name of names) {
      t.hasResourceProperties('AWS::CertificateManager::Certificate', {
        DomainName: name,
        ValidationMethod: 'DNS',
        DomainValidationOptions: [{ DomainName: name, HostedZoneId: 'Z0123456789ABCDEFGHIJ' }],
      });
      t.hasResourceProperties('AWS::Route53::RecordSet', {
        Name: `${name}.`,
        Type: 'A',
        HostedZoneId: 'Z0123456789ABCDEFGHIJ',
        AliasTarget: Match.objectLike({ DNSName: Match.anyValue() }),
      });
    }
  }
  expect(home.auth.url).toBe('https://auth.example.com');
  expect(home.fleet?.sessionUrl).toBe('wss://nodes.us-east-1.example.com');
  homeTemplate.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
    Port: 443,
    Protocol: 'HTTPS',
    Certificates: [{ CertificateArn: { Ref: Match.stringLikeRegexp('^AuthNameCertificate') } }],
  });
});
