import { CfnWebACL } from 'aws-cdk-lib/aws-wafv2';
import { Construct } from 'constructs';
import { AUTH_DEFAULTS } from '../defaults';

export interface AuthWafProps {
  /** Name of the web ACL: the `WebACL` dimension of its metrics. */
  readonly name: string;
  /** Requests one IP may make in 5 minutes before WAF answers 429. WAF's minimum is 10. @default 600 */
  readonly requestsPerIpPer5Minutes?: number;
  /** Seconds in the Retry-After header of the WAF 429. @default 60 */
  readonly retryAfterSeconds?: number;
}

/**
 * The auth API's web ACL (regional): a per-IP rate rule answering 429 with Retry-After, before
 * anything else, then the AWS managed rule groups (IP reputation, common rules, known bad inputs).
 * The caller associates it with its load balancer.
 */
export class AuthWaf extends Construct {
  readonly webAcl: CfnWebACL;
  readonly webAclName: string;

  constructor(scope: Construct, id: string, props: AuthWafProps) {
    super(scope, id);
    const rateLimit = props.requestsPerIpPer5Minutes ?? AUTH_DEFAULTS.requestsPerIpPer5Minutes;
    const retryAfter = props.retryAfterSeconds ?? AUTH_DEFAULTS.wafRetryAfterSeconds;
    if (!Number.isInteger(rateLimit) || rateLimit < 10 || rateLimit > 2_000_000_000) {
      throw new Error(`AuthWaf: requestsPerIpPer5Minutes must be 10..2e9, WAF's range (got ${rateLimit})`);
    }
    if (!Number.isInteger(retryAfter) || retryAfter < 1 || retryAfter > 3600) {
      throw new Error(`AuthWaf: retryAfterSeconds must be 1..3600 (got ${retryAfter})`);
    }
    this.webAclName = props.name;
    // 'Default': the web ACL keeps the logical ID it had as a child of AuthService (it is named, so a
    // new ID would collide with itself on replacement).
    this.webAcl = new CfnWebACL(this, 'Default', {
      name: props.name,
      scope: 'REGIONAL',
      defaultAction: { allow: {} },
      visibilityConfig: visibility('supernode-auth'),
      customResponseBodies: {
        'rate-limited': {
          contentType: 'APPLICATION_JSON',
          content: JSON.stringify({ error: 'rate_limited', message: 'Too many requests from this address' }),
        },
      },
      rules: [
        {
          // Per client IP, before anything else: a login storm from one address costs WAF, not us.
          name: 'per-ip-rate',
          priority: 0,
          statement: {
            rateBasedStatement: { aggregateKeyType: 'IP', limit: rateLimit, evaluationWindowSec: 300 },
          },
          action: {
            block: {
              customResponse: {
                responseCode: 429,
                customResponseBodyKey: 'rate-limited',
                responseHeaders: [{ name: 'Retry-After', value: String(retryAfter) }],
              },
            },
          },
          visibilityConfig: visibility('per-ip-rate'),
        },
        managedRule('AWSManagedRulesAmazonIpReputationList', 1),
        managedRule('AWSManagedRulesCommonRuleSet', 2),
        managedRule('AWSManagedRulesKnownBadInputsRuleSet', 3),
      ],
    });
  }
}

function visibility(metricName: string): CfnWebACL.VisibilityConfigProperty {
  return { cloudWatchMetricsEnabled: true, metricName, sampledRequestsEnabled: true };
}

function managedRule(name: string, priority: number): CfnWebACL.RuleProperty {
  return {
    name,
    priority,
    statement: { managedRuleGroupStatement: { vendorName: 'AWS', name } },
    overrideAction: { none: {} },
    visibilityConfig: visibility(name),
  };
}
