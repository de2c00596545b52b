import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  GetSecretValueCommand,
  InvalidRequestException,
  PutSecretValueCommand,
  ResourceExistsException,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { FileKeyRingStorage, KeyRing, type KeyRingStorage } from '../../supernode/auth/key-ring';
import {
  changeToken,
  KeyRingFormatError,
  parseRing,
  SecretsManagerKeyRingStorage,
} from '../../supernode/auth/secrets-key-ring';
import { createLogger } from '../../supernode/shared/log';
import { waitFor } from '../helpers/node';
import { FakeSecret, FakeSecretError } from './fake-secret';

const sm = mockClient(SecretsManagerClient);
const SECRET = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:auth-keys-AbCdEf';
const ROTATION_MS = 86_400_000;
const LEAD_MS = 180_000;
const RETAIN_MS = 960_000;
const GENERATED = 'Xq9#vT2!mPz$Lw8@kR4&nB6^'; // what a CloudFormation GenerateSecretString leaves

let fake: FakeSecret;
/** Puts wait for this (when set): lets a test make two instances read before either writes. */
let putGate: (() => Promise<void>) | undefined;
let clock: number;
const rings: KeyRing[] = [];
const log = createLogger('silent', 'test');

/** The SDK's own exception classes, as the real client would throw them. */
function sdkError(err: unknown): unknown {
  if (!(err instanceof FakeSecretError) || err.name !== 'ResourceExistsException') return err;
  return new ResourceExistsException({ message: err.message, $metadata: { httpStatusCode: 400 } });
}

beforeEach(() => {
  fake = new FakeSecret(SECRET, GENERATED);
  putGate = undefined;
  clock = 1_800_000_000_000;
  sm.reset();
  sm.on(GetSecretValueCommand).callsFake(async (input) => fake.get(input.SecretId));
  sm.on(PutSecretValueCommand).callsFake(async (input) => {
    await putGate?.();
    try {
      return fake.put(input.SecretId, input.SecretString as string, input.ClientRequestToken);
    } catch (err) {
      throw sdkError(err);
    }
  });
});
afterEach(() => {
  for (const ring of rings.splice(0)) ring.stop();
});

function instance(storage?: KeyRingStorage): KeyRing {
  const ring = new KeyRing({
    storage:
      storage ??
      new SecretsManagerKeyRingStorage({
        secretId: SECRET,
        client: new SecretsManagerClient({ region: 'eu-west-1' }),
      }),
    rotationMs: ROTATION_MS,
    publishLeadMs: LEAD_MS,
    retainMs: RETAIN_MS,
    log,
    now: () => clock,
  });
  rings.push(ring);
  return ring;
}

const kids = (ring: KeyRing) => ring.publicKeys().map((k) => k.kid);

describe('SecretsManagerKeyRingStorage', () => {
  it('writes the first ring over the generated string, based on its version', async () => {
    const generatedVersion = fake.current;
    const ring = instance();
    await ring.start();

    const puts = sm.commandCalls(PutSecretValueCommand);
    expect(puts).toHaveLength(1);
    expect(puts[0].args[0].input).toMatchObject({
      SecretId: SECRET,
      ClientRequestToken: changeToken(generatedVersion),
    });
    expect(fake.ring().map((k) => k.kid)).toEqual(kids(ring));
    expect(fake.ring()[0].privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519', d: expect.any(String) });
    // The first key signs at once: nobody was warned ahead of it, and nobody needed to be.
    expect(ring.signingKey().kid).toBe(kids(ring)[0]);
  });

  it('derives UUID-shaped tokens, one per base version', () => {
    expect(changeToken('v1')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    expect(changeToken('v1')).toBe(changeToken('v1'));
    expect(changeToken('v1')).not.toBe(changeToken('v2'));
  });

  it('treats anything but {"keys": [...]} as no ring, and refuses a ring with malformed keys', () => {
    for (const text of [GENERATED, '{}', '{"keys":[]}', 'null', '"keys"', undefined])
      expect(parseRing(text, SECRET)).toBeUndefined();
    expect(() => parseRing('{"keys":[{"kid":"k-1"}]}', SECRET)).toThrow(KeyRingFormatError);
  });

  it('takes InvalidRequestException as a lost race only if the secret moved on', async () => {
    const storage = new SecretsManagerKeyRingStorage({
      secretId: SECRET,
      client: new SecretsManagerClient({ region: 'eu-west-1' }),
    });
    const refused = new InvalidRequestException({ message: 'refused', $metadata: {} });
    sm.on(PutSecretValueCommand).rejects(refused);
    // The secret is still at the base: the refusal has another cause, and is passed on.
    await expect(storage.save([], fake.current)).rejects.toBe(refused);
    await expect(storage.save([], 'an-older-version')).resolves.toEqual({ status: 'conflict' });
  });
});

describe('KeyRing instances sharing one secret', () => {
  it('race a rotation: one new key wins and both end with identical rings', async () => {
    const a = instance();
    const b = instance();
    await a.start();
    await b.start();
    expect(kids(b)).toEqual(kids(a));
    expect(fake.puts.accepted).toBe(1); // b adopted a's first ring

    // Both find the rotation due, read the same version, and write on top of it.
    clock += ROTATION_MS;
    const reads = fake.reads;
    putGate = () => waitFor(() => fake.reads >= reads + 2, 2000, 'both instances to read');
    await Promise.all([a.maintain(), b.maintain()]);
    putGate = undefined;

    expect(fake.puts).toMatchObject({ accepted: 2, refused: 1 });
    const tokens = sm.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input.ClientRequestToken);
    expect(tokens.slice(-2)).toEqual([tokens[1], tokens[1]]);
    expect(kids(a)).toHaveLength(2);
    expect(kids(b)).toEqual(kids(a));
    expect(fake.ring().map((k) => k.kid)).toEqual(kids(a));
    expect(b.jwks()).toBe(a.jwks());

    // The schedule holds on both: the new key signs only after the lead, the old one until then.
    const [oldKid, newKid] = kids(a);
    expect([a.signingKey().kid, b.signingKey().kid]).toEqual([oldKid, oldKid]);
    clock += LEAD_MS;
    expect([a.signingKey().kid, b.signingKey().kid]).toEqual([newKid, newKid]);

    // Both drop the retired key together: the same change on the same base is one version.
    clock += RETAIN_MS;
    const versions = fake.versions.size;
    await Promise.all([a.maintain(), b.maintain()]);
    expect(fake.versions.size).toBe(versions + 1);
    expect([kids(a), kids(b)]).toEqual([[newKid], [newKid]]);
  });

  it('follow a change made by another instance at their next check', async () => {
    const a = instance();
    const b = instance();
    await a.start();
    await b.start();
    const added = await a.rotate();
    expect(kids(b)).not.toContain(added.kid);
    const accepted = fake.puts.accepted;
    await b.maintain();
    expect(kids(b)).toEqual(kids(a));
    expect(fake.puts.accepted).toBe(accepted); // read, not written
  });

  it('start together on the generated string: one first key, adopted by the others', async () => {
    const fleet = [instance(), instance(), instance()];
    putGate = () => waitFor(() => fake.reads >= 3, 2000, 'every instance to read');
    await Promise.all(fleet.map((ring) => ring.start()));
    expect(fake.puts).toMatchObject({ accepted: 1, refused: 2 });
    for (const ring of fleet) expect(kids(ring)).toEqual(fake.ring().map((k) => k.kid));
  });

  it('a stale rotate() adopts the ring that moved on instead of adding its own key', async () => {
    const a = instance();
    const b = instance();
    await a.start();
    await b.start();
    await a.rotate();
    const fromB = await b.rotate(); // b's base is the version a has already built on
    expect(fake.ring().map((k) => k.kid)).toEqual(kids(a));
    expect(kids(b)).toEqual(kids(a));
    expect(fromB.kid).toBe(kids(a)[1]);
  });
});

describe('FileKeyRingStorage', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'key-ring-test-'));
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('keeps the ring with mode 0600 and refuses a write on a version that moved on', async () => {
    const path = join(dir, 'signing-keys.json');
    const storage = new FileKeyRingStorage(path);
    const ring = instance(storage);
    await ring.start();
    const { keys, version } = await storage.load();
    expect(keys?.map((k) => k.kid)).toEqual(kids(ring));
    expect(JSON.parse(await readFile(path, 'utf8'))).toEqual({ keys });
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    await expect(storage.save([], 'stale')).resolves.toEqual({ status: 'conflict' });
    await expect(storage.save(keys ?? [], version)).resolves.toMatchObject({ status: 'saved' });
  });
});
