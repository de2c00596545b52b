import { createHash, randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { type Static, Type } from '@sinclair/typebox';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  LogController,
} from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import { type AuthConfig, authOptionTable, checkAuthConfig } from '../config/auth-options';
import { resolveOptions } from '../config/options';
import type { CloudWatchPublisher, MetricSample } from '../metrics/cloudwatch';
import { isLoopback, writeAtomically } from '../shared/files';
import { KeyedLimiter } from '../shared/keyed-limiter';
import { createLogger, type Logger } from '../shared/log';
import { DeadlineExceededError, HashPool } from './admission';
import { type EmbeddedDynamo, startEmbeddedDynamo } from './embedded-store';
import { FileKeyRingStorage, KeyRing, type KeyRingStorage } from './key-ring';
import { dummyVerify, hashPassword, needsRehash, type ScryptParams, verifyPassword } from './passwords';
import type { S3Publisher } from './publisher';
import type { SecretsManagerKeyRingStorage } from './secrets-key-ring';
import { signAccessToken } from './signing';
import {
  type Account,
  AccountStore,
  createDynamoClients,
  ensureTable,
  newAccount,
  type Revocation,
} from './store';

export interface AuthServiceOptions extends Partial<AuthConfig> {
  logger?: Logger;
  /** Where signing keys live; defaults to `keyRingSecret` if set, else a file under `dataDir`. */
  keyStorage?: KeyRingStorage;
}

export interface AuthService {
  readonly app: FastifyInstance;
  readonly config: Readonly<AuthConfig>;
  readonly pool: HashPool;
  readonly keys: KeyRing;
  readonly store: AccountStore;
  /** Files that supernodes can read while this service is down. */
  readonly files: { jwks: string; revocations: string };
  /** Copies those files to S3 (with `publishBucket`). */
  readonly publisher?: S3Publisher;
  /** Sends login figures to CloudWatch (with `cloudwatch`); started by listen(). */
  readonly cloudWatch?: CloudWatchPublisher;
  listen(): Promise<{ port: number; url: string }>;
  /** Rebuilds the published revocation list from the store now (also runs on a timer). */
  publishRevocations(): Promise<void>;
  close(): Promise<void>;
}

/** Usernames are the user ids supernodes see (`sub`): lowercase, so "Alice" and "alice" are one user. */
export const USERNAME_PATTERN = '^[a-z0-9][a-z0-9._-]{2,31}$';
const Username = Type.String({ pattern: USERNAME_PATTERN, minLength: 3, maxLength: 32 });
// Length bounds the hash input; 8 is the NIST SP 800-63B minimum for user-chosen secrets.
const Password = Type.String({ minLength: 8, maxLength: 256 });
const RefreshToken = Type.String({ pattern: '^[A-Za-z0-9_-]{43}$' });
const Credentials = Type.Object({ username: Username, password: Password }, { additionalProperties: false });
const PasswordChange = Type.Object(
  { username: Username, currentPassword: Password, newPassword: Password },
  { additionalProperties: false },
);
const RefreshBody = Type.Object({ refreshToken: RefreshToken }, { additionalProperties: false });
const UsernameParams = Type.Object({ username: Username }, { additionalProperties: false });

/** Typed error bodies: `{ error, message }`, plus `retryAfterMs` where waiting helps. */
type AuthErrorCode =
  | 'bad_request'
  | 'unsupported_media_type'
  | 'payload_too_large'
  | 'not_found'
  | 'method_not_allowed'
  | 'invalid_credentials'
  | 'account_disabled'
  | 'username_taken'
  | 'invalid_refresh_token'
  | 'too_many_requests'
  | 'too_many_attempts'
  | 'overloaded'
  | 'store_unavailable'
  | 'forbidden'
  | 'internal';

const MAX_BODY_BYTES = 4096;

export async function buildAuthService(options: AuthServiceOptions = {}): Promise<AuthService> {
  const { logger, keyStorage, ...given } = options;
  const config = checkAuthConfig(resolveOptions(authOptionTable, given));
  const log = logger ?? createLogger(config.logLevel, 'auth');
  const authDir = join(config.dataDir, 'auth');
  const files = { jwks: join(authDir, 'jwks.json'), revocations: join(authDir, 'revocations.json') };
  const scrypt: ScryptParams = {
    N: config.scryptN,
    r: config.scryptR,
    p: config.scryptP,
    keyLength: 32,
    saltLength: 16,
  };

  let embedded: EmbeddedDynamo | undefined;
  let endpoint = config.dynamodbEndpoint;
  if (!endpoint && !config.awsDynamodb) {
    embedded = await startEmbeddedDynamo({ path: join(config.dataDir, 'dynamo') });
    endpoint = embedded.endpoint;
  }
  const { client, doc } = createDynamoClients({ endpoint, region: config.region });
  // The AWS SDK clients below load only when used: each costs tens of MB of start-up memory.
  const publisher: S3Publisher | undefined = config.publishBucket
    ? new (require('./publisher') as typeof import('./publisher')).S3Publisher({
        bucket: config.publishBucket,
        prefix: config.publishPrefix,
        region: config.region,
        log,
      })
    : undefined;
  const secretStorage: SecretsManagerKeyRingStorage | undefined =
    !keyStorage && config.keyRingSecret
      ? new (
          require('./secrets-key-ring') as typeof import('./secrets-key-ring')
        ).SecretsManagerKeyRingStorage({ secretId: config.keyRingSecret, region: config.region })
      : undefined;
  // In AWS the table belongs to the stack; locally it is created on first start.
  if (endpoint) await ensureTable(client, config.table);
  const store = new AccountStore(doc, config.table, { logger: log });

  const accessTtlMs = config.accessTtlSec * 1000;
  const keys = new KeyRing({
    storage: keyStorage ?? secretStorage ?? new FileKeyRingStorage(join(authDir, 'signing-keys.json')),
    rotationMs: config.keyRotationSec * 1000,
    publishLeadMs: config.keyPublishLeadSec * 1000,
    // Tokens a retiring key signed live at most one access lifetime, plus supernodes' clock tolerance.
    retainMs: accessTtlMs + 60_000,
    jwksFile: files.jwks,
    // Same freshness as the HTTP route.
    onJwks: publisher && ((text) => publisher.publish('jwks.json', `${text}\n`, 'public, max-age=60')),
    log,
  });
  await keys.start();

  const pool = new HashPool({
    concurrency: config.hashConcurrency || availableParallelism(),
    maxQueue: config.hashQueue,
    deadlineMs: config.hashDeadlineMs,
  });
  const cheapLimit = { inFlight: 0 };
  const ipLogins = new KeyedLimiter(
    config.ipLoginsPerMinute,
    Math.max(1, Math.ceil(config.ipLoginsPerMinute / 4)),
  );
  const ipRefreshes = new KeyedLimiter(
    config.ipRefreshesPerMinute,
    Math.max(1, Math.ceil(config.ipRefreshesPerMinute / 4)),
  );
  const accountLogins = new KeyedLimiter(config.accountLoginsPerMinute, config.accountLoginsPerMinute);
  // Failed-login counts of usernames with no account, so they lock exactly like real ones.
  const phantomFailures = new Map<string, { failures: number; lockedUntil: number }>();
  // Running totals for CloudWatch, which gets what each tick added (docs/auth.md#cloudwatch).
  const totals = { admitted: 0, shed: 0, succeeded: 0, refreshes: 0 };
  /** Password-class work counted as admitted once it holds a hash slot. */
  const counted =
    <T>(job: () => Promise<T>) =>
    (): Promise<T> => {
      totals.admitted++;
      return job();
    };

  // Metrics: what the pool is doing, measured at the pool (an event-loop check cannot see libuv's threads).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const requests = new Counter({
    name: 'auth_requests_total',
    help: 'Requests by route and outcome',
    labelNames: ['route', 'outcome'],
    registers,
  });
  const shed = new Counter({
    name: 'auth_shed_total',
    help: 'Requests refused before any work, by class and reason',
    labelNames: ['class', 'reason'],
    registers,
  });
  const poolWait = new Histogram({
    name: 'auth_hash_pool_wait_seconds',
    help: 'Time logins waited for a hash slot',
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
    registers,
  });
  pool.onWait = (ms: number) => poolWait.observe(ms / 1000);
  new Gauge({
    name: 'auth_hash_pool_in_flight',
    help: 'Hashes running',
    registers,
    collect() {
      this.set(pool.stats.inFlight);
    },
  });
  new Gauge({
    name: 'auth_hash_pool_queued',
    help: 'Logins waiting for a hash slot',
    registers,
    collect() {
      this.set(pool.stats.queued);
    },
  });
  new Gauge({
    name: 'auth_hash_run_seconds_ewma',
    help: 'Recent hash duration',
    registers,
    collect() {
      this.set(pool.stats.runMsEwma / 1000);
    },
  });
  new Gauge({
    name: 'auth_cheap_in_flight',
    help: 'Refresh requests running',
    registers,
    collect() {
      this.set(cheapLimit.inFlight);
    },
  });

  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: MAX_BODY_BYTES,
    // One hop, the ALB: it appends the address it saw to X-Forwarded-For, so that last entry is the
    // client. `true` trusted every hop and took the first entry, which the client writes itself: any
    // caller could pick a new address per request and escape the per-IP limits (found by
    // test/hostile/auth-api.test.ts).
    trustProxy: config.trustProxy ? (_address: string, hop: number) => hop === 0 : false,
    requestTimeout: 30_000,
    return503OnClosing: true,
    // Node checks headersTimeout (below) only every connectionsCheckingInterval, 30 s by default: a
    // slow-loris request held its connection 30-40 s instead of 10 (test/hostile/slow.test.ts).
    http: { connectionsCheckingInterval: 1000 },
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  });
  app.server.headersTimeout = 10_000;
  app.server.maxConnections = config.maxConnections;
  // JSON only: a text/plain body is a wrong content type, not a string to validate.
  app.removeContentTypeParser('text/plain');

  const fail = (
    reply: FastifyReply,
    status: number,
    error: AuthErrorCode,
    message: string,
    retryAfterMs?: number,
  ) => {
    if (retryAfterMs !== undefined)
      reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfterMs / 1000))));
    reply.code(status);
    return retryAfterMs === undefined ? { error, message } : { error, message, retryAfterMs };
  };

  app.setErrorHandler((error: FastifyError, request, reply) => {
    if (error.validation) return reply.send(fail(reply, 400, 'bad_request', error.message));
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return reply.send(fail(reply, 413, 'payload_too_large', `request body over ${MAX_BODY_BYTES} bytes`));
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
        return reply.send(fail(reply, 415, 'unsupported_media_type', 'send application/json'));
    }
    if ((error.statusCode ?? 500) < 500)
      return reply.send(fail(reply, error.statusCode ?? 400, 'bad_request', error.message));
    request.log.error({ err: error, route: request.routeOptions.url }, 'request failed');
    return reply.send(fail(reply, 500, 'internal', 'internal error'));
  });
  app.setNotFoundHandler((_request, reply) => reply.send(fail(reply, 404, 'not_found', 'no such route')));

  /** The cheap class: bounded concurrency and a per-IP rate, shed with 503/429 before any store access. */
  const cheap = async <T>(
    request: FastifyRequest,
    reply: FastifyReply,
    route: string,
    work: () => Promise<T>,
  ) => {
    const wait = ipRefreshes.take(request.ip, Date.now());
    if (wait > 0) {
      shed.inc({ class: 'cheap', reason: 'ip_rate' });
      return fail(reply, 429, 'too_many_requests', 'too many requests from this address', jitter(wait));
    }
    if (config.admissionControl && cheapLimit.inFlight >= config.cheapConcurrency) {
      shed.inc({ class: 'cheap', reason: 'busy' });
      return fail(reply, 503, 'overloaded', 'too many requests in progress', jitter(250));
    }
    cheapLimit.inFlight++;
    try {
      return await work();
    } catch (err) {
      request.log.error({ err: describe(err), route }, 'store call failed');
      requests.inc({ route, outcome: 'store_unavailable' });
      return fail(reply, 503, 'store_unavailable', 'account store unavailable', jitter(1000));
    } finally {
      cheapLimit.inFlight--;
    }
  };

  /**
   * The expensive class: per-IP and per-account limits, then a place in the hash pool reserved
   * before any store access; shed at once with 503 and jittered advice when the pool is full.
   */
  const withHashSlot = async (
    request: FastifyRequest,
    reply: FastifyReply,
    route: string,
    username: string,
    work: (run: <T>(job: () => Promise<T>) => Promise<T>) => Promise<object>,
  ): Promise<object> => {
    if (!config.admissionControl) return naive(request, reply, route, work);
    const now = Date.now();
    const ipWait = ipLogins.take(request.ip, now);
    if (ipWait > 0) {
      shed.inc({ class: 'login', reason: 'ip_rate' });
      totals.shed++;
      requests.inc({ route, outcome: 'ip_rate' });
      return fail(reply, 429, 'too_many_requests', 'too many attempts from this address', jitter(ipWait));
    }
    const accountWait = accountLogins.take(username, now);
    if (accountWait > 0) {
      shed.inc({ class: 'login', reason: 'account_rate' });
      totals.shed++;
      requests.inc({ route, outcome: 'account_rate' });
      return fail(reply, 429, 'too_many_attempts', 'too many attempts for this account', jitter(accountWait));
    }
    const reservation = pool.reserve();
    if (!reservation.admitted) {
      shed.inc({ class: 'login', reason: reservation.reason });
      totals.shed++;
      requests.inc({ route, outcome: 'shed' });
      return fail(reply, 503, 'overloaded', 'login capacity is full; retry later', reservation.retryAfterMs);
    }
    const ticket = reservation.ticket;
    try {
      return await work((job) => ticket.run(counted(job)));
    } catch (err) {
      if (err instanceof DeadlineExceededError) {
        shed.inc({ class: 'login', reason: 'deadline' });
        totals.shed++;
        requests.inc({ route, outcome: 'deadline' });
        return fail(reply, 503, 'overloaded', 'login capacity is full; retry later', err.retryAfterMs);
      }
      request.log.error({ err: describe(err), route }, 'login work failed');
      requests.inc({ route, outcome: 'store_unavailable' });
      return fail(reply, 503, 'store_unavailable', 'account store unavailable', jitter(1000));
    } finally {
      ticket.cancel(); // no-op once run; frees the place if the work never reached the pool
    }
  };

  /** The baseline the benchmark compares against: every request hashes at once, nothing is shed. */
  const naive = async (
    request: FastifyRequest,
    reply: FastifyReply,
    route: string,
    work: (run: <T>(job: () => Promise<T>) => Promise<T>) => Promise<object>,
  ): Promise<object> => {
    try {
      return await work((job) => counted(job)());
    } catch (err) {
      request.log.error({ err: describe(err), route }, 'login work failed');
      return fail(reply, 503, 'store_unavailable', 'account store unavailable', jitter(1000));
    }
  };

  const lockFor = (failures: number): number =>
    failures < config.lockoutThreshold
      ? 0
      : Math.min(config.lockoutMaxSec, config.lockoutBaseSec * 2 ** (failures - config.lockoutThreshold)) *
        1000;

  /** Same answer for a locked real account and a locked unknown name: no hint that the account exists. */
  const lockedUntil = (account: Account | undefined, username: string, now: number): number => {
    const until = account ? account.lockedUntil : (phantomFailures.get(username)?.lockedUntil ?? 0);
    return until > now ? until : 0;
  };

  const recordFailure = async (
    account: Account | undefined,
    username: string,
    now: number,
  ): Promise<void> => {
    if (account) {
      await store.recordLoginFailure(username, now + lockFor(account.failedLogins + 1));
      return;
    }
    const entry = phantomFailures.get(username) ?? { failures: 0, lockedUntil: 0 };
    entry.failures++;
    entry.lockedUntil = now + lockFor(entry.failures);
    phantomFailures.delete(username);
    phantomFailures.set(username, entry);
    if (phantomFailures.size > 100_000) phantomFailures.delete(phantomFailures.keys().next().value as string);
  };

  const issueTokens = async (username: string, familyId: string) => {
    const now = Date.now();
    const refreshToken = randomBytes(32).toString('base64url');
    await store.putRefreshToken({
      tokenHash: sha256(refreshToken),
      familyId,
      username,
      issuedAt: now,
      expiresAt: now + config.refreshTtlSec * 1000,
    });
    const accessToken = await signAccessToken(keys.signingKey(), {
      sub: username,
      aud: config.audience,
      iss: config.issuer,
      sid: familyId,
      ttlSec: config.accessTtlSec,
    });
    return { tokenType: 'Bearer', accessToken, expiresIn: config.accessTtlSec, refreshToken };
  };

  const revoke = async (revocation: Omit<Revocation, 'expiresAt'>): Promise<void> => {
    // Tokens issued before `at` are all expired one access lifetime (plus skew) later.
    await store.putRevocation({ ...revocation, expiresAt: revocation.at + accessTtlMs + 60_000 });
    // Published at once from here; other instances pick it up on their next rebuild.
    await publishRevocations();
  };

  app.get('/healthz', async () => ({ status: 'ok', uptimeS: Math.round(process.uptime()) }));
  app.get('/readyz', async (_request, reply) => {
    const saturated = pool.stats.queued >= config.hashQueue;
    reply.code(200);
    return { ready: true, hashPool: { inFlight: pool.stats.inFlight, queued: pool.stats.queued, saturated } };
  });
  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', registry.contentType);
    return registry.metrics();
  });
  app.get('/.well-known/jwks.json', async (request, reply) => {
    const wait = ipRefreshes.take(request.ip, Date.now());
    if (wait > 0)
      return fail(reply, 429, 'too_many_requests', 'too many requests from this address', jitter(wait));
    // Supernodes re-read every minute; a CDN or proxy may serve this for as long.
    reply.header('cache-control', 'public, max-age=60').type('application/json');
    return keys.jwks();
  });
  let revocationsText = JSON.stringify({ generatedAt: 0, entries: [] });
  app.get('/v1/revocations', async (request, reply) => {
    const wait = ipRefreshes.take(request.ip, Date.now());
    if (wait > 0)
      return fail(reply, 429, 'too_many_requests', 'too many requests from this address', jitter(wait));
    reply.header('cache-control', 'public, max-age=5').type('application/json');
    return revocationsText;
  });

  app.post<{ Body: Static<typeof Credentials> }>(
    '/v1/accounts',
    { schema: { body: Credentials } },
    (request, reply) =>
      withHashSlot(request, reply, 'create_account', request.body.username, async (run) => {
        const { username, password } = request.body;
        const passwordHash = await run(() => hashPassword(password, scrypt));
        const outcome = await store.createAccount(newAccount(username, passwordHash));
        requests.inc({ route: 'create_account', outcome });
        if (outcome === 'exists') return fail(reply, 409, 'username_taken', 'that username is taken');
        reply.code(201);
        return { username };
      }),
  );

  app.post<{ Body: Static<typeof Credentials> }>(
    '/v1/login',
    { schema: { body: Credentials } },
    (request, reply) =>
      withHashSlot(request, reply, 'login', request.body.username, async (run) => {
        const { username, password } = request.body;
        const account = await store.getAccount(username);
        const now = Date.now();
        const until = lockedUntil(account, username, now);
        if (until) {
          requests.inc({ route: 'login', outcome: 'locked' });
          return fail(reply, 429, 'too_many_attempts', 'too many failed attempts; try later', until - now);
        }
        // An unknown name costs a hash too, so timing does not tell whether the account exists.
        // One slot covers the check and, when the stored parameters are below today's, the re-hash.
        const { valid, upgradedHash } = await run(async () => {
          if (!account) return { valid: await dummyVerify(password, scrypt), upgradedHash: undefined };
          const ok = await verifyPassword(password, account.passwordHash);
          const upgrade =
            ok && needsRehash(account.passwordHash, scrypt)
              ? await hashPassword(password, scrypt)
              : undefined;
          return { valid: ok, upgradedHash: upgrade };
        });
        if (!valid || !account) {
          await recordFailure(account, username, Date.now());
          requests.inc({ route: 'login', outcome: 'invalid' });
          return fail(reply, 401, 'invalid_credentials', 'username or password is wrong');
        }
        if (account.disabled) {
          requests.inc({ route: 'login', outcome: 'disabled' });
          return fail(reply, 403, 'account_disabled', 'this account is disabled');
        }
        if (account.failedLogins > 0) await store.clearLoginFailures(username);
        // Same password, stronger hash: keep passwordChangedAt so existing refresh tokens stay valid.
        if (upgradedHash) await store.setPassword(username, upgradedHash, account.passwordChangedAt);
        requests.inc({ route: 'login', outcome: 'ok' });
        totals.succeeded++;
        return issueTokens(username, randomBytes(12).toString('base64url'));
      }),
  );

  app.post<{ Body: Static<typeof PasswordChange> }>(
    '/v1/accounts/password',
    { schema: { body: PasswordChange } },
    (request, reply) =>
      withHashSlot(request, reply, 'change_password', request.body.username, async (run) => {
        const { username, currentPassword, newPassword } = request.body;
        const account = await store.getAccount(username);
        const now = Date.now();
        const until = lockedUntil(account, username, now);
        if (until)
          return fail(reply, 429, 'too_many_attempts', 'too many failed attempts; try later', until - now);
        const newHash = await run(async () => {
          const valid = account
            ? await verifyPassword(currentPassword, account.passwordHash)
            : await dummyVerify(currentPassword, scrypt);
          return valid && account && !account.disabled ? hashPassword(newPassword, scrypt) : undefined;
        });
        if (!newHash) {
          await recordFailure(account, username, Date.now());
          requests.inc({ route: 'change_password', outcome: 'invalid' });
          return fail(reply, 401, 'invalid_credentials', 'username or password is wrong');
        }
        const changedAt = Date.now();
        await store.setPassword(username, newHash, changedAt);
        // Sessions and refresh tokens from before the change stop working.
        await revoke({ kind: 'user', id: username, at: changedAt });
        requests.inc({ route: 'change_password', outcome: 'ok' });
        return { username, passwordChangedAt: changedAt };
      }),
  );

  app.post<{ Body: Static<typeof RefreshBody> }>(
    '/v1/token/refresh',
    { schema: { body: RefreshBody } },
    (request, reply) =>
      cheap(request, reply, 'refresh', async () => {
        const presented = request.body.refreshToken;
        const replacement = randomBytes(32).toString('base64url');
        const use = await store.useRefreshToken(sha256(presented), Date.now(), sha256(replacement));
        if (use.status === 'reused') {
          // A used token presented again: it was stolen or replayed. The whole family goes.
          const at = Date.now();
          await store.revokeFamily(use.record.familyId, at, at + config.refreshTtlSec * 1000);
          await revoke({ kind: 'family', id: use.record.familyId, at });
          requests.inc({ route: 'refresh', outcome: 'reused' });
          return fail(reply, 401, 'invalid_refresh_token', 'refresh token is not valid');
        }
        if (use.status !== 'rotated') {
          requests.inc({ route: 'refresh', outcome: use.status });
          return fail(reply, 401, 'invalid_refresh_token', 'refresh token is not valid');
        }
        const account = await store.getAccount(use.record.username);
        if (!account || account.disabled || account.passwordChangedAt > use.record.issuedAt) {
          requests.inc({ route: 'refresh', outcome: 'account_changed' });
          return fail(reply, 401, 'invalid_refresh_token', 'refresh token is not valid');
        }
        const now = Date.now();
        await store.putRefreshToken({
          tokenHash: sha256(replacement),
          familyId: use.record.familyId,
          username: use.record.username,
          issuedAt: now,
          expiresAt: now + config.refreshTtlSec * 1000,
        });
        const accessToken = await signAccessToken(keys.signingKey(), {
          sub: use.record.username,
          aud: config.audience,
          iss: config.issuer,
          sid: use.record.familyId,
          ttlSec: config.accessTtlSec,
        });
        requests.inc({ route: 'refresh', outcome: 'ok' });
        totals.refreshes++;
        return {
          tokenType: 'Bearer',
          accessToken,
          expiresIn: config.accessTtlSec,
          refreshToken: replacement,
        };
      }),
  );

  app.post<{ Body: Static<typeof RefreshBody> }>(
    '/v1/logout',
    { schema: { body: RefreshBody } },
    (request, reply) =>
      cheap(request, reply, 'logout', async () => {
        const use = await store.useRefreshToken(sha256(request.body.refreshToken), Date.now(), 'logout');
        if (use.status !== 'unknown') {
          const at = Date.now();
          await store.revokeFamily(use.record.familyId, at, at + config.refreshTtlSec * 1000);
          await revoke({ kind: 'family', id: use.record.familyId, at });
        }
        reply.code(204);
        return undefined;
      }),
  );

  app.post<{ Params: Static<typeof UsernameParams> }>(
    '/v1/admin/accounts/:username/disable',
    { schema: { params: UsernameParams } },
    async (request, reply) => {
      if (!isAdmin(request, config.adminToken))
        return fail(reply, 403, 'forbidden', 'admin credentials required');
      const { username } = request.params;
      if (!(await store.setDisabled(username, true))) return fail(reply, 404, 'not_found', 'no such account');
      await revoke({ kind: 'user', id: username, at: Date.now() });
      return { username, disabled: true };
    },
  );

  // Each rebuild scans the store, so callers share rebuilds: one runs, at most one more waits and
  // covers every revocation written meanwhile (a burst of refresh-token reuse costs two scans, not N).
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const rebuild = async (): Promise<void> => {
    const entries = (await store.listRevocations(Date.now())).map(({ kind, id, at }) => ({ kind, id, at }));
    const text = JSON.stringify({ generatedAt: Date.now(), entries });
    revocationsText = text;
    await writeAtomically(files.revocations, `${text}\n`, 0o644);
    publisher?.publish('revocations.json', `${text}\n`, 'public, max-age=5');
  };
  function publishRevocations(): Promise<void> {
    if (!running) {
      running = rebuild().finally(() => {
        running = undefined;
      });
      return running;
    }
    queued ??= running
      .catch(() => {})
      .then(() => {
        queued = undefined;
        return publishRevocations();
      });
    return queued;
  }
  await publishRevocations();
  const revocationTimer = setInterval(() => {
    publishRevocations().catch((err: unknown) =>
      log.warn({ err: describe(err) }, 'revocation list refresh failed'),
    );
  }, config.revocationRefreshMs);
  revocationTimer.unref();

  let reported = { ...totals };
  const cloudWatchSamples = (): MetricSample[] => {
    const before = reported;
    reported = { ...totals };
    const added = (key: keyof typeof totals) => reported[key] - before[key];
    return [
      { name: 'LoginsAdmitted', value: added('admitted'), unit: 'Count' },
      { name: 'LoginsShed', value: added('shed'), unit: 'Count' },
      { name: 'LoginsSucceeded', value: added('succeeded'), unit: 'Count' },
      { name: 'TokenRefreshes', value: added('refreshes'), unit: 'Count' },
      { name: 'HashQueueDepth', value: pool.stats.queued, unit: 'Count' },
    ];
  };
  const cloudWatch: CloudWatchPublisher | undefined = config.cloudwatch
    ? new (require('../metrics/cloudwatch') as typeof import('../metrics/cloudwatch')).CloudWatchPublisher({
        dimensions: { AutoScalingGroupName: config.autoScalingGroup as string },
        intervalMs: config.cloudwatchIntervalMs,
        collect: cloudWatchSamples,
        region: config.region,
        log,
      })
    : undefined;

  let closed = false;
  return {
    app,
    config,
    pool,
    keys,
    store,
    files,
    publisher,
    cloudWatch,
    publishRevocations,
    async listen() {
      await app.listen({ host: config.host, port: config.port });
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      log.info(
        { port, kid: keys.signingKey().kid, store: embedded ? 'embedded' : 'dynamodb' },
        'auth service listening',
      );
      cloudWatch?.start();
      return { port, url: `http://${config.host}:${port}` };
    },
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(revocationTimer);
      keys.stop();
      await app.close();
      // A last data point or object copy in flight may finish (each bounded by its timeout); no retries.
      await Promise.allSettled([cloudWatch?.stop(), publisher?.stop()]);
      client.destroy();
      secretStorage?.close();
      await embedded?.close();
    },
  };
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('base64url');
}

/** Retry advice spread over [ms, 2ms), so refused clients do not return together. */
function jitter(ms: number): number {
  return Math.ceil(ms * (1 + Math.random()));
}

function describe(err: unknown): { name: string; message: string } {
  return { name: (err as Error)?.name ?? 'Error', message: (err as Error)?.message ?? String(err) };
}

function isAdmin(request: FastifyRequest, adminToken: string | undefined): boolean {
  if (adminToken) {
    const header = request.headers.authorization ?? '';
    const expected = `Bearer ${adminToken}`;
    return (
      header.length === expected.length &&
      createHash('sha256').update(header).digest().equals(createHash('sha256').update(expected).digest())
    );
  }
  return isLoopback(request.socket.remoteAddress);
}
