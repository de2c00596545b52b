import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import {
  CloudWatchClient,
  type MetricDatum,
  PutMetricDataCommand,
  type PutMetricDataCommandInput,
} from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import {
  CloudWatchPublisher,
  type CloudWatchPublisherOptions,
  MAX_REQUEST_BYTES,
  type MetricSample,
} from '../../supernode/metrics/cloudwatch';
import { createLogger } from '../../supernode/shared/log';

const cw = mockClient(CloudWatchClient);

function fakeLog() {
  return { warn: jest.fn<void, [object, string]>(), debug: jest.fn<void, [object, string]>() };
}

function publisher(overrides: Partial<CloudWatchPublisherOptions> = {}) {
  const log = fakeLog();
  const p = new CloudWatchPublisher({
    dimensions: { AutoScalingGroupName: 'sn-fleet' },
    intervalMs: 1000,
    collect: () => [{ name: 'Peers', value: 3, unit: 'Count' }],
    client: new CloudWatchClient({ region: 'us-east-1' }),
    log,
    ...overrides,
  });
  return { p, log };
}

function sentInputs(): PutMetricDataCommandInput[] {
  return cw.commandCalls(PutMetricDataCommand).map((call) => call.args[0].input);
}

function deferred<T>() {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

function samples(count: number): MetricSample[] {
  return Array.from({ length: count }, (_, i) => ({ name: `M${i}`, value: i, unit: 'Count' }));
}

beforeEach(() => {
  cw.reset();
  cw.on(PutMetricDataCommand).resolves({ $metadata: { httpStatusCode: 200 } });
});

afterEach(() => {
  jest.useRealTimers();
});

describe('CloudWatchPublisher with a mocked client', () => {
  it('sends namespace, AutoScalingGroupName dimension, units, values, timestamp and resolution', async () => {
    const before = Date.now();
    const { p } = publisher({
      collect: () => [
        { name: 'ConnectedPeers', value: 42, unit: 'Count' },
        { name: 'RelayLatency', value: 12.5, unit: 'Milliseconds' },
      ],
    });

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 2, failed: 0 });

    const [input] = sentInputs();
    expect(input.Namespace).toBe('Supernode');
    expect(input.MetricData).toHaveLength(2);
    const [peers, latency] = input.MetricData as MetricDatum[];
    expect(peers).toMatchObject({
      MetricName: 'ConnectedPeers',
      Value: 42,
      Unit: 'Count',
      StorageResolution: 60,
      Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'sn-fleet' }],
    });
    expect(latency).toMatchObject({ MetricName: 'RelayLatency', Value: 12.5, Unit: 'Milliseconds' });
    expect(peers.Timestamp).toBeInstanceOf(Date);
    expect(peers.Timestamp?.getTime()).toBeGreaterThanOrEqual(before);
    expect(p.stats).toEqual({ published: 2, failures: 0, skippedOverlaps: 0 });
  });

  it('uses a custom namespace when given', async () => {
    const { p } = publisher({ namespace: 'Supernode/Staging' });
    await p.publishOnce();
    expect(sentInputs()[0].Namespace).toBe('Supernode/Staging');
  });

  it('splits 2,500 samples into 3 requests of at most 1000', async () => {
    const { p } = publisher({ collect: () => samples(2500) });

    await expect(p.publishOnce()).resolves.toEqual({ requests: 3, datums: 2500, failed: 0 });

    const sizes = sentInputs().map((input) => input.MetricData?.length);
    expect(sizes).toEqual([1000, 1000, 500]);
    const names = sentInputs().flatMap((input) => (input.MetricData ?? []).map((d) => d.MetricName));
    expect(new Set(names).size).toBe(2500);
  });

  it('splits by payload size when datums are large, keeping each request under 1 MB', async () => {
    // 30 dimensions of 1000 characters: ~30 KB per datum, so 100 of them are ~3 MB.
    const dimensions = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`D${i}`, 'v'.repeat(1000)]));
    const { p } = publisher({ dimensions, collect: () => samples(100) });

    const result = await p.publishOnce();

    expect(result.datums).toBe(100);
    expect(result.requests).toBeGreaterThan(3);
    for (const input of sentInputs()) {
      expect(Buffer.byteLength(JSON.stringify(input))).toBeLessThan(MAX_REQUEST_BYTES);
    }
  });

  it('drops NaN and Infinity with one warning and sends the rest', async () => {
    const { p, log } = publisher({
      collect: () => [
        { name: 'Good', value: 1, unit: 'Count' },
        { name: 'NotANumber', value: Number.NaN, unit: 'Count' },
        { name: 'Infinite', value: Number.POSITIVE_INFINITY, unit: 'Count' },
      ],
    });

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 1, failed: 0 });

    expect(sentInputs()[0].MetricData?.map((d) => d.MetricName)).toEqual(['Good']);
    expect(log.warn).toHaveBeenCalledTimes(1);
    const [fields] = log.warn.mock.calls[0];
    expect(fields).toMatchObject({ dropped: 2 });
    expect(JSON.stringify(fields)).toContain('NotANumber');
    expect(JSON.stringify(fields)).toContain('Infinite');
  });

  it('sends nothing when every sample is invalid', async () => {
    const { p } = publisher({ collect: () => [{ name: 'Bad', value: Number.NaN, unit: 'Count' }] });
    await expect(p.publishOnce()).resolves.toEqual({ requests: 0, datums: 0, failed: 0 });
    expect(cw.calls()).toHaveLength(0);
  });

  it('counts and logs a rejected call without leaking error internals, then publishes again', async () => {
    const error = Object.assign(new Error('Rate exceeded'), {
      name: 'ThrottlingException',
      $metadata: { httpStatusCode: 400, requestId: 'req-1' },
      // Stands in for the raw response/config an SDK error drags along.
      $response: { headers: { authorization: 'AWS4-HMAC-SHA256 Credential=AKIDSECRET' } },
    });
    cw.on(PutMetricDataCommand).rejectsOnce(error).resolves({ $metadata: {} });
    const { p, log } = publisher();

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 0, failed: 1 });
    expect(p.stats.failures).toBe(1);
    expect(p.stats.lastError).toBe('ThrottlingException: Rate exceeded');
    expect(log.warn).toHaveBeenCalledTimes(1);
    const [fields, msg] = log.warn.mock.calls[0];
    expect(msg).toMatch(/PutMetricData failed/);
    expect(fields).toMatchObject({
      error: { name: 'ThrottlingException', message: 'Rate exceeded', statusCode: 400, requestId: 'req-1' },
    });
    expect(JSON.stringify(fields)).not.toContain('AKIDSECRET');

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 1, failed: 0 });
    expect(p.stats).toMatchObject({ published: 1, failures: 1 });
  });

  it('treats a throwing collect() as a failure, not a crash', async () => {
    const { p, log } = publisher({
      collect: () => {
        throw new TypeError('gauge broke');
      },
    });
    await expect(p.publishOnce()).resolves.toEqual({ requests: 0, datums: 0, failed: 0 });
    expect(p.stats).toMatchObject({ failures: 1, lastError: 'TypeError: gauge broke' });
    expect(log.warn).toHaveBeenCalledWith(
      expect.objectContaining({ error: expect.anything() }),
      expect.any(String),
    );
    expect(cw.calls()).toHaveLength(0);
  });

  it('aborts a hanging call after requestTimeoutMs and does not block stop()', async () => {
    cw.on(PutMetricDataCommand).callsFake(() => new Promise(() => {}));
    const { p, log } = publisher({ requestTimeoutMs: 100 });

    const started = Date.now();
    const publishing = p.publishOnce();
    await p.stop();
    const elapsed = Date.now() - started;

    await expect(publishing).resolves.toEqual({ requests: 1, datums: 0, failed: 1 });
    expect(elapsed).toBeGreaterThanOrEqual(90);
    expect(elapsed).toBeLessThan(2000);
    expect(p.stats.lastError).toMatch(/^TimeoutError: PutMetricData timed out after 100 ms/);
    expect(log.warn).toHaveBeenCalledWith(
      expect.objectContaining({ error: expect.objectContaining({ name: 'TimeoutError' }) }),
      expect.any(String),
    );
  });

  it('skips ticks while the previous publish is in flight', async () => {
    jest.useFakeTimers();
    const pending = deferred<{ $metadata: object }>();
    cw.on(PutMetricDataCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves({ $metadata: {} });
    const { p } = publisher({ intervalMs: 1000 });
    p.start();

    await jest.advanceTimersByTimeAsync(1000);
    expect(cw.calls()).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(2000);
    expect(cw.calls()).toHaveLength(1);
    expect(p.stats.skippedOverlaps).toBe(2);

    pending.resolve({ $metadata: {} });
    await jest.advanceTimersByTimeAsync(1000);
    expect(cw.calls()).toHaveLength(2);
    expect(p.stats).toMatchObject({ published: 2, skippedOverlaps: 2, failures: 0 });
    await p.stop();
  });

  it('stop() prevents further sends, from the timer and from publishOnce()', async () => {
    jest.useFakeTimers();
    const collect = jest.fn(() => [{ name: 'Peers', value: 3, unit: 'Count' as const }]);
    const { p } = publisher({ intervalMs: 1000, collect });
    p.start();
    await jest.advanceTimersByTimeAsync(1000);
    expect(cw.calls()).toHaveLength(1);

    await p.stop();
    expect(jest.getTimerCount()).toBe(0);
    await jest.advanceTimersByTimeAsync(10_000);
    await expect(p.publishOnce()).resolves.toEqual({ requests: 0, datums: 0, failed: 0 });
    expect(cw.calls()).toHaveLength(1);
    expect(collect).toHaveBeenCalledTimes(1);
    expect(() => p.start()).toThrow(/stopped/);
  });

  it('stop() during a multi-request tick waits for the call in flight and sends no further batch', async () => {
    const pending = deferred<{ $metadata: object }>();
    cw.on(PutMetricDataCommand)
      .callsFakeOnce(() => pending.promise)
      .resolves({ $metadata: {} });
    const { p } = publisher({ collect: () => samples(2500) });

    const publishing = p.publishOnce();
    await new Promise((r) => setImmediate(r));
    let stopped = false;
    const stopping = p.stop().then(() => {
      stopped = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(stopped).toBe(false);

    pending.resolve({ $metadata: {} });
    await stopping;
    await expect(publishing).resolves.toEqual({ requests: 1, datums: 1000, failed: 0 });
    expect(cw.calls()).toHaveLength(1);
  });

  it("adds a sample's own dimensions to the publisher's, a same name replacing", async () => {
    const { p } = publisher({
      collect: (): MetricSample[] => [
        { name: 'SessionsRefused', value: 5, unit: 'Count' },
        { name: 'SessionsRefused', value: 2, unit: 'Count', dimensions: { Reason: 'full' } },
        { name: 'Peers', value: 1, unit: 'Count', dimensions: { AutoScalingGroupName: 'other', Az: 'a' } },
      ],
    });

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 3, failed: 0 });

    const [aggregate, byReason, replaced] = sentInputs()[0].MetricData as MetricDatum[];
    expect(aggregate.Dimensions).toEqual([{ Name: 'AutoScalingGroupName', Value: 'sn-fleet' }]);
    expect(byReason).toMatchObject({
      MetricName: 'SessionsRefused',
      Value: 2,
      Dimensions: [
        { Name: 'AutoScalingGroupName', Value: 'sn-fleet' },
        { Name: 'Reason', Value: 'full' },
      ],
    });
    expect(replaced.Dimensions).toEqual([
      { Name: 'AutoScalingGroupName', Value: 'other' },
      { Name: 'Az', Value: 'a' },
    ]);
  });

  it('drops a sample with bad or too many dimensions, with the one warning of the tick', async () => {
    const tooMany = Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`D${i}`, 'x']));
    const { p, log } = publisher({
      collect: () => [
        { name: 'Good', value: 1, unit: 'Count', dimensions: { Reason: 'full' } },
        { name: 'EmptyValue', value: 1, unit: 'Count', dimensions: { Reason: '' } },
        { name: 'BadName', value: 1, unit: 'Count', dimensions: { ':Reason': 'x' } },
        { name: 'TooMany', value: 1, unit: 'Count', dimensions: tooMany },
      ],
    });

    await expect(p.publishOnce()).resolves.toEqual({ requests: 1, datums: 1, failed: 0 });

    expect(sentInputs()[0].MetricData?.map((d) => d.MetricName)).toEqual(['Good']);
    expect(log.warn).toHaveBeenCalledTimes(1);
    const [fields] = log.warn.mock.calls[0];
    expect(fields).toMatchObject({ dropped: 3 });
    expect(JSON.stringify(fields)).toContain('more than 30 dimensions');
  });

  it('validates its options', () => {
    expect(() => publisher({ dimensions: {} })).toThrow(/1\.\.30/);
    const tooMany = Object.fromEntries(Array.from({ length: 31 }, (_, i) => [`D${i}`, 'x']));
    expect(() => publisher({ dimensions: tooMany })).toThrow(/1\.\.30/);
    expect(() => publisher({ dimensions: { AutoScalingGroupName: '' } })).toThrow(/value/);
    expect(() => publisher({ namespace: 'AWS/EC2' })).toThrow(/AWS\//);
    expect(() => publisher({ intervalMs: 999 })).toThrow(/intervalMs/);
    expect(() => publisher({ requestTimeoutMs: 0 })).toThrow(/requestTimeoutMs/);
  });
});

describe('CloudWatchPublisher over real HTTP (default client)', () => {
  const ENV_KEYS = [
    'AWS_ENDPOINT_URL_CLOUDWATCH',
    'AWS_ENDPOINT_URL',
    'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS',
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_SESSION_TOKEN',
    'AWS_REGION',
    'AWS_PROFILE',
    'AWS_EC2_METADATA_DISABLED',
  ];
  let savedEnv: Record<string, string | undefined>;
  let server: http.Server | undefined;

  interface Recorded {
    method?: string;
    url?: string;
    headers: http.IncomingHttpHeaders;
    body: string;
  }

  beforeEach(() => {
    // The top-level beforeEach re-stubs via reset(); these tests need the real send().
    cw.restore();
    savedEnv = Object.fromEntries(ENV_KEYS.map((key) => [key, process.env[key]]));
    for (const key of ENV_KEYS) delete process.env[key];
    process.env.AWS_ACCESS_KEY_ID = 'AKIDLOCALTEST';
    process.env.AWS_SECRET_ACCESS_KEY = 'local-test-secret';
    process.env.AWS_REGION = 'eu-west-1';
    process.env.AWS_EC2_METADATA_DISABLED = 'true';
  });

  afterEach(async () => {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
    if (server) {
      server.closeAllConnections();
      await new Promise((r) => server?.close(r));
      server = undefined;
    }
  });

  async function listen(
    handler: (req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) => void,
  ) {
    const s = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => handler(req, res, Buffer.concat(chunks)));
    });
    server = s;
    s.listen(0, '127.0.0.1');
    await once(s, 'listening');
    return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
  }

  it('reaches AWS_ENDPOINT_URL_CLOUDWATCH with a signed AWS JSON 1.0 PutMetricData', async () => {
    const recorded: Recorded[] = [];
    const url = await listen((req, res, raw) => {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      recorded.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
      // The SDK speaks AWS JSON 1.0 to CloudWatch; PutMetricData's output is empty.
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0', 'x-amzn-requestid': 'local-1' });
      res.end('{}');
    });
    process.env.AWS_ENDPOINT_URL_CLOUDWATCH = url;

    const log = createLogger('silent', 'cloudwatch-test');
    const warn = jest.spyOn(log, 'warn');
    const p = new CloudWatchPublisher({
      dimensions: { AutoScalingGroupName: 'sn-fleet' },
      intervalMs: 60_000,
      requestTimeoutMs: 3000,
      collect: () => [
        { name: 'ConnectedPeers', value: 7, unit: 'Count' },
        { name: 'BytesRelayed', value: 2048, unit: 'Bytes' },
      ],
      log,
    });

    const result = await p.publishOnce();
    await p.stop();

    expect(warn).not.toHaveBeenCalled();
    expect(result).toEqual({ requests: 1, datums: 2, failed: 0 });
    expect(recorded).toHaveLength(1);
    const [req] = recorded;
    expect(req.method).toBe('POST');
    expect(req.headers['x-amz-target']).toBe('GraniteServiceVersion20100801.PutMetricData');
    expect(req.headers['content-type']).toBe('application/x-amz-json-1.0');
    expect(String(req.headers.authorization)).toContain('Credential=AKIDLOCALTEST/');
    expect(String(req.headers.authorization)).toContain('/eu-west-1/monitoring/aws4_request');
    const body = JSON.parse(req.body) as {
      Namespace: string;
      MetricData: { MetricName: string; Value: number; Unit: string; Dimensions: object[] }[];
    };
    expect(body.Namespace).toBe('Supernode');
    expect(body.MetricData.map((d) => d.MetricName)).toEqual(['ConnectedPeers', 'BytesRelayed']);
    expect(body.MetricData[0]).toMatchObject({
      Value: 7,
      Unit: 'Count',
      Dimensions: [{ Name: 'AutoScalingGroupName', Value: 'sn-fleet' }],
    });
  });

  it('delivers a 1,500-sample tick as two gzip-compressed requests', async () => {
    const recorded: Recorded[] = [];
    const url = await listen((req, res, raw) => {
      const body = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw;
      recorded.push({ method: req.method, url: req.url, headers: req.headers, body: body.toString('utf8') });
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.0' });
      res.end('{}');
    });
    process.env.AWS_ENDPOINT_URL_CLOUDWATCH = url;

    const p = new CloudWatchPublisher({
      dimensions: { AutoScalingGroupName: 'sn-fleet' },
      intervalMs: 60_000,
      requestTimeoutMs: 3000,
      collect: () => samples(1500),
      log: fakeLog(),
    });
    const result = await p.publishOnce();
    await p.stop();

    expect(result).toEqual({ requests: 2, datums: 1500, failed: 0 });
    // The SDK gzips PutMetricData bodies of 10 KB and more.
    expect(recorded.map((r) => r.headers['content-encoding'])).toEqual(['gzip', 'gzip']);
    const counts = recorded.map((r) => (JSON.parse(r.body) as { MetricData: unknown[] }).MetricData.length);
    expect(counts).toEqual([1000, 500]);
  });

  it('aborts the HTTP request of a server that never answers', async () => {
    let requests = 0;
    let clientHungUp = false;
    const url = await listen((_req, res) => {
      requests++;
      // Never answer. 'close' before the response ended means the client dropped the request.
      res.on('close', () => {
        clientHungUp = !res.writableEnded;
      });
    });
    process.env.AWS_ENDPOINT_URL_CLOUDWATCH = url;

    const p = new CloudWatchPublisher({
      dimensions: { AutoScalingGroupName: 'sn-fleet' },
      intervalMs: 60_000,
      requestTimeoutMs: 300,
      collect: () => [{ name: 'ConnectedPeers', value: 1, unit: 'Count' }],
      log: fakeLog(),
    });

    const result = await p.publishOnce();
    // Checked before stop(), whose client.destroy() would close the socket anyway.
    for (let i = 0; i < 50 && !clientHungUp; i++) await new Promise((r) => setTimeout(r, 20));
    await p.stop();

    expect(result).toEqual({ requests: 1, datums: 0, failed: 1 });
    expect(p.stats.lastError).toMatch(/^TimeoutError/);
    expect(requests).toBe(1);
    expect(clientHungUp).toBe(true);
  });
});
