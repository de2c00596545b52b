import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { SupernodeTierStack } from '../../lib/supernode-tier-stack';

// Same context as cdk.json, or the test synthesizes a different template from the one users deploy.
const context = require('../../cdk.json').context;

test('the app synthesizes offline and environment-agnostic', () => {
  const app = new App({ context });
  const stack = new SupernodeTierStack(app, 'SupernodeTier');
  const template = Template.fromStack(stack);
  template.hasResourceProperties('AWS::SNS::Topic', { DisplayName: 'Supernode Tier alarms' });
  expect(app.synth().getStackByName('SupernodeTier').environment).toMatchObject({
    account: 'unknown-account',
    region: 'unknown-region',
  });
});
