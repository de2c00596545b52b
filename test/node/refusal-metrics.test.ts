import { NodeMetrics, REFUSAL_REASONS } from '../../supernode/node/metrics';

function metrics(): NodeMetrics {
  return new NodeMetrics({
    sessions: () => 0,
    pendingConnections: () => 0,
    users: () => 0,
    capacity: () => 100,
    ready: () => true,
  });
}

function refused(samples: ReturnType<NodeMetrics['cloudWatchSamples']>, reason?: string): number | undefined {
  return samples.find((s) => s.name === 'SessionsRefused' && s.dimensions?.Reason === reason)?.value;
}

describe('SessionsRefused for CloudWatch', () => {
  const all: NodeMetrics[] = [];
  afterAll(() => {
    for (const m of all) m.stop();
  });

  it('publishes the aggregate and one datum per reason, each the change since the last tick', () => {
    const m = metrics();
    all.push(m);
    m.stats.refuse('full');
    m.stats.refuse('full');
    m.stats.refuse('token_expired');

    const first = m.cloudWatchSamples();
    expect(refused(first)).toBe(3);
    expect(refused(first, 'full')).toBe(2);
    expect(refused(first, 'token_expired')).toBe(1);
    expect(refused(first, 'draining')).toBe(0);
    const byReason = first.filter((s) => s.name === 'SessionsRefused' && s.dimensions);
    expect(byReason.map((s) => s.dimensions?.Reason)).toEqual([...REFUSAL_REASONS]);
    expect(byReason.every((s) => s.unit === 'Count' && Object.keys(s.dimensions ?? {}).length === 1)).toBe(
      true,
    );

    m.stats.refuse('draining');
    const second = m.cloudWatchSamples();
    expect(refused(second)).toBe(1);
    expect(refused(second, 'draining')).toBe(1);
    expect(refused(second, 'full')).toBe(0);
    expect(refused(second, 'token_expired')).toBe(0);
  });

  it('the per-reason datums add up to the aggregate', () => {
    const m = metrics();
    all.push(m);
    for (const [i, reason] of REFUSAL_REASONS.entries()) for (let n = 0; n <= i; n++) m.stats.refuse(reason);
    const samples = m.cloudWatchSamples();
    const sum = samples
      .filter((s) => s.name === 'SessionsRefused' && s.dimensions)
      .reduce((total, s) => total + s.value, 0);
    expect(sum).toBe(refused(samples));
  });
});
