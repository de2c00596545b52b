import { normalized, synthTier } from './tier';

// One snapshot per stack kind: the home stack from cdk.json as shipped, and a fleet stack of a
// second region. Review a snapshot diff like a code diff; update with `npx jest -u test/cdk`.
test('home stack (cdk.json defaults)', () => {
  const { homeTemplate } = synthTier();
  expect(normalized(homeTemplate)).toMatchSnapshot();
});

test('fleet stack of another region', () => {
  const { fleetTemplates, fleets } = synthTier({ fleetRegions: ['us-east-1', 'eu-west-1'] });
  expect(fleets.map((stack) => stack.stackName)).toEqual(['SupernodeTier-eu-west-1']);
  expect(normalized(fleetTemplates[0])).toMatchSnapshot();
});

// Issue 14: TURN on (cdk.json plus turn=true): the layout a WebRTC deployment gets.
test('home stack with turn=true', () => {
  const { homeTemplate } = synthTier({ turn: true });
  expect(normalized(homeTemplate)).toMatchSnapshot();
});
