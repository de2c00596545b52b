import type { GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { withDeadline } from '../shared/deadline';
import { parseS3Url, type S3Location, s3ClientFromEnv } from '../shared/s3';

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
