import { App, type AppProps, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { readTierConfig, type TierConfig } from './config';
import { SupernodeFleetStack } from './stacks/fleet-stack';
import { SupernodeHomeStack } from './stacks/home-stack';
import { fleetStackName, HOME_STACK_NAME } from './stacks/naming';

export interface TierApp {
  app: App;
  config: TierConfig;
  home: SupernodeHomeStack;
  fleets: SupernodeFleetStack[];
}

/**
 * The whole tier from context: the home stack, then one stack per fleet region outside the home
 * region. Account-agnostic always; region-agnostic unless `homeRegion` is set. `nag: true` attaches
 * cdk-nag's AwsSolutions checks, as `cdk synth` does.
 */
export function buildTierApp(props: AppProps & { nag?: boolean } = {}): TierApp {
  const app = new App(props);
  const config = readTierConfig((key) => app.node.tryGetContext(key));
  const home = new SupernodeHomeStack(app, HOME_STACK_NAME, {
    description: 'Supernode Tier: auth service, public keys, dashboard and the home-region supernode fleet',
    env: config.homeRegion ? { region: config.homeRegion } : undefined,
    config,
  });
  const fleets = config.fleets
    .filter((placement) => placement.region !== undefined && placement.region !== config.homeRegion)
    .map((placement) => {
      const region = placement.region as string;
      const stack = new SupernodeFleetStack(app, fleetStackName(region), {
        description: `Supernode Tier: supernode fleet in ${region}`,
        env: { region },
        config,
        placement,
      });
      // Nodes read the public keys the home stack's auth service publishes.
      stack.addStackDependency(home);
      return stack;
    });
  if (props.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, config, home, fleets };
}
