import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SupernodeSession } from '../../supernode/client/session';
import { REFUSAL_REASONS } from '../../supernode/node/metrics';
import { connectAs, makeTestKeys, startTestNode, type TestKeys, waitFor } from '../helpers/node';

interface PutMetricDataBody {
  Namespace: string;
  MetricData: Array<{
    MetricName: string;
    Value: number;
    Dimensions: Array<{ Name: string; Value: string }>;
  }>;
}

let keys: TestKeys;
let endpoint: Server;
const bodies: PutMetricDataBody[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  keys = await makeTestKeys();
  endpoint = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (String(req.headers['x-amz-target']).endsWith('.PutMetricData')) {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString()) as PutMetricDataBody);
      }
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' }).end('{}');
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_CLOUDWATCH: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
  });
});
afterAll(async () => {
  process.env = savedEnv;
  await new Promise((resolve) => endpoint.close(resolve));
  await keys.cleanup();
});

test('a node with --cloudwatch publishes its figures to the configured endpoint', async () => {
  const running = await startTestNode(keys, {
    cloudwatch: true,
    cloudwatchIntervalMs: 1000,
    autoScalingGroup: 'sn-fleet-test',
  });
  try {
    const session = await connectAs(running, keys, 'alice');
    await waitFor(() => bodies.some((b) => connected(b) === 1), 5000, 'a PutMetricData with one client');
    const body = bodies.find((b) => connected(b) === 1) as PutMetricDataBody;
    expect(body.Namespace).toBe('Supernode');
    const group = { Name: 'AutoScalingGroupName', Value: 'sn-fleet-test' };
    for (const datum of body.MetricData) {
      const byReason = datum.MetricName === 'SessionsRefused' && datum.Dimensions.length === 2;
      expect(datum.Dimensions).toEqual(
        byReason ? [group, { Name: 'Reason', Value: expect.any(String) }] : [group],
      );
    }
    expect(body.MetricData.map((d) => d.MetricName)).toEqual(
      expect.arrayContaining(['ConnectedClients', 'Registrations', 'SessionsRefused', 'RelayedMessages']),
    );
    // Every reason each tick, zeros included, besides the aggregate.
    expect(reasons(body).sort()).toEqual([...REFUSAL_REASONS].sort());

    // One refusal shows in the aggregate and under its reason, in the same tick, once.
    await SupernodeSession.connect({ url: running.url, token: await keys.mint('x', { ttlSec: -100 }) }).catch(
      () => {},
    );
    await waitFor(() => bodies.some((b) => refused(b) === 1), 5000, 'a PutMetricData with the refusal');
    const withRefusal = bodies.find((b) => refused(b) === 1) as PutMetricDataBody;
    expect(refused(withRefusal, 'token_expired')).toBe(1);
    expect(refused(withRefusal, 'full')).toBe(0);
    await waitFor(() => refused(bodies[bodies.length - 1]) === 0, 5000, 'a later tick');
    expect(refused(bodies[bodies.length - 1], 'token_expired')).toBe(0);
    await session.close();
  } finally {
    await running.node.close();
  }
});

function connected(body: PutMetricDataBody): number | undefined {
  return body.MetricData.find((d) => d.MetricName === 'ConnectedClients')?.Value;
}

/** SessionsRefused: the aggregate (no Reason dimension), or the datum of one reason. */
function refused(body: PutMetricDataBody, reason?: string): number | undefined {
  return body.MetricData.find(
    (d) =>
      d.MetricName === 'SessionsRefused' && d.Dimensions.find((x) => x.Name === 'Reason')?.Value === reason,
  )?.Value;
}

function reasons(body: PutMetricDataBody): string[] {
  return body.MetricData.flatMap((d) => d.Dimensions.filter((x) => x.Name === 'Reason').map((x) => x.Value));
}
