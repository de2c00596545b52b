import type { S3Client } from '@aws-sdk/client-s3';

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
