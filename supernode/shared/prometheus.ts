import { opendir } from 'node:fs/promises';
import { collectDefaultMetrics, Gauge, type Registry } from 'prom-client';

/**
 * prom-client's defaults that walk every handle or file descriptor synchronously on each scrape. With
 * 17,000 sockets they held the event loop 41 ms a scrape on the development machine (open fds 18 ms,
 * handles 17 ms, resources 6 ms), so a 100,000-session node would stall for a quarter of a second at
 * every scrape. Open fds stay, counted without blocking; the handle and resource breakdowns go (the
 * product's own gauges count sessions, connections and allocations).
 */
const BLOCKING_DEFAULTS = [
  'process_open_fds',
  'nodejs_active_handles',
  'nodejs_active_handles_total',
  'nodejs_active_resources',
  'nodejs_active_resources_total',
];

/** The value of an unlabelled sample in Prometheus text (`name value`); NaN when it is not there. */
export function sampleOf(text: string, name: string): number {
  const match = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
  return match ? Number(match[1]) : Number.NaN;
}

/** Open file descriptors, read from /proc a batch at a time between other work. */
export async function countOpenFds(): Promise<number> {
  const dir = await opendir('/proc/self/fd', { bufferSize: 1024 });
  let count = 0;
  for await (const _ of dir) count++;
  return count - 1; // the directory's own descriptor, closed again once iterated
}

/** Node's process metrics (prom-client's defaults) without the ones that block on every scrape. */
export function collectProcessMetrics(register: Registry): void {
  // prom-client samples the loop every 10 ms by default, which makes an idle p50 read 10 ms too.
  collectDefaultMetrics({ register, eventLoopMonitoringPrecision: 1 });
  for (const name of BLOCKING_DEFAULTS) register.removeSingleMetric(name);
  if (process.platform !== 'linux') return;
  new Gauge({
    name: 'process_open_fds',
    help: 'Number of open file descriptors.',
    registers: [register],
    async collect() {
      try {
        this.set(await countOpenFds());
      } catch {
        // /proc unreadable: the gauge keeps its last value
      }
    },
  });
}

/**
 * The Prometheus text of several registries, in the order given: a service lists its own figures
 * first and Node's process defaults last, so a person reading /metrics finds what matters at the top.
 */
export async function metricsText(registries: Registry[]): Promise<string> {
  const parts = await Promise.all(registries.map((registry) => registry.metrics()));
  return parts
    .filter((part) => part.length > 0)
    .map((part) => (part.endsWith('\n') ? part : `${part}\n`))
    .join('');
}
