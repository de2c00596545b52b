import { Duration, Stack } from 'aws-cdk-lib';
import {
  Alarm,
  AlarmStatusWidget,
  ComparisonOperator,
  Dashboard,
  GraphWidget,
  type IMetric,
  MathExpression,
  Metric,
  TextWidget,
  TreatMissingData,
} from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { HttpCodeElb, HttpCodeTarget } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { TURN_DEFAULTS } from '../defaults';
import type { AuthService } from './auth-service';
import { METRIC_NAMESPACE } from './runtime';
import type { SupernodeFleet } from './supernode-fleet';

export interface ObservabilityProps {
  /** Fleets in this stack: each gets its alarms and its lines on the dashboard. */
  readonly fleets: SupernodeFleet[];
  /** The auth service, when this stack holds it. */
  readonly auth?: AuthService;
  /** Fleets of other regions, shown on this dashboard through cross-region SEARCH. @default [] */
  readonly remoteFleetRegions?: string[];
  /** Build the dashboard here (one per tier, in the home region). @default true when `auth` is set */
  readonly dashboard?: boolean;
  /** Subscribed to the alarm topic (confirm the e-mail AWS sends). @default - no subscription */
  readonly alarmEmail?: string;
  /** Node CPU above this for 5 minutes alarms. @default 80 */
  readonly nodeCpuPercent?: number;
  /** A node holding more than this many clients alarms. @default - 1.5 x each fleet's clientsPerNode */
  readonly clientsPerNodeAlarm?: number;
  /** Share of login attempts shed above this for 5 minutes alarms. @default 0.5 */
  readonly shedRatio?: number;
  /** Load-balancer-generated 5xx per minute (auth unreachable or timing out) that alarm. @default 5 */
  readonly auth5xxPerMinute?: number;
  /** The fleets of `remoteFleetRegions` serve TURN: their TURN lines on the dashboard. @default false */
  readonly remoteTurn?: boolean;
  /** A node of a TURN fleet holding more allocations than this for 5 minutes alarms. @default 8000 */
  readonly turnAllocationsPerNodeAlarm?: number;
}

/** What the nodes publish about TURN (per node, dimension AutoScalingGroupName, once a minute). */
export const TURN_METRICS = { allocations: 'TurnAllocations', relayedBytes: 'TurnRelayedBytes' } as const;

/**
 * What an operator watches: alarms on the floor, CPU, connections per node, login shedding and
 * auth errors, all to one SNS topic, and a dashboard of every region's fleet and the auth service.
 */
export class Observability extends Construct {
  readonly alarmTopic: Topic;
  readonly alarms: Alarm[] = [];
  readonly dashboard: Dashboard | undefined;

  constructor(scope: Construct, id: string, props: ObservabilityProps) {
    super(scope, id);
    const shedRatio = props.shedRatio ?? 0.5;
    const cpu = props.nodeCpuPercent ?? 80;
    if (!(shedRatio > 0 && shedRatio < 1))
      throw new Error(`Observability: shedRatio must be in (0, 1) (got ${shedRatio})`);
    if (!(cpu > 0 && cpu <= 100))
      throw new Error(`Observability: nodeCpuPercent must be in (0, 100] (got ${cpu})`);

    this.alarmTopic = new Topic(this, 'AlarmTopic', {
      displayName: 'Supernode Tier alarms',
      enforceSSL: true,
    });
    if (props.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(props.alarmEmail));
    const action = new SnsAction(this.alarmTopic);
    const alarm = (created: Alarm) => {
      created.addAlarmAction(action);
      created.addOkAction(action);
      this.alarms.push(created);
      return created;
    };

    const fleetLines: {
      healthy: IMetric[];
      clients: IMetric[];
      refused: IMetric[];
      relayed: IMetric[];
      cpu: IMetric[];
      turnAllocations: IMetric[];
      turnBytes: IMetric[];
    } = {
      healthy: [],
      clients: [],
      refused: [],
      relayed: [],
      cpu: [],
      turnAllocations: [],
      turnBytes: [],
    };
    const turnAllocationsLimit = props.turnAllocationsPerNodeAlarm ?? TURN_DEFAULTS.allocationsPerNodeAlarm;
    props.fleets.forEach((fleet, index) => {
      const prefix = props.fleets.length > 1 ? `Fleet${index}` : 'Fleet';
      const group = fleet.group.autoScalingGroupName;
      const healthy = fleet.sessionTargets.metrics.healthyHostCount({
        statistic: 'Minimum',
        period: Duration.minutes(1),
        label: 'Healthy nodes',
      });
      alarm(
        new Alarm(this, `${prefix}HealthyNodesBelowFloor`, {
          alarmDescription: `Fewer healthy supernodes than the floor (${fleet.floor}). Runbook: docs/deploy.md#healthy-nodes-below-floor`,
          metric: healthy,
          threshold: fleet.floor,
          comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
          evaluationPeriods: 3,
          // No data means no healthy target reported at all: the worst case, not a pause.
          treatMissingData: TreatMissingData.BREACHING,
        }),
      );
      const nodeCpu = new Metric({
        namespace: 'AWS/EC2',
        metricName: 'CPUUtilization',
        dimensionsMap: { AutoScalingGroupName: group },
        statistic: 'Maximum',
        period: Duration.minutes(1),
        label: 'Busiest node CPU %',
      });
      alarm(
        new Alarm(this, `${prefix}NodeCpuHigh`, {
          alarmDescription: `A supernode above ${cpu}% CPU for 5 minutes. Runbook: docs/deploy.md#node-cpu-high`,
          metric: nodeCpu,
          threshold: cpu,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 5,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
      const busiest = new Metric({
        namespace: METRIC_NAMESPACE,
        metricName: 'ConnectedClients',
        dimensionsMap: { AutoScalingGroupName: group },
        statistic: 'Maximum',
        period: Duration.minutes(1),
        label: 'Busiest node clients',
      });
      const clientsLimit = props.clientsPerNodeAlarm ?? Math.round(fleet.clientsPerNode * 1.5);
      alarm(
        new Alarm(this, `${prefix}ConnectionsPerNodeHigh`, {
          alarmDescription: `A supernode holds more than ${clientsLimit} clients for 5 minutes: scale-out is not keeping up. Runbook: docs/deploy.md#connections-per-node-high`,
          metric: busiest,
          threshold: clientsLimit,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 5,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
      if (fleet.turnUrls) {
        const turnMetric = (metricName: string, statistic: string, label: string) =>
          new Metric({
            namespace: METRIC_NAMESPACE,
            metricName,
            dimensionsMap: { AutoScalingGroupName: group },
            statistic,
            period: Duration.minutes(1),
            label,
          });
        alarm(
          new Alarm(this, `${prefix}TurnAllocationsHigh`, {
            alarmDescription: `A supernode holds more than ${turnAllocationsLimit} TURN allocations for 5 minutes: near its limit, new ones get 508. Runbook: docs/deploy.md#turn-allocations-high`,
            metric: turnMetric(TURN_METRICS.allocations, 'Maximum', 'Busiest node TURN allocations'),
            threshold: turnAllocationsLimit,
            comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
            evaluationPeriods: 5,
            treatMissingData: TreatMissingData.NOT_BREACHING,
          }),
        );
        fleetLines.turnAllocations.push(turnMetric(TURN_METRICS.allocations, 'Sum', 'TURN allocations'));
        fleetLines.turnBytes.push(turnMetric(TURN_METRICS.relayedBytes, 'Sum', 'TURN relayed bytes / min'));
      }
      // The release gate fails an instance refresh on its own; this tells the operator why.
      if (fleet.service.releaseGateAlarm) alarm(fleet.service.releaseGateAlarm);
      fleetLines.healthy.push(healthy);
      fleetLines.cpu.push(nodeCpu);
      fleetLines.clients.push(
        new Metric({
          namespace: METRIC_NAMESPACE,
          metricName: 'ConnectedClients',
          dimensionsMap: { AutoScalingGroupName: group },
          statistic: 'Sum',
          period: Duration.minutes(1),
          label: 'Connected clients',
        }),
      );
      fleetLines.relayed.push(
        new Metric({
          namespace: METRIC_NAMESPACE,
          metricName: 'RelayedMessages',
          dimensionsMap: { AutoScalingGroupName: group },
          statistic: 'Sum',
          period: Duration.minutes(1),
          label: 'Relayed messages / min',
        }),
      );
      fleetLines.refused.push(
        new MathExpression({
          expression: `SEARCH('{${METRIC_NAMESPACE},AutoScalingGroupName,Reason} MetricName="SessionsRefused"', 'Sum', 60)`,
          usingMetrics: {},
          label: 'Refused',
          period: Duration.minutes(1),
        }),
      );
    });
    for (const region of props.remoteFleetRegions ?? []) {
      const search = (metricName: string, dimensions: string, statistic: string) =>
        new MathExpression({
          expression: `SEARCH('{${METRIC_NAMESPACE},${dimensions}} MetricName="${metricName}"', '${statistic}', 60)`,
          usingMetrics: {},
          searchRegion: region,
          label: region,
          period: Duration.minutes(1),
        });
      // Each ready node reports Ready=1 every minute: the sum is the region's healthy count.
      fleetLines.healthy.push(search('Ready', 'AutoScalingGroupName', 'Sum'));
      fleetLines.clients.push(search('ConnectedClients', 'AutoScalingGroupName', 'Sum'));
      fleetLines.refused.push(search('SessionsRefused', 'AutoScalingGroupName,Reason', 'Sum'));
      fleetLines.relayed.push(search('RelayedMessages', 'AutoScalingGroupName', 'Sum'));
      if (props.remoteTurn) {
        fleetLines.turnAllocations.push(search(TURN_METRICS.allocations, 'AutoScalingGroupName', 'Sum'));
        fleetLines.turnBytes.push(search(TURN_METRICS.relayedBytes, 'AutoScalingGroupName', 'Sum'));
      }
    }

    const auth = props.auth;
    const authLines: { logins: IMetric[]; latency: IMetric[]; codes: IMetric[] } = {
      logins: [],
      latency: [],
      codes: [],
    };
    if (auth) {
      const authMetric = (metricName: string, label: string) =>
        new Metric({
          namespace: METRIC_NAMESPACE,
          metricName,
          dimensionsMap: { AutoScalingGroupName: auth.group.autoScalingGroupName },
          statistic: 'Sum',
          period: Duration.minutes(1),
          label,
        });
      const admitted = authMetric('LoginsAdmitted', 'Logins admitted');
      const shed = authMetric('LoginsShed', 'Logins shed');
      alarm(
        new Alarm(this, 'LoginShedRateHigh', {
          alarmDescription: `More than ${Math.round(shedRatio * 100)}% of logins shed for 5 minutes: a login storm or too few auth instances. Runbook: docs/deploy.md#login-shed-rate-high`,
          metric: new MathExpression({
            expression: 'IF(admitted + shed > 0, shed / (admitted + shed), 0)',
            usingMetrics: { admitted, shed },
            label: 'Shed ratio',
            period: Duration.minutes(1),
          }),
          threshold: shedRatio,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 5,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
      const elb5xx = auth.loadBalancer.metrics.httpCodeElb(HttpCodeElb.ELB_5XX_COUNT, {
        period: Duration.minutes(1),
        label: 'ALB 5xx (no healthy target, timeout)',
      });
      alarm(
        new Alarm(this, 'Auth5xx', {
          alarmDescription: `The auth ALB answered 5xx itself (targets down or timing out) for 3 minutes. Runbook: docs/deploy.md#auth-5xx`,
          metric: elb5xx,
          threshold: props.auth5xxPerMinute ?? 5,
          comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 3,
          treatMissingData: TreatMissingData.NOT_BREACHING,
        }),
      );
      authLines.logins.push(admitted, shed);
      authLines.latency.push(
        auth.loadBalancer.metrics.targetResponseTime({
          statistic: 'p50',
          period: Duration.minutes(1),
          label: 'p50',
        }),
        auth.loadBalancer.metrics.targetResponseTime({
          statistic: 'p99',
          period: Duration.minutes(1),
          label: 'p99',
        }),
      );
      authLines.codes.push(
        auth.loadBalancer.metrics.httpCodeTarget(HttpCodeTarget.TARGET_4XX_COUNT, {
          period: Duration.minutes(1),
          label: 'Target 4xx',
        }),
        auth.loadBalancer.metrics.httpCodeTarget(HttpCodeTarget.TARGET_5XX_COUNT, {
          period: Duration.minutes(1),
          label: 'Target 5xx (503 = shed by design)',
        }),
        elb5xx,
        new Metric({
          namespace: 'AWS/WAFV2',
          metricName: 'BlockedRequests',
          dimensionsMap: { WebACL: auth.webAclName, Rule: 'per-ip-rate', Region: Stack.of(this).region },
          statistic: 'Sum',
          period: Duration.minutes(1),
          label: 'WAF 429 (per-IP rate)',
        }),
      );
    }

    if (props.dashboard ?? auth !== undefined) {
      const graph = (title: string, left: IMetric[], width = 8) =>
        new GraphWidget({ title, left, width, height: 6, period: Duration.minutes(1) });
      this.dashboard = new Dashboard(this, 'Dashboard', { defaultInterval: Duration.hours(3) });
      this.dashboard.addWidgets(
        new TextWidget({
          markdown:
            '# Supernode Tier\nFleets per region and the auth service. Alarms and runbooks: docs/deploy.md.',
          width: 24,
          height: 2,
        }),
      );
      this.dashboard.addWidgets(
        graph('Healthy nodes per region', fleetLines.healthy),
        graph('Connected clients', fleetLines.clients),
        graph('Sessions refused by reason', fleetLines.refused),
      );
      this.dashboard.addWidgets(
        graph('Relay rate', fleetLines.relayed),
        graph('Node CPU (busiest)', fleetLines.cpu),
        new AlarmStatusWidget({ title: 'Alarms', alarms: this.alarms, width: 8, height: 6 }),
      );
      if (fleetLines.turnAllocations.length > 0) {
        this.dashboard.addWidgets(
          graph('TURN allocations', fleetLines.turnAllocations, 12),
          graph('TURN relayed bytes / min', fleetLines.turnBytes, 12),
        );
      }
      if (auth) {
        this.dashboard.addWidgets(
          graph('Logins admitted and shed', authLines.logins),
          graph('Auth latency (ALB target response, s)', authLines.latency),
          graph('Auth 4xx / 5xx', authLines.codes),
        );
      }
    }
  }
}
