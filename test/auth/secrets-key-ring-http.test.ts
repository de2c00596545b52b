import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyRing } from '../../supernode/auth/key-ring';
import { SecretsManagerKeyRingStorage } from '../../supernode/auth/secrets-key-ring';
import { buildAuthService } from '../../supernode/auth/server';
import { createLogger } from '../../supernode/shared/log';
import { waitFor } from '../helpers/node';
import { FakeSecret, FakeSecretError } from './fake-secret';

const SECRET = 'supernode-auth-keys';
let fake: FakeSecret;
let endpoint: Server;
const targets: string[] = [];
const savedEnv = { ...process.env };

/** Secrets Manager's JSON protocol, two operations of it, over loopback HTTP. */
function standIn(): Server {
  return createServer((req: IncomingMessage, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', async () => {
      const target = String(req.headers['x-amz-target']);
      const input = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<
        string,
        string | undefined
      >;
      targets.push(target);
      const reply = (status: number, body: object): void => {
        res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' }).end(JSON.stringify(body));
      };
      try {
        if (target === 'secretsmanager.GetSecretValue') {
          reply(200, { Name: SECRET, VersionStages: ['AWSCURRENT'], ...fake.get(input.SecretId) });
        } else if (target === 'secretsmanager.PutSecretValue') {
          // Every instance reads before any write lands: they race on one version.
          await waitFor(() => fake.reads >= 2, 2000, 'both instances to read');
          const out = fake.put(input.SecretId, input.SecretString as string, input.ClientRequestToken);
          reply(200, { Name: SECRET, VersionStages: ['AWSCURRENT'], ...out });
        } else {
          reply(400, { __type: 'UnknownOperationException', message: target });
        }
      } catch (err) {
        if (!(err instanceof FakeSecretError)) throw err;
        reply(400, { __type: err.name, message: err.message });
      }
    });
  });
}

beforeAll(async () => {
  endpoint = standIn();
  await new Promise<void>((resolve) => endpoint.listen(0, '127.0.0.1', resolve));
  Object.assign(process.env, {
    AWS_ENDPOINT_URL_SECRETS_MANAGER: `http://127.0.0.1:${(endpoint.address() as AddressInfo).port}`,
    AWS_REGION: 'eu-west-1',
    AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
    AWS_SECRET_ACCESS_KEY: 'test-secret',
  });
});
afterAll(async () => {
  process.env = savedEnv;
  await new Promise((resolve) => endpoint.close(resolve));
});

test('two instances start on the generated secret through the real SDK: one ring, which a service then uses', async () => {
  fake = new FakeSecret(SECRET, 'q8#Tz!4mWp9$Lk2&Vx7^'); // what CloudFormation generated
  const log = createLogger('silent', 'test');
  const storages = [0, 1].map(() => new SecretsManagerKeyRingStorage({ secretId: SECRET }));
  const rings = storages.map(
    (storage) =>
      new KeyRing({ storage, rotationMs: 86_400_000, publishLeadMs: 180_000, retainMs: 960_000, log }),
  );
  const dataDir = await mkdtemp(join(tmpdir(), 'auth-secret-test-'));
  try {
    await Promise.all(rings.map((ring) => ring.start()));
    // Same token, different first keys: the service refused one write and its writer adopted the other.
    expect(fake.puts).toMatchObject({ accepted: 1, refused: 1 });
    const kids = fake.ring().map((k) => k.kid);
    for (const ring of rings) expect(ring.publicKeys().map((k) => k.kid)).toEqual(kids);
    expect(targets).toEqual(expect.arrayContaining(['secretsmanager.PutSecretValue']));

    // The option wires a service to the same secret: it signs with the shared ring.
    const auth = await buildAuthService({ dataDir, port: 0, logLevel: 'silent', keyRingSecret: SECRET });
    try {
      expect(auth.keys.signingKey().kid).toBe(kids[0]);
      expect(JSON.parse(auth.keys.jwks())).toEqual({ keys: rings[0].publicKeys() });
    } finally {
      await auth.close();
    }
  } finally {
    for (const ring of rings) ring.stop();
    for (const storage of storages) storage.close();
    await rm(dataDir, { recursive: true, force: true });
  }
});
