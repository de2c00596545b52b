import type { Stack } from 'aws-cdk-lib';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';

/**
 * Where instances of one region find the TURN secret: the id their boot script fetches (in the
 * instance's region) and the ARN their role may read. Nothing else about the secret is granted.
 */
export interface TurnSecretRef {
  readonly secretId: string;
  readonly resourceArn: string;
}

export interface TurnSecretProps {
  /** A fixed name: fleets of other regions find the replica by it, with no cross-region reference. */
  readonly secretName: string;
  /** Regions that get a replica (kept in sync by Secrets Manager). @default none */
  readonly replicaRegions?: string[];
}

/**
 * The shared secret of the TURN REST credentials (coturn's `use-auth-secret`): the auth service
 * signs credentials with its first line, supernodes accept every line. One secret in the home
 * region, replicated to every other fleet region, so a rotation is one `put-secret-value`
 * (docs/deploy.md#rotating-the-turn-secret).
 */
export class TurnSecret extends Construct {
  readonly secret: Secret;
  readonly secretName: string;

  constructor(scope: Construct, id: string, props: TurnSecretProps) {
    super(scope, id);
    this.secretName = props.secretName;
    this.secret = new Secret(this, 'Resource', {
      secretName: props.secretName,
      description:
        'Supernode TURN shared secret: one per line, newest first; the auth service signs with the first',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      replicaRegions: props.replicaRegions?.length
        ? props.replicaRegions.map((region) => ({ region }))
        : undefined,
    });
  }

  /** The primary, for instances in this stack's region (a reference: they wait for it). */
  get primary(): TurnSecretRef {
    return { secretId: this.secret.secretArn, resourceArn: this.secret.secretArn };
  }
}

/**
 * The replica of the secret named `secretName` in `stack`'s region: fetched by name, granted by the
 * name's ARN pattern (Secrets Manager appends six random characters to every secret's ARN).
 */
export function turnSecretReplica(stack: Stack, secretName: string): TurnSecretRef {
  return {
    secretId: secretName,
    resourceArn: `arn:${stack.partition}:secretsmanager:${stack.region}:${stack.account}:secret:${secretName}-??????`,
  };
}
