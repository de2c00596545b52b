import { CfnOutput, Stack, type StackProps } from 'aws-cdk-lib';
import { Topic } from 'aws-cdk-lib/aws-sns';
import type { Construct } from 'constructs';

/**
 * The tier's stack: it only wires constructs together. For now it holds the alarm topic that the
 * observability construct will publish to; the fleet and auth service arrive with the CDK issue.
 */
export class SupernodeTierStack extends Stack {
  /** Where every alarm of the tier goes. */
  readonly alarmTopic: Topic;

  constructor(scope: Construct, id: string, props?: StackProps) {
    super(scope, id, props);
    // Alarms of the tier (healthy nodes below floor, login shed rate, auth errors) go here.
    this.alarmTopic = new Topic(this, 'AlarmTopic', {
      displayName: 'Supernode Tier alarms',
      enforceSSL: true,
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.alarmTopic.topicArn,
      description:
        'Subscribe to receive the tier alarms: aws sns subscribe --topic-arn <this> --protocol email ...',
    });
  }
}
