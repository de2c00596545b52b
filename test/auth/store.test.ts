import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DescribeTableCommand, type DynamoDBClient, ListTablesCommand } from '@aws-sdk/client-dynamodb';
import { type EmbeddedDynamo, startEmbeddedDynamo } from '../../supernode/auth/embedded-store';
import {
  type Account,
  AccountStore,
  createDynamoClients,
  ensureTable,
  REFRESH_RETENTION_MS,
  type RefreshRecord,
} from '../../supernode/auth/store';

const TABLE = 'auth-test';
const NOW = 1_900_000_000_000;
const HOUR = 3_600_000;

let dir: string;
let dataPath: string;
let embedded: EmbeddedDynamo;
let client: DynamoDBClient;
let store: AccountStore;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'auth-store-'));
  dataPath = join(dir, 'dynamo');
  embedded = await startEmbeddedDynamo({ path: dataPath });
  const clients = createDynamoClients({ endpoint: embedded.endpoint });
  client = clients.client;
  await ensureTable(client, TABLE);
  store = new AccountStore(clients.doc, TABLE);
});

afterAll(async () => {
  client?.destroy();
  await embedded?.close();
  await rm(dir, { recursive: true, force: true });
});

const account = (username: string, passwordHash = 'hash-1'): Account => ({
  username,
  passwordHash,
  disabled: false,
  createdAt: NOW,
  passwordChangedAt: NOW,
  failedLogins: 0,
  lockedUntil: 0,
});

let tokenSeq = 0;
async function newToken(overrides: Partial<RefreshRecord> = {}): Promise<RefreshRecord> {
  tokenSeq++;
  const record: RefreshRecord = {
    tokenHash: `hash-${tokenSeq}`,
    familyId: `fam-${tokenSeq}`,
    username: 'alice',
    issuedAt: NOW,
    expiresAt: NOW + HOUR,
    ...overrides,
  };
  await store.putRefreshToken(record);
  return record;
}

describe('ensureTable', () => {
  it('is idempotent and leaves the table ACTIVE', async () => {
    await ensureTable(client, TABLE);
    await Promise.all([ensureTable(client, 'auth-race'), ensureTable(client, 'auth-race')]);
    for (const name of [TABLE, 'auth-race']) {
      const out = await client.send(new DescribeTableCommand({ TableName: name }));
      expect(out.Table?.TableStatus).toBe('ACTIVE');
      expect(out.Table?.KeySchema).toEqual([{ AttributeName: 'pk', KeyType: 'HASH' }]);
    }
  });
});

describe('accounts', () => {
  it('creates, reads and refuses a second account of the same name', async () => {
    expect(await store.getAccount('alice')).toBeUndefined();
    expect(await store.createAccount(account('alice'))).toBe('created');
    expect(await store.createAccount(account('alice', 'other'))).toBe('exists');
    expect(await store.getAccount('alice')).toEqual(account('alice'));
  });

  it('lets exactly one of 20 concurrent sign-ups of one name succeed', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) => store.createAccount(account('racer', `hash-${i}`))),
    );
    expect(results.filter((r) => r === 'created')).toHaveLength(1);
    const winner = results.indexOf('created');
    expect((await store.getAccount('racer'))?.passwordHash).toBe(`hash-${winner}`);
  });

  it('updates the password and disabled flag of existing accounts only', async () => {
    await store.createAccount(account('bob'));
    expect(await store.setPassword('bob', 'hash-2', NOW + 5)).toBe(true);
    expect(await store.setDisabled('bob', true)).toBe(true);
    expect(await store.getAccount('bob')).toMatchObject({
      passwordHash: 'hash-2',
      passwordChangedAt: NOW + 5,
      disabled: true,
    });

    expect(await store.setPassword('nobody', 'hash', NOW)).toBe(false);
    expect(await store.setDisabled('nobody', true)).toBe(false);
    expect(await store.getAccount('nobody')).toBeUndefined();
  });

  it('counts concurrent login failures atomically and clears them', async () => {
    await store.createAccount(account('carol'));
    const counts = await Promise.all(
      Array.from({ length: 10 }, () => store.recordLoginFailure('carol', NOW + 30_000)),
    );
    expect([...counts].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(await store.getAccount('carol')).toMatchObject({ failedLogins: 10, lockedUntil: NOW + 30_000 });

    await store.clearLoginFailures('carol');
    expect(await store.getAccount('carol')).toMatchObject({ failedLogins: 0, lockedUntil: 0 });
  });

  it('records no failure for an unknown account', async () => {
    expect(await store.recordLoginFailure('ghost', NOW)).toBe(0);
    await store.clearLoginFailures('ghost');
    expect(await store.getAccount('ghost')).toBeUndefined();
  });
});

describe('refresh tokens', () => {
  it('rotates a token once, then reports reuse', async () => {
    const record = await newToken();
    expect(await store.useRefreshToken(record.tokenHash, NOW + 1, 'next-1')).toEqual({
      status: 'rotated',
      record: { ...record, usedAt: NOW + 1, replacedBy: 'next-1' },
    });
    expect(await store.useRefreshToken(record.tokenHash, NOW + 2, 'next-2')).toEqual({
      status: 'reused',
      record: { ...record, usedAt: NOW + 1, replacedBy: 'next-1' },
    });
  });

  it('rotates exactly once under 10 concurrent uses', async () => {
    const record = await newToken();
    const uses = await Promise.all(
      Array.from({ length: 10 }, (_, i) => store.useRefreshToken(record.tokenHash, NOW + 1, `next-${i}`)),
    );
    const statuses = uses.map((u) => u.status);
    expect(statuses.filter((s) => s === 'rotated')).toHaveLength(1);
    expect(statuses.filter((s) => s === 'reused')).toHaveLength(9);
    // The stored successor is the winner's.
    const winner = statuses.indexOf('rotated');
    for (const use of uses) {
      if (use.status !== 'unknown') expect(use.record.replacedBy).toBe(`next-${winner}`);
    }
  });

  it('reports an unknown token', async () => {
    expect(await store.useRefreshToken('no-such-hash', NOW, 'next')).toEqual({ status: 'unknown' });
  });

  it('reports an expired token, and forgets it after the retention period', async () => {
    const record = await newToken({ expiresAt: NOW + HOUR });
    expect(await store.useRefreshToken(record.tokenHash, NOW + HOUR, 'next')).toEqual({
      status: 'expired',
      record,
    });
    // TTL deletion is lazy: the item may still be there, but it reads as gone.
    expect(await store.useRefreshToken(record.tokenHash, NOW + HOUR + REFRESH_RETENTION_MS, 'next')).toEqual({
      status: 'unknown',
    });
  });

  it('reports reuse of a rotated token even after it expired', async () => {
    const record = await newToken({ expiresAt: NOW + HOUR });
    expect((await store.useRefreshToken(record.tokenHash, NOW, 'next')).status).toBe('rotated');
    expect((await store.useRefreshToken(record.tokenHash, NOW + 2 * HOUR, 'again')).status).toBe('reused');
  });

  it('refuses a token of a revoked family until the revocation expires', async () => {
    const record = await newToken();
    expect(await store.isFamilyRevoked(record.familyId, NOW)).toBe(false);
    await store.revokeFamily(record.familyId, NOW, NOW + 2 * HOUR);
    // A shorter second revocation does not cut the first one short.
    await store.revokeFamily(record.familyId, NOW + 1, NOW + HOUR);
    expect(await store.isFamilyRevoked(record.familyId, NOW + HOUR + 1)).toBe(true);
    expect(await store.isFamilyRevoked(record.familyId, NOW + 2 * HOUR)).toBe(false);

    const use = await store.useRefreshToken(record.tokenHash, NOW + 1, 'next');
    expect(use.status).toBe('family_revoked');
    expect(await store.isFamilyRevoked('fam-other', NOW)).toBe(false);
  });

  it('never stores one token hash twice', async () => {
    const record = await newToken();
    await expect(store.putRefreshToken({ ...record, familyId: 'fam-x' })).rejects.toThrow('already stored');
  });
});

describe('revocations', () => {
  it('lists unexpired revocations only, the latest per user', async () => {
    const rev = new AccountStore(createDynamoClients({ endpoint: embedded.endpoint }).doc, 'auth-rev');
    await ensureTable(client, 'auth-rev');
    await rev.createAccount(account('dave'));
    await rev.putRevocation({ kind: 'user', id: 'dave', at: NOW, expiresAt: NOW + HOUR });
    await rev.putRevocation({ kind: 'user', id: 'dave', at: NOW + 10, expiresAt: NOW + HOUR + 10 });
    await rev.putRevocation({ kind: 'user', id: 'dave', at: NOW + 5, expiresAt: NOW + HOUR + 5 });
    await rev.putRevocation({ kind: 'family', id: 'dave', at: NOW, expiresAt: NOW + 2 * HOUR });
    await rev.putRevocation({ kind: 'user', id: 'erin', at: NOW - 2 * HOUR, expiresAt: NOW - HOUR });
    await rev.revokeFamily('fam-1', NOW, NOW + HOUR);

    const byKey = (list: { kind: string; id: string }[]) =>
      [...list].sort((a, b) => `${a.kind}${a.id}`.localeCompare(`${b.kind}${b.id}`));
    expect(byKey(await rev.listRevocations(NOW))).toEqual([
      { kind: 'family', id: 'dave', at: NOW, expiresAt: NOW + 2 * HOUR },
      { kind: 'user', id: 'dave', at: NOW + 10, expiresAt: NOW + HOUR + 10 },
    ]);
    expect(await rev.listRevocations(NOW + HOUR + 10)).toEqual([
      { kind: 'family', id: 'dave', at: NOW, expiresAt: NOW + 2 * HOUR },
    ]);
    expect(await rev.listRevocations(NOW + 2 * HOUR)).toEqual([]);
  });

  it('paginates the scan fully and stops at the limit, with a warning', async () => {
    await ensureTable(client, 'auth-rev-many');
    const doc = createDynamoClients({ endpoint: embedded.endpoint }).doc;
    const writer = new AccountStore(doc, 'auth-rev-many');
    // ~1.2 MB of padding: more than the 1 MB a Scan page returns.
    for (let i = 0; i < 6; i++) await writer.createAccount(account(`pad-${i}`, 'x'.repeat(200_000)));
    for (let i = 0; i < 5; i++) {
      await writer.putRevocation({ kind: 'user', id: `u${i}`, at: NOW, expiresAt: NOW + HOUR });
    }
    expect(await writer.listRevocations(NOW)).toHaveLength(5);

    const warn = jest.fn();
    const capped = new AccountStore(doc, 'auth-rev-many', { logger: { warn }, maxRevocations: 3 });
    expect(await capped.listRevocations(NOW)).toHaveLength(3);
    expect(warn).toHaveBeenCalledTimes(1);
  });
});

describe('embedded store', () => {
  it('keeps data across a restart on the same path, and refuses a second opener meanwhile', async () => {
    await store.createAccount(account('persisted'));
    await expect(startEmbeddedDynamo({ path: dataPath })).rejects.toThrow('already open');

    client.destroy();
    await embedded.close();
    await embedded.close();
    embedded = await startEmbeddedDynamo({ path: dataPath });
    const clients = createDynamoClients({ endpoint: embedded.endpoint });
    client = clients.client;
    store = new AccountStore(clients.doc, TABLE);
    expect(await store.getAccount('persisted')).toEqual(account('persisted'));
  });

  it('releases the store when the port is taken', async () => {
    const blocker: Server = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address() as AddressInfo;
    const path = join(dir, 'busy');
    try {
      await expect(startEmbeddedDynamo({ path, port })).rejects.toThrow('EADDRINUSE');
    } finally {
      await new Promise((r) => blocker.close(r));
    }
    const again = await startEmbeddedDynamo({ path });
    await again.close();
  });
});

describe('createDynamoClients', () => {
  it('uses an explicit endpoint with region local', async () => {
    const { client: c } = createDynamoClients({ endpoint: embedded.endpoint });
    try {
      const endpoint = await c.config.endpoint?.();
      expect(`${endpoint?.protocol}//${endpoint?.hostname}:${endpoint?.port}`).toBe(embedded.endpoint);
      expect(await c.config.region()).toBe('local');
      expect((await c.send(new ListTablesCommand({}))).TableNames).toContain(TABLE);
    } finally {
      c.destroy();
    }
  });

  it('lets the SDK take the endpoint from AWS_ENDPOINT_URL_DYNAMODB when none is given', async () => {
    const vars = ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'] as const;
    const saved = vars.map((v) => process.env[v]);
    process.env.AWS_ENDPOINT_URL_DYNAMODB = embedded.endpoint;
    process.env.AWS_ACCESS_KEY_ID = 'test';
    process.env.AWS_SECRET_ACCESS_KEY = 'test';
    const { client: c } = createDynamoClients({ region: 'eu-west-1' });
    try {
      expect((await c.send(new ListTablesCommand({}))).TableNames).toContain(TABLE);
    } finally {
      c.destroy();
      vars.forEach((v, i) => {
        if (saved[i] === undefined) delete process.env[v];
        else process.env[v] = saved[i];
      });
    }
  });
});
