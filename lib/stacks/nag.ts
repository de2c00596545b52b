import { type CfnResource, Stack, Token, Validations } from 'aws-cdk-lib';
import type { AccessLogBucket } from '../constructs/access-logs';
import type { AuthData } from '../constructs/auth-data';
import type { AuthService } from '../constructs/auth-service';
import type { SupernodeFleet } from '../constructs/supernode-fleet';
import type { TurnSecret } from '../constructs/turn-secret';

/**
 * Every cdk-nag AwsSolutions finding this app keeps on purpose, with the reason. A test asserts
 * that nothing else is reported (test/cdk/nag.test.ts).
 */
const SESSION_MANAGER =
  'AmazonSSMManagedInstanceCore is the documented policy for Session Manager access, which replaces SSH (no key pair, no port 22).';
const SCALING_EVENTS =
  'Scaling activity is on the dashboard and in the group activity history; an e-mail per launch or termination would drown the alarm topic.';

export function acknowledgeFleetFindings(fleet: SupernodeFleet): void {
  Validations.of(fleet.role).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason: SESSION_MANAGER,
    },
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'ec2:DescribeInstances (mesh discovery) supports no resource-level scoping; cloudwatch:PutMetricData supports none either and is limited by a cloudwatch:namespace condition instead.',
    },
  );
  // The finding's id embeds the ARN as nag renders it: literals where the stack knows them.
  const stack = Stack.of(fleet);
  const literal = (value: string, pseudo: string) => (Token.isUnresolved(value) ? `<${pseudo}>` : value);
  const groupLogicalId = stack.resolve(stack.getLogicalId(fleet.group.node.defaultChild as CfnResource));
  Validations.of(fleet.completeLifecyclePolicy).acknowledge({
    id: `AwsSolutions-IAM5[Resource::arn:${literal(stack.partition, 'AWS::Partition')}:autoscaling:${literal(stack.region, 'AWS::Region')}:<AWS::AccountId>:autoScalingGroup:*:autoScalingGroupName/<${groupLogicalId}>]`,
    reason:
      "CompleteLifecycleAction on the fleet's own group only: the wildcard is the group's UUID, unknown until it exists; the group name pins it.",
  });
  Validations.of(fleet).acknowledge(
    {
      id: 'AwsSolutions-SMG4',
      reason:
        'The mesh secret is rotated by replacing it and rolling the fleet (docs/security.md); Secrets Manager rotation would desynchronise running members.',
    },
    { id: 'AwsSolutions-AS3', reason: SCALING_EVENTS },
    {
      id: 'AwsSolutions-EC23',
      reason: fleet.turnUrls
        ? 'The NLB is the public endpoint for client sessions (443), STUN and TURN (UDP and TCP 3478, TLS 5349) from anywhere; with TURN the nodes take relayed UDP from any peer on the relay range, which RFC 8656 requires (only ports holding an allocation with a permission for that peer relay anything).'
        : 'The NLB is the public endpoint for client sessions (443) and STUN (UDP 3478) from anywhere, by design.',
    },
  );
}

export function acknowledgeTurnSecretFindings(turnSecret: TurnSecret): void {
  Validations.of(turnSecret).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason:
      'The TURN secret is rotated with an overlap (a second line kept until every credential signed with it has expired; docs/deploy.md#rotating-the-turn-secret); Secrets Manager rotation replaces the value at once and would refuse every credential in use.',
  });
}

export function acknowledgeAuthDataFindings(data: AuthData): void {
  Validations.of(data.keyRingSecret).acknowledge({
    id: 'AwsSolutions-SMG4',
    reason:
      'The auth service rotates its signing keys inside this secret itself (publish lead, then sign, then retire; docs/auth.md); Secrets Manager rotation would replace keys supernodes have not seen yet.',
  });
}

export function acknowledgeAuthFindings(auth: AuthService): void {
  Validations.of(auth.role).acknowledge(
    {
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]',
      reason: SESSION_MANAGER,
    },
    {
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason:
        'cloudwatch:PutMetricData supports no resource-level scoping; a cloudwatch:namespace condition limits it.',
    },
  );
  Validations.of(auth).acknowledge(
    { id: 'AwsSolutions-AS3', reason: SCALING_EVENTS },
    {
      id: 'AwsSolutions-EC23',
      reason: 'The ALB is the public auth API, reachable from anywhere by design; WAF guards it.',
    },
  );
}

export function acknowledgeStackFindings(stack: Stack, logs: AccessLogBucket | undefined): void {
  if (logs) {
    Validations.of(logs).acknowledge({
      id: 'AwsSolutions-S1',
      reason: 'This is the access-log bucket; logging it into itself would loop.',
    });
  } else {
    // Region-agnostic synth: ELB log delivery needs the region's log-writer account, unknown here.
    Validations.of(stack).acknowledge(
      {
        id: 'AwsSolutions-ELB2',
        reason:
          'Access logs need a concrete region (set the homeRegion context); this synth is region-agnostic.',
      },
      {
        id: 'AwsSolutions-S1',
        reason:
          'Access logs need a concrete region (set the homeRegion context); this synth is region-agnostic.',
      },
    );
  }
}
