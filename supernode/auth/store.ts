/*
 * Auth state in one DynamoDB table (docs/store.md). The table has only a string partition key `pk`;
 * every item also carries `itemType` (what it is) and, if it should expire, `ttl` (epoch seconds,
 * DynamoDB's TTL attribute):
 *
 *   pk                   itemType  attributes
 *   USER#<username>      USER      username passwordHash disabled createdAt passwordChangedAt failedLogins lockedUntil
 *   RT#<tokenHash>       RT        tokenHash familyId username issuedAt expiresAt [usedAt replacedBy] ttl
 *   FAM#<familyId>       FAM       familyId revokedAt expiresAt ttl          (present = family revoked)
 *   REV#<kind>#<id>      REV       kind id at expiresAt ttl                  (the access-token revocation list)
 *
 * All times in this module's API and items are epoch milliseconds, except `ttl` (seconds). TTL deletion
 * is lazy (typically within days), so reads treat an item past its expiry as absent themselves.
 * Writes that must not race are conditional; ConditionalCheckFailedException becomes the documented
 * return value, every other error propagates (the service answers 503). User input only ever reaches
 * DynamoDB as key values and ExpressionAttributeValues, never inside an expression string.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
} from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  ScanCommand,
  type ScanCommandOutput,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import type { LogSink } from '../shared/log';

export interface Account {
  username: string;
  passwordHash: string;
  disabled: boolean;
  createdAt: number;
  passwordChangedAt: number;
  failedLogins: number;
  lockedUntil: number;
}

export interface RefreshRecord {
  tokenHash: string;
  familyId: string;
  username: string;
  issuedAt: number;
  expiresAt: number;
  usedAt?: number;
  replacedBy?: string;
}

export type RefreshUse =
  | { status: 'rotated'; record: RefreshRecord }
  | { status: 'reused'; record: RefreshRecord }
  | { status: 'unknown' }
  | { status: 'expired'; record: RefreshRecord }
  | { status: 'family_revoked'; record: RefreshRecord };

export interface Revocation {
  kind: 'user' | 'family';
  id: string;
  at: number;
  expiresAt: number;
}

/** Where listRevocations reports that it stopped early. */
export type StoreLogger = LogSink<'warn'>;

export interface AccountStoreOptions {
  logger?: StoreLogger;
  /** listRevocations stops (and logs) after this many; default 100,000. */
  maxRevocations?: number;
}

/**
 * A refresh token item outlives its token by this long, so a late use still reads as 'expired' or
 * 'reused' (which revokes the family) rather than 'unknown'.
 */
export const REFRESH_RETENTION_MS = 24 * 60 * 60 * 1000;

const DEFAULT_MAX_REVOCATIONS = 100_000;
const TABLE_ACTIVE_WAIT_MS = 60_000;

/**
 * The low-level client (table management) and the document client (items as plain objects).
 *
 * - `endpoint` given (the embedded store, DynamoDB Local): that endpoint, static dummy credentials and,
 *   unless `region` is given, region 'local'; such servers accept any credentials.
 * - no `endpoint` (AWS): region and credentials from the default provider chain. The SDK itself
 *   honours AWS_ENDPOINT_URL_DYNAMODB and AWS_ENDPOINT_URL (resolved from the service id "DynamoDB"
 *   in @smithy/core's endpoint config, alongside `endpoint_url` in the shared config file).
 *
 * Timeouts are short because a caller (a login, a refresh) is waiting: 3 s to connect, 3 s for the
 * response, 3 attempts in all with the SDK's backoff; after that the service answers 503.
 */
export function createDynamoClients(options: { endpoint?: string; region?: string }): {
  client: DynamoDBClient;
  doc: DynamoDBDocumentClient;
} {
  const config: DynamoDBClientConfig = {
    maxAttempts: 3,
    // Without throwOnRequestTimeout the SDK only logs a warning when requestTimeout passes.
    requestHandler: { connectionTimeout: 3000, requestTimeout: 3000, throwOnRequestTimeout: true },
  };
  if (options.region) config.region = options.region;
  if (options.endpoint) {
    config.endpoint = options.endpoint;
    config.region = options.region ?? 'local';
    config.credentials = { accessKeyId: 'local', secretAccessKey: 'local' };
  }
  const client = new DynamoDBClient(config);
  // Optional RefreshRecord fields are left out rather than stored as NULL.
  const doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
  return { client, doc };
}

/**
 * Creates the table if it is missing and waits (at most a minute) until it is ACTIVE. For the embedded
 * store and explicit endpoints only: in AWS the CDK stack owns the table (with TTL and PITR, which
 * dynalite does not implement).
 */
export async function ensureTable(client: DynamoDBClient, tableName: string): Promise<void> {
  let status = await tableStatus(client, tableName);
  if (status === undefined) {
    try {
      // dynalite 4 accepts PAY_PER_REQUEST (validations/createTable.js), so no provisioned fallback.
      await client.send(
        new CreateTableCommand({
          TableName: tableName,
          AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
          KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
          BillingMode: 'PAY_PER_REQUEST',
        }),
      );
    } catch (err) {
      // Another process created it first.
      if (!isAwsError(err, 'ResourceInUseException')) throw err;
    }
    status = await tableStatus(client, tableName);
  }
  const deadline = Date.now() + TABLE_ACTIVE_WAIT_MS;
  for (let delay = 50; status !== 'ACTIVE'; delay = Math.min(delay * 2, 1000)) {
    if (Date.now() > deadline) {
      throw new Error(`table ${tableName} not ACTIVE after ${TABLE_ACTIVE_WAIT_MS} ms (status ${status})`);
    }
    await new Promise((r) => setTimeout(r, delay));
    status = await tableStatus(client, tableName);
  }
}

async function tableStatus(client: DynamoDBClient, tableName: string): Promise<string | undefined> {
  try {
    const out = await client.send(new DescribeTableCommand({ TableName: tableName }));
    return out.Table?.TableStatus ?? 'UNKNOWN';
  } catch (err) {
    if (isAwsError(err, 'ResourceNotFoundException')) return undefined;
    throw err;
  }
}

type Item = Record<string, unknown>;

export class AccountStore {
  private readonly logger: StoreLogger | undefined;
  private readonly maxRevocations: number;

  constructor(
    private readonly doc: DynamoDBDocumentClient,
    private readonly tableName: string,
    options: AccountStoreOptions = {},
  ) {
    this.logger = options.logger;
    this.maxRevocations = options.maxRevocations ?? DEFAULT_MAX_REVOCATIONS;
  }

  /** The condition makes two concurrent sign-ups of one name end in one 'created' and one 'exists'. */
  async createAccount(account: Account): Promise<'created' | 'exists'> {
    const ok = await this.conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: { pk: userKey(account.username), itemType: 'USER', ...accountAttributes(account) },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
    return ok ? 'created' : 'exists';
  }

  async getAccount(username: string): Promise<Account | undefined> {
    const item = await this.get(userKey(username));
    return item && toAccount(item);
  }

  /** False if there is no such account (the condition keeps an update from creating a stub item). */
  setPassword(username: string, passwordHash: string, changedAt: number): Promise<boolean> {
    return this.updateAccount(username, { passwordHash, passwordChangedAt: changedAt });
  }

  setDisabled(username: string, disabled: boolean): Promise<boolean> {
    return this.updateAccount(username, { disabled });
  }

  /** Adds one failure atomically (no read-modify-write) and returns the new count; 0 if no account. */
  async recordLoginFailure(username: string, lockedUntil: number): Promise<number> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: userKey(username) },
          UpdateExpression: 'ADD #f :one SET #l = :l',
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: { '#f': 'failedLogins', '#l': 'lockedUntil' },
          ExpressionAttributeValues: { ':one': 1, ':l': lockedUntil },
          ReturnValues: 'UPDATED_NEW',
        }),
      );
      return num(out.Attributes ?? {}, 'failedLogins');
    } catch (err) {
      if (isConditionFailure(err)) return 0;
      throw err;
    }
  }

  async clearLoginFailures(username: string): Promise<void> {
    await this.updateAccount(username, { failedLogins: 0, lockedUntil: 0 });
  }

  /** A token hash is never written twice; a collision means a bug, so it throws. */
  async putRefreshToken(record: RefreshRecord): Promise<void> {
    const ok = await this.conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: refreshKey(record.tokenHash),
            itemType: 'RT',
            ...refreshAttributes(record),
            ttl: ttlSeconds(record.expiresAt + REFRESH_RETENTION_MS),
          },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      ),
    );
    if (!ok) throw new Error('refresh token hash already stored');
  }

  /**
   * Uses a refresh token once. Order of checks:
   *
   * 1. One conditional UpdateItem marks the token used: it must exist, be unused and unexpired. DynamoDB
   *    evaluates conditions per item atomically, so of any number of concurrent uses exactly one passes.
   * 2. The winner then reads the family item (consistent read): revoked → 'family_revoked' (the token
   *    stays used; it was dead anyway), else 'rotated'. Reading after the write means a revocation
   *    written before the rotation is always seen; one racing it is caught when the new token is used.
   *    (An atomic check would need TransactWriteItems, which dynalite lacks.)
   * 3. A loser reads the token (consistent read): missing or past retention → 'unknown'; already used →
   *    'reused', even if also expired, since replaying a rotated token means a copy exists; otherwise
   *    past expiresAt → 'expired'. The family is not consulted: the caller revokes it on 'reused'
   *    anyway, and an expired token is refused either way.
   */
  async useRefreshToken(tokenHash: string, now: number, replacedBy: string): Promise<RefreshUse> {
    try {
      const out = await this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: refreshKey(tokenHash) },
          UpdateExpression: 'SET #u = :now, #r = :r',
          ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(#u) AND #e > :now',
          ExpressionAttributeNames: { '#u': 'usedAt', '#r': 'replacedBy', '#e': 'expiresAt' },
          ExpressionAttributeValues: { ':now': now, ':r': replacedBy },
          ReturnValues: 'ALL_NEW',
        }),
      );
      const record = toRefreshRecord(out.Attributes ?? {});
      if (await this.isFamilyRevoked(record.familyId, now)) return { status: 'family_revoked', record };
      return { status: 'rotated', record };
    } catch (err) {
      if (!isConditionFailure(err)) throw err;
    }
    const item = await this.get(refreshKey(tokenHash));
    if (!item) return { status: 'unknown' };
    const record = toRefreshRecord(item);
    if (record.expiresAt + REFRESH_RETENTION_MS <= now) return { status: 'unknown' };
    if (record.usedAt !== undefined) return { status: 'reused', record };
    if (record.expiresAt <= now) return { status: 'expired', record };
    // Unused and unexpired, yet the condition failed: only a clock `now` that moved backwards between
    // calls could get here. Refuse rather than guess.
    throw new Error('refresh token in an inconsistent state');
  }

  /**
   * Marks a token family revoked until `expiresAt` (when all its tokens have expired). Repeated calls
   * keep the longest expiry.
   */
  async revokeFamily(familyId: string, at: number, expiresAt: number): Promise<void> {
    await this.conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: familyKey(familyId),
            itemType: 'FAM',
            familyId,
            revokedAt: at,
            expiresAt,
            ttl: ttlSeconds(expiresAt),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR #e < :e',
          ExpressionAttributeNames: { '#e': 'expiresAt' },
          ExpressionAttributeValues: { ':e': expiresAt },
        }),
      ),
    );
  }

  async isFamilyRevoked(familyId: string, now: number = Date.now()): Promise<boolean> {
    const item = await this.get(familyKey(familyId));
    return item !== undefined && num(item, 'expiresAt') > now;
  }

  /**
   * Adds to the access-token revocation list. For one (kind, id) the latest `at` wins: a second
   * revocation of a user moves the cut-off forward; an older one arriving late changes nothing.
   */
  async putRevocation(revocation: Revocation): Promise<void> {
    const { kind, id, at, expiresAt } = revocation;
    await this.conditional(
      this.doc.send(
        new PutCommand({
          TableName: this.tableName,
          Item: {
            pk: revocationKey(kind, id),
            itemType: 'REV',
            kind,
            id,
            at,
            expiresAt,
            ttl: ttlSeconds(expiresAt),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR #a <= :a',
          ExpressionAttributeNames: { '#a': 'at' },
          ExpressionAttributeValues: { ':a': at },
        }),
      ),
    );
  }

  /**
   * Every revocation with expiresAt > now. A table with only a partition key cannot be queried by item
   * type, so this is a full Scan with a filter: it costs read capacity for the whole table (every
   * account and refresh token, about 1 RRU per 8 KB), not just for the few revocations returned. That
   * is acceptable while the table is small or the list is rebuilt rarely; at scale give REV items a
   * sparse GSI (or their own table) and Query it instead. Paginates fully; stops at maxRevocations.
   */
  async listRevocations(now: number): Promise<Revocation[]> {
    const result: Revocation[] = [];
    let startKey: ScanCommandOutput['LastEvaluatedKey'];
    do {
      const page = await this.doc.send(
        new ScanCommand({
          TableName: this.tableName,
          FilterExpression: '#t = :rev AND #e > :now',
          ProjectionExpression: '#k, #i, #a, #e',
          ExpressionAttributeNames: {
            '#t': 'itemType',
            '#k': 'kind',
            '#i': 'id',
            '#a': 'at',
            '#e': 'expiresAt',
          },
          ExpressionAttributeValues: { ':rev': 'REV', ':now': now },
          ExclusiveStartKey: startKey,
        }),
      );
      for (const item of page.Items ?? []) {
        if (result.length >= this.maxRevocations) {
          this.logger?.warn(
            { limit: this.maxRevocations },
            'revocation list truncated: more unexpired revocations than the limit',
          );
          return result;
        }
        result.push(toRevocation(item));
      }
      startKey = page.LastEvaluatedKey;
    } while (startKey);
    return result;
  }

  private async get(pk: string): Promise<Item | undefined> {
    const out = await this.doc.send(
      new GetCommand({ TableName: this.tableName, Key: { pk }, ConsistentRead: true }),
    );
    return out.Item;
  }

  /** Sets attributes of an existing account; false if there is none. */
  private updateAccount(username: string, values: Partial<Omit<Account, 'username'>>): Promise<boolean> {
    const names: Record<string, string> = {};
    const attrValues: Record<string, unknown> = {};
    const sets = Object.entries(values).map(([field, value], i) => {
      names[`#n${i}`] = field;
      attrValues[`:v${i}`] = value;
      return `#n${i} = :v${i}`;
    });
    return this.conditional(
      this.doc.send(
        new UpdateCommand({
          TableName: this.tableName,
          Key: { pk: userKey(username) },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: 'attribute_exists(pk)',
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: attrValues,
        }),
      ),
    );
  }

  /** Awaits a conditional write: true if it happened, false if its condition failed. */
  private async conditional(write: Promise<unknown>): Promise<boolean> {
    try {
      await write;
      return true;
    } catch (err) {
      if (isConditionFailure(err)) return false;
      throw err;
    }
  }
}

const userKey = (username: string) => `USER#${username}`;
const refreshKey = (tokenHash: string) => `RT#${tokenHash}`;
const familyKey = (familyId: string) => `FAM#${familyId}`;
const revocationKey = (kind: Revocation['kind'], id: string) => `REV#${kind}#${id}`;

/** DynamoDB TTL wants whole epoch seconds; rounding up never deletes an item early. */
const ttlSeconds = (epochMs: number) => Math.ceil(epochMs / 1000);

function accountAttributes(a: Account): Account {
  return {
    username: a.username,
    passwordHash: a.passwordHash,
    disabled: a.disabled,
    createdAt: a.createdAt,
    passwordChangedAt: a.passwordChangedAt,
    failedLogins: a.failedLogins,
    lockedUntil: a.lockedUntil,
  };
}

function refreshAttributes(r: RefreshRecord): RefreshRecord {
  return {
    tokenHash: r.tokenHash,
    familyId: r.familyId,
    username: r.username,
    issuedAt: r.issuedAt,
    expiresAt: r.expiresAt,
    usedAt: r.usedAt,
    replacedBy: r.replacedBy,
  };
}

function toAccount(item: Item): Account {
  return {
    username: str(item, 'username'),
    passwordHash: str(item, 'passwordHash'),
    disabled: item.disabled === true,
    createdAt: num(item, 'createdAt'),
    passwordChangedAt: num(item, 'passwordChangedAt'),
    failedLogins: num(item, 'failedLogins'),
    lockedUntil: num(item, 'lockedUntil'),
  };
}

function toRefreshRecord(item: Item): RefreshRecord {
  const record: RefreshRecord = {
    tokenHash: str(item, 'tokenHash'),
    familyId: str(item, 'familyId'),
    username: str(item, 'username'),
    issuedAt: num(item, 'issuedAt'),
    expiresAt: num(item, 'expiresAt'),
  };
  if (typeof item.usedAt === 'number') record.usedAt = item.usedAt;
  if (typeof item.replacedBy === 'string') record.replacedBy = item.replacedBy;
  return record;
}

function toRevocation(item: Item): Revocation {
  const kind = item.kind;
  if (kind !== 'user' && kind !== 'family') throw new Error('stored item: kind is not user or family');
  return { kind, id: str(item, 'id'), at: num(item, 'at'), expiresAt: num(item, 'expiresAt') };
}

// Items are only written by this module, so a wrong type means a corrupt item: fail loudly.
function str(item: Item, field: string): string {
  const value = item[field];
  if (typeof value !== 'string') throw new Error(`stored item: ${field} is not a string`);
  return value;
}

function num(item: Item, field: string): number {
  const value = item[field];
  if (typeof value !== 'number') throw new Error(`stored item: ${field} is not a number`);
  return value;
}

function isAwsError(err: unknown, name: string): boolean {
  // By name, not instanceof: holds across duplicated SDK copies, mocked clients and Jest's sandbox.
  return typeof err === 'object' && err !== null && 'name' in err && err.name === name;
}

const isConditionFailure = (err: unknown) => isAwsError(err, 'ConditionalCheckFailedException');
