import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type AuthService, buildAuthService } from '../../supernode/auth/server';
import { waitFor } from '../helpers/node';

interface RecordedPut {
  path: string;
  contentType?: string;
  cacheControl?: string;
  body: string;
}

let endpoint: Server;
const recorded: RecordedPut[] = [];
const savedEnv = { ...process.env };

beforeAll(async () => {
  // S3's PutObject, path style, over loopback HTTP.
  endpoint = createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method !== 'PUT') {
        res.writeHead(405).end();
        return;
      }
      recorded.push({
        path: new URL(req.url ?? '/', 'http://s3').pathname, // the SDK adds ?x-id=PutObject
        contentType: req.headers['content-type'],
        cacheControl: req.headers['cache-control'],
        body: Buffer.concat(chunks).toString(),
      });
      res.writeHead(200, { etag: '"0"' }).end();
    });
  });
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_S3: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
  });
});
afterAll(async () => {
  process.env = savedEnv;
  await new Promise((resolve) => endpoint.close(resolve));
});

test('a service with --publish-bucket copies its key set and revocation list to S3 on every change', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'auth-publish-test-'));
  let auth: AuthService | undefined;
  const latest = (path: string) => recorded.filter((r) => r.path === path).at(-1);
  try {
    auth = await buildAuthService({
      dataDir,
      port: 0,
      scryptN: 1024,
      logLevel: 'silent',
      publishBucket: 'sn-auth-public',
      publishPrefix: 'auth/',
    });
    const { url } = await auth.listen();
    await waitFor(() => recorded.length >= 2, 5000, 'both objects');
    const jwks = latest('/sn-auth-public/auth/jwks.json');
    expect(jwks).toEqual({
      path: '/sn-auth-public/auth/jwks.json',
      contentType: 'application/json',
      cacheControl: 'public, max-age=60',
      body: await readFile(auth.files.jwks, 'utf8'),
    });
    expect(JSON.parse(jwks?.body ?? '')).toEqual({ keys: auth.keys.publicKeys() });

    // A revocation reaches the bucket as it reaches the file.
    const post = (path: string, body: object) =>
      fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await post('/v1/accounts', { username: 'mallory', password: 'correct-horse-1' })).status).toBe(
      201,
    );
    expect((await post('/v1/admin/accounts/mallory/disable', {})).status).toBe(200);
    await waitFor(
      () => latest('/sn-auth-public/auth/revocations.json')?.body.includes('"mallory"') === true,
      5000,
      'the revocation in S3',
    );
    expect(latest('/sn-auth-public/auth/revocations.json')).toMatchObject({
      contentType: 'application/json',
      cacheControl: 'public, max-age=5',
    });

    // A rotated key too.
    const added = await auth.keys.rotate();
    await waitFor(
      () => latest('/sn-auth-public/auth/jwks.json')?.body.includes(added.kid) === true,
      5000,
      'the new key in S3',
    );
  } finally {
    await auth?.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
