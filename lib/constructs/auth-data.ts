import { type CfnResource, Duration, RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, Billing, TableV2 } from 'aws-cdk-lib/aws-dynamodb';
import { BlockPublicAccess, Bucket, BucketEncryption, type IBucket } from 'aws-cdk-lib/aws-s3';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

export interface AuthDataProps {
  /**
   * Name of the bucket the public key set and the revocation list are published to. Fleets in
   * other regions compute the same name (no cross-region reference works offline), so it is
   * derived here instead of generated; the bucket empties itself on deletion, so a failed first
   * create leaves no bucket behind to collide with the retry.
   */
  readonly publicationBucketName: string;
  /** Bucket for the publication bucket's access logs. @default - no access logs */
  readonly accessLogs?: IBucket;
  /**
   * What happens to the table (accounts, refresh tokens) on stack deletion or replacement. Deletion
   * protection stays on whatever this says. @default RemovalPolicy.RETAIN
   */
  readonly tableRemovalPolicy?: RemovalPolicy;
  /**
   * What happens to the key-ring secret on stack deletion or replacement. Losing it signs every user
   * out (no refresh token or access token verifies with a new ring). @default RemovalPolicy.RETAIN
   */
  readonly keyRingSecretRemovalPolicy?: RemovalPolicy;
  /**
   * What happens to the publication bucket. Its content is derived (the service republishes it at
   * any time), so DESTROY empties it first, old versions included (a custom resource of CDK's).
   * @default RemovalPolicy.DESTROY
   */
  readonly publicationBucketRemovalPolicy?: RemovalPolicy;
}

/**
 * The auth service's state, apart from its compute so it can carry its own removal policies and be
 * reused: accounts in DynamoDB, signing keys in Secrets Manager, the public key set in S3.
 */
export class AuthData extends Construct {
  readonly table: TableV2;
  readonly keyRingSecret: Secret;
  readonly publicationBucket: Bucket;
  /**
   * Empties the publication bucket when it is deleted. Writers of the bucket should depend on it,
   * so they are gone before it runs. @default - none when the bucket is retained
   */
  readonly publicationBucketEmptier: CfnResource | undefined;

  constructor(scope: Construct, id: string, props: AuthDataProps) {
    super(scope, id);
    const tableRemovalPolicy = props.tableRemovalPolicy ?? RemovalPolicy.RETAIN;
    const secretRemovalPolicy = props.keyRingSecretRemovalPolicy ?? RemovalPolicy.RETAIN;
    const bucketRemovalPolicy = props.publicationBucketRemovalPolicy ?? RemovalPolicy.DESTROY;
    // CloudFormation supports Snapshot only for volumes and databases; none of these is one.
    for (const [name, policy] of [
      ['tableRemovalPolicy', tableRemovalPolicy],
      ['keyRingSecretRemovalPolicy', secretRemovalPolicy],
      ['publicationBucketRemovalPolicy', bucketRemovalPolicy],
    ] as const) {
      if (policy === RemovalPolicy.SNAPSHOT) {
        throw new Error(`AuthData: ${name} cannot be SNAPSHOT; use RETAIN or DESTROY`);
      }
    }

    // Accounts, refresh tokens and revocations in one table (layout in docs/store.md).
    this.table = new TableV2(this, 'Table', {
      partitionKey: { name: 'pk', type: AttributeType.STRING },
      billing: Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      timeToLiveAttribute: 'ttl',
      removalPolicy: tableRemovalPolicy,
    });

    // The service writes its key ring here on first start and rotates keys inside it.
    this.keyRingSecret = new Secret(this, 'KeyRingSecret', {
      description: 'Supernode auth signing key ring (Ed25519, rotated by the service itself)',
      removalPolicy: secretRemovalPolicy,
    });

    this.publicationBucket = new Bucket(this, 'PublicationBucket', {
      bucketName: props.publicationBucketName,
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      // Versions let an operator restore a bad publication; old ones go after a day.
      versioned: true,
      lifecycleRules: [{ noncurrentVersionExpiration: Duration.days(1) }],
      serverAccessLogsBucket: props.accessLogs,
      serverAccessLogsPrefix: props.accessLogs ? 'publication-bucket/' : undefined,
      removalPolicy: bucketRemovalPolicy,
      // A versioned bucket is only deletable once every version is gone: a rollback or destroy would
      // otherwise stop on it (ROLLBACK_FAILED), and the retry collide with its fixed name.
      autoDeleteObjects: bucketRemovalPolicy === RemovalPolicy.DESTROY,
    });
    this.publicationBucketEmptier = this.publicationBucket.node.tryFindChild(
      'AutoDeleteObjectsCustomResource',
    )?.node.defaultChild as CfnResource | undefined;
  }
}
