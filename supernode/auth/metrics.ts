import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { MetricSample } from '../metrics/cloudwatch';
import { collectProcessMetrics, metricsText } from '../shared/prometheus';
import type { HashPool } from './core/admission';

/** Running totals for CloudWatch, which gets what each tick added (docs/auth.md#cloudwatch). */
export interface LoginTotals {
  admitted: number;
  shed: number;
  succeeded: number;
  refreshes: number;
}

/**
 * Every metric of the auth service, declared here. What the hash pool is doing is measured at the pool:
 * an event-loop check cannot see libuv's threads. /metrics lists the service's own figures first and
 * Node's process defaults after them.
 */
export class AuthMetrics {
  readonly registry = new Registry();
  private readonly processRegistry = new Registry();
  readonly totals: LoginTotals = { admitted: 0, shed: 0, succeeded: 0, refreshes: 0 };
  private reported: LoginTotals = { ...this.totals };
  /** Requests by route and outcome. */
  readonly requests: Counter<'route' | 'outcome'>;
  /** Requests refused before any work, by class and reason. */
  readonly shed: Counter<'class' | 'reason'>;
  /** Refresh requests running now (the cheap class), maintained by the admission gates. */
  cheapInFlight = 0;

  constructor(private readonly pool: HashPool) {
    const registers = [this.registry];
    this.requests = new Counter({
      name: 'auth_requests_total',
      help: 'Requests by route and outcome',
      labelNames: ['route', 'outcome'],
      registers,
    });
    this.shed = new Counter({
      name: 'auth_shed_total',
      help: 'Requests refused before any work, by class and reason',
      labelNames: ['class', 'reason'],
      registers,
    });
    const poolWait = new Histogram({
      name: 'auth_hash_pool_wait_seconds',
      help: 'Time logins waited for a hash slot',
      buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
      registers,
    });
    pool.onWait = (ms: number) => poolWait.observe(ms / 1000);
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('auth_hash_pool_in_flight', 'Hashes running', () => pool.stats.inFlight);
    gauge('auth_hash_pool_queued', 'Logins waiting for a hash slot', () => pool.stats.queued);
    gauge('auth_hash_run_seconds_ewma', 'Recent hash duration', () => pool.stats.runMsEwma / 1000);
    // Counted at scrape time from the pool's totals; their ratio over an interval is the mean hash time.
    const counter = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers,
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    counter('auth_hash_runs_total', 'Hashes completed', () => pool.stats.completed);
    counter(
      'auth_hash_run_seconds_total',
      'Time spent in completed hashes',
      () => pool.stats.runMsTotal / 1000,
    );
    gauge('auth_cheap_in_flight', 'Refresh requests running', () => this.cheapInFlight);
    collectProcessMetrics(this.processRegistry);
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** The Prometheus text: the service's metrics, then the process defaults. */
  async text(): Promise<string> {
    return metricsText([this.registry, this.processRegistry]);
  }

  /** Counters as the change since the last call, the queue depth as it is. */
  cloudWatchSamples(): MetricSample[] {
    const before = this.reported;
    this.reported = { ...this.totals };
    const added = (key: keyof LoginTotals) => this.reported[key] - before[key];
    return [
      { name: 'LoginsAdmitted', value: added('admitted'), unit: 'Count' },
      { name: 'LoginsShed', value: added('shed'), unit: 'Count' },
      { name: 'LoginsSucceeded', value: added('succeeded'), unit: 'Count' },
      { name: 'TokenRefreshes', value: added('refreshes'), unit: 'Count' },
      { name: 'HashQueueDepth', value: this.pool.stats.queued, unit: 'Count' },
    ];
  }
}
