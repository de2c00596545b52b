import type { Registry } from 'prom-client';

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
