import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { GetObjectCommand, type GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { publicJwks } from '../../supernode/auth/signing';
import { nodeOptionTable } from '../../supernode/config/node-options';
import { ConfigError, parseOptions } from '../../supernode/config/options';
import { KeyStore } from '../../supernode/node/keys';
import { PolledJson } from '../../supernode/node/polled-json';
import { createLogger } from '../../supernode/shared/log';
import { parseS3Url, S3_URL } from '../../supernode/shared/s3';
import { connectAs, makeTestKeys, startTestNode, type TestKeys } from '../helpers/node';

const s3 = mockClient(S3Client);
const log = createLogger('silent', 's3-source-test');

function body(text: string): GetObjectCommandOutput['Body'] {
  return Readable.from([Buffer.from(text)]) as unknown as GetObjectCommandOutput['Body'];
}

function object(text: string, etag: string, contentLength?: number): GetObjectCommandOutput {
  return { $metadata: { httpStatusCode: 200 }, Body: body(text), ETag: etag, ContentLength: contentLength };
}

/** What the SDK throws for S3's 304 answer to If-None-Match. */
function notModified(): Error {
  return Object.assign(new Error('Not Modified'), { name: '304', $metadata: { httpStatusCode: 304 } });
}

function polled(overrides: { maxBytes?: number } = {}) {
  const warn = jest.spyOn(log, 'warn');
  const parse = jest.fn((value: unknown) => value as { v: number });
  const document = new PolledJson({
    name: 'test document',
    url: 's3://supernode-keys/auth/doc.json',
    refreshMs: 60_000,
    maxBytes: overrides.maxBytes ?? 1024,
    parse,
    log,
  });
  return { document, parse, warn };
}

function sentInputs() {
  return s3.commandCalls(GetObjectCommand).map((call) => call.args[0].input);
}

describe('s3:// URLs', () => {
  it.each([
    ['s3://supernode-keys/auth/jwks.json', { bucket: 'supernode-keys', key: 'auth/jwks.json' }],
    ['s3://a.b-c/k', { bucket: 'a.b-c', key: 'k' }],
    ['s3://abc/dir/', { bucket: 'abc', key: 'dir/' }],
  ])('parses %s', (url, location) => {
    expect(parseS3Url(url)).toEqual(location);
  });

  it.each([
    's3://bucket',
    's3://bucket/',
    's3://ab/key',
    's3://Bucket/key',
    's3://my_bucket/key',
    's3://-bucket/key',
    's3://bucket-/key',
    's3://a..b/key',
    's3://192.168.1.10/key',
    's3://xn--bucket/key',
    's3://bucket-s3alias/key',
    's3://bucket--ol-s3/key',
    `s3://${'a'.repeat(64)}/key`,
    's3://bucket/a key',
    'S3://bucket/key',
  ])('refuses %s', (url) => {
    expect(S3_URL.test(url)).toBe(false);
    expect(() => parseS3Url(url)).toThrow(RangeError);
  });

  it('are accepted by --jwks-url and --revocations-url, and only well-formed ones', () => {
    const parse = (argv: string[]) => parseOptions(nodeOptionTable, argv, {});
    expect(parse(['--jwks-url', 's3://supernode-keys/jwks.json']).jwksUrl).toBe(
      's3://supernode-keys/jwks.json',
    );
    expect(
      parseOptions(nodeOptionTable, [], { SUPERNODE_REVOCATIONS_URL: 's3://b-1/r.json' }).revocationsUrl,
    ).toBe('s3://b-1/r.json');
    expect(parse(['--jwks-url', 'https://auth.example/jwks']).jwksUrl).toBe('https://auth.example/jwks');
    expect(parse(['--s3-region', 'eu-central-1']).s3Region).toBe('eu-central-1');
    for (const bad of ['s3://Bad_Bucket/k', 's3://bucket/', 'ftp://x/y']) {
      expect(() => parse(['--jwks-url', bad])).toThrow(ConfigError);
      expect(() => parse(['--revocations-url', bad])).toThrow(
        /--revocations-url \(SUPERNODE_REVOCATIONS_URL\) must be an http:\/\/, https:\/\/ or s3:\/\/bucket\/key URL/,
      );
    }
  });
});

describe('PolledJson from S3 (mocked client)', () => {
  beforeEach(() => {
    s3.reset();
    jest.restoreAllMocks();
  });

  it('reads the object, then asks with If-None-Match and keeps the value on 304', async () => {
    s3.on(GetObjectCommand).resolvesOnce(object('{"v":1}', '"etag-1"')).rejects(notModified());
    const { document, parse } = polled();

    expect(await document.refresh()).toBe(true);
    expect(document.value).toEqual({ v: 1 });
    const loadedAt = document.loadedAt as number;
    expect(await document.refresh()).toBe(true);
    expect(document.value).toEqual({ v: 1 });
    expect(document.loadedAt).toBeGreaterThanOrEqual(loadedAt);
    expect(parse).toHaveBeenCalledTimes(1);
    expect(sentInputs()).toEqual([
      { Bucket: 'supernode-keys', Key: 'auth/doc.json', IfNoneMatch: undefined },
      { Bucket: 'supernode-keys', Key: 'auth/doc.json', IfNoneMatch: '"etag-1"' },
    ]);
    document.stop();
  });

  it('takes a changed object and its new ETag', async () => {
    s3.on(GetObjectCommand)
      .resolvesOnce(object('{"v":1}', '"etag-1"'))
      .resolvesOnce(object('{"v":2}', '"etag-2"'))
      .rejects(notModified());
    const { document } = polled();
    await document.refresh();
    await document.refresh();
    await document.refresh();
    expect(document.value).toEqual({ v: 2 });
    expect(sentInputs().map((input) => input.IfNoneMatch)).toEqual([undefined, '"etag-1"', '"etag-2"']);
    document.stop();
  });

  it('refuses an object whose ContentLength is over maxBytes, without reading it', async () => {
    const big = Readable.from([Buffer.alloc(200, 0x20)]);
    s3.on(GetObjectCommand).resolves({
      $metadata: { httpStatusCode: 200 },
      Body: big as unknown as GetObjectCommandOutput['Body'],
      ContentLength: 200,
    });
    const { document, warn } = polled({ maxBytes: 100 });
    expect(await document.refresh()).toBe(false);
    expect(document.value).toBeUndefined();
    expect(big.destroyed).toBe(true);
    expect(warn).toHaveBeenCalledWith(
      expect.objectContaining({
        err: expect.objectContaining({ message: expect.stringMatching(/over 100 bytes/) }),
      }),
      expect.any(String),
    );
    document.stop();
  });

  it('refuses a body longer than maxBytes even when ContentLength says less', async () => {
    s3.on(GetObjectCommand).resolves(object(`{"v":1,"pad":"${'x'.repeat(200)}"}`, '"e"', 10));
    const { document, warn } = polled({ maxBytes: 100 });
    expect(await document.refresh()).toBe(false);
    expect(document.value).toBeUndefined();
    expect(JSON.stringify(warn.mock.calls[0][0])).toContain('over 100 bytes');
    document.stop();
  });

  it('keeps the last good value when S3 fails, and does not adopt the ETag of a bad body', async () => {
    const denied = Object.assign(new Error('Access Denied'), {
      name: 'AccessDenied',
      $metadata: { httpStatusCode: 403 },
    });
    s3.on(GetObjectCommand)
      .resolvesOnce(object('{"v":1}', '"etag-1"'))
      .rejectsOnce(denied)
      .resolvesOnce(object('not json', '"etag-bad"'))
      .rejects(notModified());
    const { document, warn } = polled();
    expect(await document.refresh()).toBe(true);
    expect(await document.refresh()).toBe(false);
    expect(document.value).toEqual({ v: 1 });
    expect(warn).toHaveBeenLastCalledWith(
      expect.objectContaining({ err: { name: 'AccessDenied', message: 'Access Denied' }, failures: 1 }),
      'test document refresh failed; keeping the last good copy',
    );
    expect(await document.refresh()).toBe(false);
    expect(document.value).toEqual({ v: 1 });
    await document.refresh();
    expect(sentInputs().map((input) => input.IfNoneMatch)).toEqual([
      undefined,
      '"etag-1"',
      '"etag-1"',
      '"etag-1"',
    ]);
    document.stop();
  });
});

describe('S3 over real HTTP (AWS_ENDPOINT_URL_S3 stand-in)', () => {
  const ENV_KEYS = [
    'AWS_ENDPOINT_URL_S3',
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
  let server: http.Server;
  let keys: TestKeys;
  let jwks: string;
  const requests: Array<{ method?: string; url?: string; headers: http.IncomingHttpHeaders }> = [];

  beforeAll(async () => {
    keys = await makeTestKeys();
    jwks = JSON.stringify(publicJwks([keys.key]));
    // Path-style GetObject on one object; answers 304 to its current ETag, 404 to anything else.
    server = http.createServer((req, res) => {
      requests.push({ method: req.method, url: req.url, headers: req.headers });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      if (req.method !== 'GET' || path !== '/supernode-keys/auth/jwks.json') {
        res
          .writeHead(404, { 'content-type': 'application/xml' })
          .end('<Error><Code>NoSuchKey</Code><Message>no such key</Message></Error>');
        return;
      }
      if (req.headers['if-none-match'] === '"jwks-1"') {
        res.writeHead(304, { etag: '"jwks-1"' }).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json', etag: '"jwks-1"' }).end(jwks);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
  });

  beforeEach(() => {
    // The top-level mock stubs send(); these tests need the real one.
    s3.restore();
    requests.length = 0;
    savedEnv = Object.fromEntries(ENV_KEYS.map((key) => [key, process.env[key]]));
    for (const key of ENV_KEYS) delete process.env[key];
    Object.assign(process.env, {
      AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      AWS_ACCESS_KEY_ID: 'AKIDLOCALTEST',
      AWS_SECRET_ACCESS_KEY: 'local-test-secret',
      AWS_REGION: 'eu-west-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    });
  });

  afterEach(() => {
    for (const [key, value] of Object.entries(savedEnv)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await keys.cleanup();
  });

  it('loads the key set with a signed path-style GetObject, then revalidates with a 304', async () => {
    const store = new KeyStore({ jwksUrl: 's3://supernode-keys/auth/jwks.json', refreshMs: 60_000, log });
    await store.start();
    expect(store.ready).toBe(true);
    expect(store.kids).toEqual([keys.key.kid]);
    expect(await store.refresh()).toBe(true);
    store.stop();

    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request.method).toBe('GET');
      expect(request.url).toMatch(/^\/supernode-keys\/auth\/jwks\.json(\?|$)/);
      expect(String(request.headers.authorization)).toContain('/eu-west-1/s3/aws4_request');
    }
    expect(requests.map((r) => r.headers['if-none-match'])).toEqual([undefined, '"jwks-1"']);
    expect(store.kids).toEqual([keys.key.kid]);
  });

  it('a node with --jwks-url s3://... and --s3-region verifies tokens with the keys from S3', async () => {
    const running = await startTestNode(keys, {
      jwksFile: undefined,
      jwksUrl: 's3://supernode-keys/auth/jwks.json',
      s3Region: 'eu-central-1',
    });
    try {
      expect(running.node.readyState()).toEqual({ ready: true, reasons: [] });
      const session = await connectAs(running, keys, 'alice');
      expect(session.user).toBe('alice');
      await session.close();
      expect(String(requests[0].headers.authorization)).toContain('/eu-central-1/s3/aws4_request');
    } finally {
      await running.node.close();
    }
  });

  it('a missing object leaves the node without keys, not crashed', async () => {
    const store = new KeyStore({ jwksUrl: 's3://supernode-keys/missing.json', refreshMs: 60_000, log });
    await store.start();
    store.stop();
    expect(store.ready).toBe(false);
    expect(requests).toHaveLength(1);
  });
});
