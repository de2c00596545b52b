import type { GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { withDeadline } from '../deadline';

/**
 * s3://bucket/key. The bucket follows the S3 naming rules (3-63 of a-z 0-9 . -, a letter or digit at
 * each end, no "..", not an IP address, none of the reserved prefixes and suffixes); the key is 1-1024
 * non-space characters, taken literally (no percent-decoding), as the AWS CLI does.
 */
export const S3_URL =
  /^s3:\/\/(?!\d{1,3}(?:\.\d{1,3}){3}\/)(?!xn--|sthree-|amzn-s3-demo-)(?![^/]*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](?<!-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)\/\S{1,1024}$/;

export interface S3Location {
  bucket: string;
  key: string;
}

/** The bucket and key of a well-formed s3:// URL; throws on anything else. */
export function parseS3Url(url: string): S3Location {
  if (!S3_URL.test(url))
    throw new RangeError(`not an s3://bucket/key URL: ${JSON.stringify(url.slice(0, 80))}`);
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  return { bucket: rest.slice(0, slash), key: rest.slice(slash + 1) };
}

export function isS3Url(url: string | undefined): boolean {
  return url?.startsWith('s3://') === true;
}

/**
 * The default client, loaded on first use only (the SDK costs start-up memory a node with http:// or
 * file sources does not need). The SDK resolves AWS_ENDPOINT_URL_S3, then AWS_ENDPOINT_URL, by itself;
 * with either set, requests go path-style so that a stand-in on 127.0.0.1 needs no bucket subdomains.
 * followRegionRedirects: the bucket may live in another region than the node.
 */
export function s3ClientFromEnv(region?: string, env: NodeJS.ProcessEnv = process.env): S3Client {
  const { S3Client } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
  const overridden =
    !/^true$/i.test(env.AWS_IGNORE_CONFIGURED_ENDPOINT_URLS ?? '') &&
    Boolean(env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL);
  return new S3Client({
    ...(region === undefined ? {} : { region }),
    followRegionRedirects: true,
    ...(overridden ? { forcePathStyle: true } : {}),
    maxAttempts: 2,
  });
}

export interface S3SourceOptions {
  /** s3://bucket/key */
  url: string;
  /** What it is, for errors. */
  name: string;
  maxBytes: number;
  /** Upper bound on one read, body included. */
  timeoutMs: number;
  /** @default the SDK's resolution (AWS_REGION, shared config, instance metadata) */
  region?: string;
  /** @default s3ClientFromEnv(region) */
  client?: S3Client;
}

/** A fresh body with its ETag, or `not_modified` when the object still has the ETag asked about. */
export type S3Read = { text: string; etag: string | undefined } | 'not_modified';

/** One S3 object read with GetObject, conditionally on its last ETag, never more than maxBytes. */
export class S3Source {
  private readonly location: S3Location;
  private client: S3Client | undefined;
  private readonly ownsClient: boolean;

  constructor(private readonly options: S3SourceOptions) {
    this.location = parseS3Url(options.url);
    this.client = options.client;
    this.ownsClient = options.client === undefined;
  }

  /** Reads the object; with `ifNoneMatch`, an unchanged object costs a 304 and no body. */
  async read(ifNoneMatch?: string): Promise<S3Read> {
    const { name, maxBytes, timeoutMs } = this.options;
    this.client ??= s3ClientFromEnv(this.options.region);
    const { GetObjectCommand } = require('@aws-sdk/client-s3') as typeof import('@aws-sdk/client-s3');
    let body: GetObjectCommandOutput['Body'];
    const get = async (abortSignal: AbortSignal): Promise<S3Read> => {
      let out: GetObjectCommandOutput;
      try {
        out = await (this.client as S3Client).send(
          new GetObjectCommand({
            Bucket: this.location.bucket,
            Key: this.location.key,
            IfNoneMatch: ifNoneMatch,
          }),
          { abortSignal },
        );
      } catch (err) {
        // The SDK surfaces S3's 304 as an error without a body.
        if (ifNoneMatch !== undefined && statusOf(err) === 304) return 'not_modified';
        throw err;
      }
      body = out.Body;
      if (out.ContentLength !== undefined && out.ContentLength > maxBytes) {
        throw new Error(`${name} over ${maxBytes} bytes (S3 object of ${out.ContentLength})`);
      }
      // ContentLength is the object's word for it; the bytes actually read are checked as well.
      const text = await readBounded(body, maxBytes, name);
      return { text, etag: out.ETag };
    };
    try {
      return await withDeadline(timeoutMs, `${name} read from S3 took longer than ${timeoutMs} ms`, get);
    } catch (err) {
      destroyBody(body);
      throw err;
    }
  }

  /** Frees the keep-alive sockets of a client this source created. */
  destroy(): void {
    if (this.ownsClient && this.client) {
      this.client.destroy();
      this.client = undefined;
    }
  }
}

function statusOf(err: unknown): number | undefined {
  const status = (err as { $metadata?: { httpStatusCode?: unknown } } | undefined)?.$metadata?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** UTF-8 text of a body, refusing (and dropping the connection) once it passes maxBytes. */
async function readBounded(body: unknown, maxBytes: number, name: string): Promise<string> {
  if (body === undefined || body === null) return '';
  if (typeof (body as AsyncIterable<unknown>)[Symbol.asyncIterator] !== 'function') {
    throw new Error(`${name}: S3 body is not a stream`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Uint8Array | string>) {
    const buffer =
      typeof chunk === 'string'
        ? Buffer.from(chunk, 'utf8')
        : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    size += buffer.length;
    if (size > maxBytes) throw new Error(`${name} over ${maxBytes} bytes`);
    chunks.push(buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function destroyBody(body: unknown): void {
  const destroy = (body as { destroy?: () => void } | undefined)?.destroy;
  if (typeof destroy === 'function') destroy.call(body);
}
