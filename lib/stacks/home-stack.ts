import { CfnOutput, type CfnResource, Lazy, Stack, type StackProps, Token } from 'aws-cdk-lib';
import type { Construct, IConstruct } from 'constructs';
import type { FleetPlacement, TierConfig } from '../config';
import { AccessLogBucket } from '../constructs/access-logs';
import { AuthData } from '../constructs/auth-data';
import { AuthService } from '../constructs/auth-service';
import { Observability } from '../constructs/observability';
import { RuntimeBundle } from '../constructs/runtime';
import type { SupernodeFleet } from '../constructs/supernode-fleet';
import { TierNetwork } from '../constructs/tier-network';
import { TurnSecret } from '../constructs/turn-secret';
import {
  acknowledgeAuthDataFindings,
  acknowledgeAuthFindings,
  acknowledgeStackFindings,
  acknowledgeTurnSecretFindings,
} from './nag';
import { publicationBucketName, turnSecretName } from './naming';
import { fleetOutputs } from './outputs';
import { publicName, tierFleet, tierTurnUrls } from './wiring';

export interface HomeStackProps extends StackProps {
  readonly config: TierConfig;
}

/**
 * Logical IDs the auth state had while AuthService owned it, which deployed stacks know it by. A new
 * ID is a new resource: an empty table (the old one orphaned), a new key ring (the old one deleted),
 * a bucket whose fixed name collides, and a bucket policy the old one's cleanup would delete.
 */
const AUTH_DATA_LOGICAL_IDS = {
  table: 'AuthTable60C69E80',
  keyRingSecret: 'AuthKeyRingSecretF4D43613',
  publicationBucket: 'AuthPublicationBucketFAC615A6',
  publicationBucketPolicy: 'AuthPublicationBucketPolicy8343BE20',
} as const;

/**
 * The home region: the auth service, its table and keys, the dashboard of the whole tier and,
 * when the home region also hosts a fleet, that fleet.
 */
export class SupernodeHomeStack extends Stack {
  readonly authData: AuthData;
  readonly auth: AuthService;
  readonly fleet: SupernodeFleet | undefined;
  readonly observability: Observability;
  /** The TURN secret of the whole tier (replicated to the other fleet regions), with `turn` only. */
  readonly turnSecret: TurnSecret | undefined;

  constructor(scope: Construct, id: string, props: HomeStackProps) {
    super(scope, id, props);
    const { config } = props;
    const bundle = new RuntimeBundle(this, 'Runtime');
    const network = new TierNetwork(this, 'Network', {
      natGateways: config.natGateways,
      interfaceEndpoints: config.interfaceEndpoints,
    });
    // ELB log delivery needs a concrete region (its log-writer account differs per region).
    const logs = Token.isUnresolved(this.region) ? undefined : new AccessLogBucket(this, 'AccessLogs');
    const homeRegion = config.homeRegion;

    this.authData = new AuthData(this, 'AuthData', {
      publicationBucketName: publicationBucketName(this, homeRegion),
      accessLogs: logs?.bucket,
    });
    pinAuthDataLogicalIds(this.authData);
    const remoteRegions = config.fleets
      .map((fleet) => fleet.region)
      .filter((region): region is string => region !== undefined && region !== homeRegion);
    if (config.turn) {
      this.turnSecret = new TurnSecret(this, 'TurnSecret', {
        secretName: turnSecretName(this, homeRegion),
        replicaRegions: remoteRegions,
      });
      acknowledgeTurnSecretFindings(this.turnSecret);
    }
    const authName = publicName(this, 'AuthName', config, 'auth', config.authCertificateArn);
    this.auth = new AuthService(this, 'Auth', {
      vpc: network.vpc,
      bundle,
      table: this.authData.table,
      keyRingSecret: this.authData.keyRingSecret,
      publicationBucket: this.authData.publicationBucket,
      instanceType: config.authInstanceType,
      floor: config.authFloor,
      ceiling: config.authCeiling,
      certificateArn: authName?.certificateArn ?? config.authCertificateArn,
      hostName: authName?.hostName,
      accessLogs: logs?.bucket,
      // The home fleet is built below: its URLs are filled in at synthesis.
      turn: this.turnSecret && {
        secret: this.turnSecret.primary,
        urls: Lazy.list({ produce: () => tierTurnUrls(config, this.fleet) }),
      },
    });
    authName?.pointAt(this.auth.loadBalancer);
    // Deleting the stack empties the bucket only once the auth instances (its writers) are gone.
    if (this.authData.publicationBucketEmptier) {
      (this.auth.group.node.defaultChild as CfnResource).addResourceDependency(
        this.authData.publicationBucketEmptier,
      );
    }

    const homeFleet: FleetPlacement | undefined = config.fleets.find((fleet) => fleet.region === homeRegion);
    if (homeFleet) {
      this.fleet = tierFleet(this, config, homeFleet, {
        vpc: network.vpc,
        bundle,
        publicKeys: { bucketName: this.authData.publicationBucket.bucketName },
        accessLogs: logs?.bucket,
        turnSecret: this.turnSecret?.primary,
      });
      // A node is ready only once it has the public keys: its group is created after the auth group,
      // whose instances signal only once jwks.json is published.
      (this.fleet.group.node.defaultChild as CfnResource).addResourceDependency(
        this.auth.group.node.defaultChild as CfnResource,
      );
    }

    this.observability = new Observability(this, 'Observability', {
      fleets: this.fleet ? [this.fleet] : [],
      auth: this.auth,
      remoteFleetRegions: remoteRegions,
      remoteTurn: config.turn,
      alarmEmail: config.alarmEmail,
    });
    acknowledgeAuthDataFindings(this.authData);
    acknowledgeAuthFindings(this.auth);
    acknowledgeStackFindings(this, logs);

    const authUrl = config.domainName && !authName ? `https://auth.${config.domainName}` : this.auth.url;
    new CfnOutput(this, 'AuthUrl', {
      value: this.auth.url,
      description:
        config.domainName && !authName
          ? `Auth API load balancer; point auth.${config.domainName} (CNAME) at it`
          : 'Auth API base URL (sign-up, login, refresh, JWKS)',
    });
    if (this.fleet) {
      fleetOutputs(this, this.fleet);
      new CfnOutput(this, 'TryIt', {
        value: `npx supernode client signup --auth ${authUrl} --username alice --password '<12+ chars>' && npx supernode client connect --auth ${authUrl} --node ${this.fleet.sessionUrl} --username alice`,
        description: 'Next step: create an account and open a session',
      });
    }
    new CfnOutput(this, 'PublicKeys', {
      value: `s3://${this.authData.publicationBucket.bucketName}/jwks.json`,
      description: 'Public key set the supernodes read (works while the auth service is down)',
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.observability.alarmTopic.topicArn,
      description:
        'Subscribe: aws sns subscribe --topic-arn <this> --protocol email --notification-endpoint you@example.com',
    });
    if (this.observability.dashboard) {
      new CfnOutput(this, 'DashboardUrl', {
        value: `https://console.aws.amazon.com/cloudwatch/home?region=${this.region}#dashboards:name=${this.observability.dashboard.dashboardName}`,
        description: 'CloudWatch dashboard of the tier',
      });
    }
    new CfnOutput(this, 'TableName', {
      value: this.authData.table.tableName,
      description: 'Accounts table (DynamoDB)',
    });
  }
}

function pinAuthDataLogicalIds(data: AuthData): void {
  const pin = (resource: IConstruct | undefined, logicalId: string) => {
    if (!resource) throw new Error(`SupernodeHomeStack: nothing to pin to logical ID ${logicalId}`);
    (resource.node.defaultChild as CfnResource).overrideLogicalId(logicalId);
  };
  pin(data.table, AUTH_DATA_LOGICAL_IDS.table);
  pin(data.keyRingSecret, AUTH_DATA_LOGICAL_IDS.keyRingSecret);
  pin(data.publicationBucket, AUTH_DATA_LOGICAL_IDS.publicationBucket);
  pin(data.publicationBucket.policy, AUTH_DATA_LOGICAL_IDS.publicationBucketPolicy);
}
