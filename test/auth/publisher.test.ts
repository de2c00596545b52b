import { PutObjectCommand, type PutObjectCommandInput, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { S3Publisher, type S3PublisherOptions } from '../../supernode/auth/publisher';
import { s3ClientFromEnv } from '../../supernode/shared/s3';

const s3 = mockClient(S3Client);

function publisher(overrides: Partial<S3PublisherOptions> = {}) {
  const log = { warn: jest.fn<void, [object, string]>(), info: jest.fn<void, [object, string]>() };
  const p = new S3Publisher({
    bucket: 'sn-auth-public',
    prefix: 'auth/',
    client: new S3Client({ region: 'eu-west-1' }),
    retryBaseMs: 10,
    retryMaxMs: 40,
    random: () => 0.5,
    log,
    ...overrides,
  });
  return { p, log };
}

function puts(): PutObjectCommandInput[] {
  return s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input);
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

beforeEach(() => {
  s3.reset();
  s3.on(PutObjectCommand).resolves({ ETag: '"e"' });
});

describe('S3Publisher', () => {
  it('puts <prefix><name> as JSON with the given Cache-Control', async () => {
    const { p } = publisher();
    p.publish('jwks.json', '{"keys":[]}\n', 'public, max-age=60');
    p.publish('revocations.json', '{"generatedAt":1,"entries":[]}\n', 'public, max-age=5');
    await p.idle();
    expect(puts()).toEqual([
      {
        Bucket: 'sn-auth-public',
        Key: 'auth/jwks.json',
        Body: '{"keys":[]}\n',
        ContentType: 'application/json',
        CacheControl: 'public, max-age=60',
      },
      expect.objectContaining({ Key: 'auth/revocations.json', CacheControl: 'public, max-age=5' }),
    ]);
    expect(p.stats).toEqual({ published: 2, failures: 0, unchanged: 0 });
    await p.stop();
  });

  it('does not send an unchanged body again, but sends a changed one', async () => {
    const { p } = publisher();
    p.publish('revocations.json', 'v1', 'public, max-age=5');
    await p.idle();
    p.publish('revocations.json', 'v1', 'public, max-age=5');
    p.publish('revocations.json', 'v1', 'public, max-age=5');
    await p.idle();
    expect(puts()).toHaveLength(1);
    p.publish('revocations.json', 'v2', 'public, max-age=5');
    await p.idle();
    expect(puts().map((put) => put.Body)).toEqual(['v1', 'v2']);
    expect(p.stats).toEqual({ published: 2, failures: 0, unchanged: 2 });
    await p.stop();
  });

  it('retries a failed put with backoff, and logs the failure without the raw error', async () => {
    s3.on(PutObjectCommand)
      .rejectsOnce(Object.assign(new Error('slow down'), { name: 'SlowDown', $response: { secret: 1 } }))
      .rejectsOnce(new Error('socket hang up'))
      .resolves({});
    const { p, log } = publisher();
    p.publish('jwks.json', 'v1', 'public, max-age=60');
    await p.idle();
    expect(puts().map((i) => i.Body)).toEqual(['v1', 'v1', 'v1']);
    expect(p.stats).toMatchObject({ published: 1, failures: 2, lastError: 'Error: socket hang up' });
    expect(log.warn).toHaveBeenCalledTimes(2);
    // Equal jitter at 0.5: 3/4 of 10 ms, then 3/4 of 20 ms.
    expect(log.warn.mock.calls.map(([fields]) => (fields as { retryInMs: number }).retryInMs)).toEqual([
      8, 15,
    ]);
    expect(JSON.stringify(log.warn.mock.calls)).not.toContain('secret');
    expect(log.info).toHaveBeenCalledWith(expect.objectContaining({ failures: 2 }), 's3 publish recovered');
    await p.stop();
  });

  it('coalesces: one put in flight per object, then only the latest content', async () => {
    const gate = deferred();
    s3.on(PutObjectCommand).callsFake(async () => {
      await gate.promise;
      return {};
    });
    const { p } = publisher();
    p.publish('revocations.json', 'v1', 'public, max-age=5');
    for (const body of ['v2', 'v3', 'v4']) p.publish('revocations.json', body, 'public, max-age=5');
    p.publish('jwks.json', 'k1', 'public, max-age=60'); // another object is not held up behind it
    await new Promise((r) => setImmediate(r));
    expect(puts().map((i) => i.Body)).toEqual(['v1', 'k1']);
    gate.resolve();
    await p.idle();
    expect(puts().map((i) => i.Body)).toEqual(['v1', 'k1', 'v4']);
    await p.stop();
  });

  it('a newer content replaces the one waiting for a retry', async () => {
    s3.on(PutObjectCommand).rejectsOnce(new Error('down')).resolves({});
    const { p } = publisher({ retryBaseMs: 50 });
    p.publish('jwks.json', 'old', 'public, max-age=60');
    await new Promise((r) => setTimeout(r, 10)); // failed, now backing off
    p.publish('jwks.json', 'new', 'public, max-age=60');
    await p.idle();
    expect(puts().map((i) => i.Body)).toEqual(['old', 'new']);
    await p.stop();
  });

  it('gives up on a hung put after the timeout, and stop() ends the retries', async () => {
    s3.on(PutObjectCommand).callsFake(() => new Promise(() => {}));
    const { p } = publisher({ requestTimeoutMs: 20, retryBaseMs: 60_000, retryMaxMs: 60_000 });
    p.publish('jwks.json', 'v1', 'public, max-age=60');
    await new Promise((r) => setTimeout(r, 60));
    expect(p.stats).toMatchObject({
      published: 0,
      failures: 1,
      lastError: expect.stringMatching(/^TimeoutError/),
    });
    const started = Date.now();
    await p.stop();
    expect(Date.now() - started).toBeLessThan(1000);
    p.publish('jwks.json', 'v2', 'public, max-age=60'); // after stop: nothing, and no throw
    expect(puts()).toHaveLength(1);
  });

  it('uses path-style requests when an endpoint comes from the environment', async () => {
    expect(await s3ClientFromEnv('eu-west-1', {}).config.forcePathStyle).toBe(false);
    expect(
      await s3ClientFromEnv('eu-west-1', { AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9' }).config.forcePathStyle,
    ).toBe(true);
  });
});
