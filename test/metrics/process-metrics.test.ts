import { closeSync, openSync, readdirSync } from 'node:fs';
import { Registry } from 'prom-client';
import { collectProcessMetrics, countOpenFds, sampleOf } from '../../supernode/shared/prometheus';

test('open file descriptors are counted as readdir counts them', async () => {
  const extra = Array.from({ length: 50 }, () => openSync('/dev/null', 'r'));
  try {
    const expected = readdirSync('/proc/self/fd').length - 1;
    // Other tests' sockets in this worker may come and go meanwhile: a small tolerance.
    expect(Math.abs((await countOpenFds()) - expected)).toBeLessThanOrEqual(3);
  } finally {
    for (const fd of extra) closeSync(fd);
  }
});

test('process metrics keep the defaults except the ones that walk every handle on each scrape', async () => {
  const registry = new Registry();
  collectProcessMetrics(registry);
  const text = await registry.metrics();
  const value = Number(/^process_open_fds (\d+)$/m.exec(text)?.[1]);
  expect(value).toBeGreaterThan(2);
  expect(text).toMatch(/^nodejs_eventloop_lag_p99_seconds /m);
  expect(text).toMatch(/^process_cpu_seconds_total /m);
  expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
  for (const name of ['nodejs_active_handles', 'nodejs_active_handles_total', 'nodejs_active_resources'])
    expect(text).not.toMatch(new RegExp(`^${name}[ {]`, 'm'));
});

test('sampleOf reads an unlabelled sample, not a labelled one or a longer name', () => {
  const text = 'b_total 3\nb{x="1"} 2\nb 4.5\n';
  expect(sampleOf(text, 'b')).toBe(4.5);
  expect(sampleOf(text, 'b_total')).toBe(3);
  expect(sampleOf(text, 'c')).toBeNaN();
});
