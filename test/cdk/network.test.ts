import { Match } from 'aws-cdk-lib/assertions';
import { INTERFACE_ENDPOINTS } from '../../lib/constructs/tier-network';
import { resourcesOf, synthTier } from './tier';

// Issue 12: the AWS APIs the instances call must not all hang on one NAT gateway in one zone.

const ENDPOINT_SERVICES = [
  'secretsmanager',
  'monitoring',
  'ec2',
  'autoscaling',
  'cloudformation',
  'ssm',
  'ssmmessages',
];

test('S3 and DynamoDB are reached through free gateway endpoints, never the NAT', () => {
  const { homeTemplate } = synthTier();
  const gateways = Object.values(resourcesOf(homeTemplate, 'AWS::EC2::VPCEndpoint')).map((e) =>
    JSON.stringify(e.Properties.ServiceName),
  );
  expect(gateways).toHaveLength(2);
  expect(gateways.some((name) => name.includes('.s3'))).toBe(true);
  expect(gateways.some((name) => name.includes('.dynamodb'))).toBe(true);
});

test('interfaceEndpoints=true: one endpoint per API the boot script and the runtime call, HTTPS from the VPC only', () => {
  const { homeTemplate, fleetTemplates } = synthTier({
    interfaceEndpoints: 'true',
    fleetRegions: ['us-east-1', 'eu-west-1'],
  });
  expect(Object.keys(INTERFACE_ENDPOINTS)).toHaveLength(ENDPOINT_SERVICES.length);
  for (const t of [homeTemplate, fleetTemplates[0]]) {
    const endpoints = Object.values(resourcesOf(t, 'AWS::EC2::VPCEndpoint'))
      .filter((e) => e.Properties.VpcEndpointType === 'Interface')
      .map((e) => e.Properties);
    const services = endpoints.map(
      (e) => /com\.amazonaws\.[^.]+\.([a-z0-9]+)/.exec(String(e.ServiceName))?.[1],
    );
    expect(services.sort()).toEqual([...ENDPOINT_SERVICES].sort());
    for (const endpoint of endpoints) expect(endpoint.PrivateDnsEnabled).toBe(true);
    t.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: 'Interface endpoints: HTTPS from the VPC',
      SecurityGroupIngress: [Match.objectLike({ CidrIp: '10.40.0.0/16', FromPort: 443, ToPort: 443 })],
    });
  }
});

test('NAT gateways: one in the dev stage (cdk.json), one per zone by default in production', () => {
  synthTier().homeTemplate.resourceCountIs('AWS::EC2::NatGateway', 1);
  synthTier({ stage: 'production', allowPlainHttp: 'true' }).homeTemplate.resourceCountIs(
    'AWS::EC2::NatGateway',
    2,
  );
  synthTier({ natGateways: 2 }).homeTemplate.resourceCountIs('AWS::EC2::NatGateway', 2);
});
