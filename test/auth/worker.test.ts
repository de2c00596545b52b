/**
 * The auth worker thread: store calls and scrypt calls cross to it and back, errors keep their name
 * and message, a store that cannot open fails the start, close releases the embedded store, and the
 * service's main thread never loads the DynamoDB SDK (its work is on the worker).
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { newAccount } from '../../supernode/auth/store-api';
import { type AuthWorker, startAuthWorker } from '../../supernode/auth/worker';

const SCRYPT = { N: 1024, r: 8, p: 1, keyLength: 32, saltLength: 16 };
const quiet = { warn: () => {}, error: () => {} };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-worker-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

describe('a worker on the embedded store', () => {
  let worker: AuthWorker;
  beforeAll(async () => {
    worker = await startAuthWorker({ table: 'worker-test', embeddedPath: join(dir, 'store'), log: quiet });
  }, 30_000);
  afterAll(() => worker.close());

  test('store calls round-trip with their values', async () => {
    expect(worker.storeKind).toBe('embedded');
    expect(await worker.store.createAccount(newAccount('alice', 'hash-text', 1000))).toBe('created');
    expect(await worker.store.createAccount(newAccount('alice', 'other', 2000))).toBe('exists');
    expect(await worker.store.getAccount('alice')).toEqual(newAccount('alice', 'hash-text', 1000));
    expect(await worker.store.getAccount('nobody')).toBeUndefined();
  });

  test('password calls hash and verify on the worker', async () => {
    const encoded = await worker.passwords.hashPassword('correct horse', SCRYPT);
    expect(encoded).toMatch(/^scrypt\$1\$N=1024,r=8,p=1\$/);
    expect(await worker.passwords.verifyPassword('correct horse', encoded)).toBe(true);
    expect(await worker.passwords.verifyPassword('wrong horse', encoded)).toBe(false);
    expect(await worker.passwords.dummyVerify('anything', SCRYPT)).toBe(false);
  });

  test('an error in the worker arrives with its name and message', async () => {
    await expect(worker.passwords.verifyPassword('pw', 'not-a-hash')).rejects.toMatchObject({
      name: 'PasswordHashFormatError',
      message: 'stored password hash is not an scrypt$1 hash',
    });
    await expect(worker.passwords.hashPassword('pw', { ...SCRYPT, N: 1000 })).rejects.toMatchObject({
      name: 'RangeError',
    });
  });

  test('calls in flight at once all get their own answers', async () => {
    const names = Array.from({ length: 50 }, (_, i) => `user-${i}`);
    await Promise.all(names.map((n) => worker.store.createAccount(newAccount(n, `h-${n}`, 1))));
    const accounts = await Promise.all(names.map((n) => worker.store.getAccount(n)));
    expect(accounts.map((a) => a?.passwordHash)).toEqual(names.map((n) => `h-${n}`));
  });
});

test('a store that cannot open fails the start with its error', async () => {
  await expect(
    startAuthWorker({ table: 'x', embeddedPath: join(dir, 'bad-table'), log: quiet }),
  ).rejects.toMatchObject({ name: 'ValidationException' });
}, 30_000);

test('close ends the worker, later calls fail, and the store directory can be opened again', async () => {
  const path = join(dir, 'reopen');
  const first = await startAuthWorker({ table: 'reopen', embeddedPath: path, log: quiet });
  await first.store.createAccount(newAccount('bob', 'h', 1));
  await first.close();
  await first.close(); // idempotent
  await expect(first.store.getAccount('bob')).rejects.toThrow(/auth worker exited/);
  const second = await startAuthWorker({ table: 'reopen', embeddedPath: path, log: quiet });
  try {
    expect((await second.store.getAccount('bob'))?.username).toBe('bob');
  } finally {
    await second.close();
  }
}, 30_000);

test("the service's main thread does not load the DynamoDB SDK", () => {
  const repo = resolve(__dirname, '../..');
  const script = `
    const { buildAuthService } = require('./supernode/auth/server');
    buildAuthService({ dataDir: ${JSON.stringify(join(dir, 'service'))}, port: 0, scryptN: 1024, logLevel: 'silent' })
      .then(async (service) => {
        const loaded = Object.keys(require.cache).filter((f) => /client-dynamodb|lib-dynamodb|dynalite/.test(f));
        await service.close();
        console.log(JSON.stringify(loaded));
      });`;
  const run = spawnSync(process.execPath, ['--require', 'tsx/cjs', '-e', script], {
    cwd: repo,
    encoding: 'utf8',
    timeout: 30_000,
  });
  expect(run.stderr).toBe('');
  expect(JSON.parse(run.stdout.trim().split('\n').pop() as string)).toEqual([]);
}, 40_000);
