/**
 * The auth core driven directly, with no HTTP: accounts, lockout, token issuing and admission over
 * the real store (embedded DynamoDB-compatible server), as the routes call them.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { decodeJwt } from 'jose';
import { Accounts } from '../../supernode/auth/core/accounts';
import { HashPool } from '../../supernode/auth/core/admission';
import { Gates } from '../../supernode/auth/core/gates';
import { Lockout } from '../../supernode/auth/core/lockout';
import { RevocationPublisher } from '../../supernode/auth/core/revocations';
import { TokenIssuer, type TokenPair } from '../../supernode/auth/core/tokens';
import { type EmbeddedDynamo, startEmbeddedDynamo } from '../../supernode/auth/embedded-store';
import { FileKeyRingStorage, KeyRing } from '../../supernode/auth/key-ring';
import { AuthMetrics } from '../../supernode/auth/metrics';
import { inThreadPasswords } from '../../supernode/auth/passwords';
import { AccountStore, createDynamoClients, ensureTable } from '../../supernode/auth/store';
import { createLogger } from '../../supernode/shared/log';

const log = createLogger('silent', 'auth-core-test');
const SCRYPT = { N: 1024, r: 8, p: 1, keyLength: 32, saltLength: 16 };

let dir: string;
let embedded: EmbeddedDynamo;
let client: DynamoDBClient;
let store: AccountStore;
let keys: KeyRing;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-core-'));
  embedded = await startEmbeddedDynamo({ path: join(dir, 'dynamo') });
  const clients = createDynamoClients({ endpoint: embedded.endpoint });
  client = clients.client;
  await ensureTable(client, 'core-test');
  store = new AccountStore(clients.doc, 'core-test');
  keys = new KeyRing({
    storage: new FileKeyRingStorage(join(dir, 'keys.json')),
    rotationMs: 3_600_000,
    publishLeadMs: 0,
    retainMs: 3_600_000,
    jwksFile: join(dir, 'jwks.json'),
    log,
  });
  await keys.start();
});

afterAll(async () => {
  keys.stop();
  client.destroy();
  await embedded.close();
  await rm(dir, { recursive: true, force: true });
});

function core(limits: Partial<ConstructorParameters<typeof Gates>[0]> = {}, concurrency = 2, maxQueue = 4) {
  const pool = new HashPool({ concurrency, maxQueue, deadlineMs: 5000 });
  const metrics = new AuthMetrics(pool);
  const gates = new Gates(
    {
      admissionControl: true,
      ipLoginsPerMinute: 1000,
      ipRefreshesPerMinute: 1000,
      accountLoginsPerMinute: 1000,
      cheapConcurrency: 8,
      ...limits,
    },
    pool,
    metrics,
    log,
  );
  const revocations = new RevocationPublisher({
    store,
    file: join(dir, 'revocations.json'),
    retainMs: 60_000,
  });
  const tokens = new TokenIssuer(store, keys, revocations, {
    audience: 'supernode',
    issuer: 'supernode-auth',
    accessTtlSec: 600,
    refreshTtlSec: 3600,
  });
  const lockout = new Lockout(store, { threshold: 3, baseSec: 60, maxSec: 600 });
  const accounts = new Accounts({
    store,
    gates,
    lockout,
    tokens,
    revocations,
    metrics,
    scrypt: SCRYPT,
    passwords: inThreadPasswords,
  });
  return { accounts, tokens, gates, metrics, pool, revocations };
}

test('sign-up, login and refresh rotation, with reuse revoking the family', async () => {
  const { accounts, tokens } = core();
  expect(await accounts.signUp('10.0.0.1', 'core-alice', 'alice-secret-1')).toEqual({
    ok: true,
    status: 201,
    body: { username: 'core-alice' },
  });
  expect(await accounts.signUp('10.0.0.1', 'core-alice', 'other-secret-1')).toMatchObject({
    ok: false,
    status: 409,
    error: 'username_taken',
  });
  const login = await accounts.login('10.0.0.1', 'core-alice', 'alice-secret-1');
  expect(login.ok).toBe(true);
  const pair = (login as { body: TokenPair }).body;
  expect(decodeJwt(pair.accessToken)).toMatchObject({
    sub: 'core-alice',
    aud: 'supernode',
    iss: 'supernode-auth',
  });

  const rotated = await tokens.refresh(pair.refreshToken);
  expect(rotated.outcome).toBe('ok');
  const reused = await tokens.refresh(pair.refreshToken);
  expect(reused).toMatchObject({ outcome: 'reused', answer: { ok: false, status: 401 } });
  // The family went with the reuse: the token it had rotated to is dead too.
  const next = (rotated.answer as { body: TokenPair }).body.refreshToken;
  expect((await tokens.refresh(next)).outcome).not.toBe('ok');
});

test('lockout: the same answers for a real account and an unknown name', async () => {
  const { accounts } = core();
  await accounts.signUp('10.0.0.2', 'core-bob', 'bob-secret-12');
  const answers = async (username: string) => {
    const seen = [];
    for (let i = 0; i < 4; i++) {
      const outcome = await accounts.login('10.0.0.2', username, 'wrong-password');
      seen.push(outcome.ok ? 200 : `${outcome.status} ${outcome.error}`);
    }
    return seen;
  };
  const real = await answers('core-bob');
  const phantom = await answers('core-nobody');
  expect(real).toEqual([
    '401 invalid_credentials',
    '401 invalid_credentials',
    '401 invalid_credentials',
    '429 too_many_attempts',
  ]);
  expect(phantom).toEqual(real);
  // Locked: even the right password waits.
  expect(await accounts.login('10.0.0.2', 'core-bob', 'bob-secret-12')).toMatchObject({ status: 429 });
});

test('admission: a full hash pool sheds at once with retry advice, before any store access', async () => {
  const { accounts, metrics, pool } = core({}, 1, 1);
  const burst = await Promise.all(
    Array.from({ length: 6 }, (_, i) => accounts.signUp('10.0.0.3', `core-burst-${i}`, 'burst-secret-1')),
  );
  const shed = burst.filter((outcome) => !outcome.ok && outcome.error === 'overloaded');
  expect(shed.length).toBeGreaterThanOrEqual(4);
  for (const outcome of shed)
    expect(outcome).toMatchObject({ status: 503, retryAfterMs: expect.any(Number) });
  expect(metrics.totals.shed).toBe(shed.length);
  expect(pool.stats.inFlight).toBe(0);
  // The shed names were never written.
  for (const [i, outcome] of burst.entries())
    if (!outcome.ok) expect(await store.getAccount(`core-burst-${i}`)).toBeUndefined();
});

test('the per-IP rate of the cheap class answers 429 with advice', async () => {
  const { gates } = core({ ipRefreshesPerMinute: 4 });
  const answers = [];
  for (let i = 0; i < 3; i++) answers.push(gates.readRate('10.0.0.4'));
  expect(answers.slice(0, 1)).toEqual([undefined]);
  expect(answers[2]).toMatchObject({ ok: false, status: 429, error: 'too_many_requests' });
});
