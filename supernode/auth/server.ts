/**
 * The auth service process: builds the store, keys and core from the configuration, boots the
 * Fastify app plugin, listens, handles signals and closes. What a request does is in core/.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, LogController } from 'fastify';
import { type AuthConfig, authOptionTable, checkAuthConfig } from '../config/auth-options';
import { ConfigError, flagOf, helpText, parseOptions, resolveOptions } from '../config/options';
import type { CloudWatchPublisher } from '../metrics/cloudwatch';
import { createLogger, type Logger } from '../shared/log';
import { authApp, MAX_BODY_BYTES } from './app';
import { Accounts } from './core/accounts';
import { HashPool } from './core/admission';
import { Gates } from './core/gates';
import { IceServerIssuer } from './core/ice-servers';
import { Lockout } from './core/lockout';
import { describe } from './core/outcome';
import { RevocationPublisher } from './core/revocations';
import { TokenIssuer } from './core/tokens';
import { FileKeyRingStorage, KeyRing, type KeyRingStorage } from './key-ring';
import { AuthMetrics } from './metrics';
import type { ScryptParams } from './passwords';
import type { S3Publisher } from './publisher';
import type { SecretsManagerKeyRingStorage } from './secrets-key-ring';
import type { AccountStoreApi } from './store-api';
import { startAuthWorker } from './worker';

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
  readonly store: AccountStoreApi;
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

export async function buildAuthService(options: AuthServiceOptions = {}): Promise<AuthService> {
  const { logger, keyStorage, ...given } = options;
  const config = checkAuthConfig(resolveOptions(authOptionTable, given));
  const log = logger ?? createLogger(config.logLevel, 'auth');
  // Read before anything starts: a bad TURN secret file stops the service like a bad option.
  const iceServers = IceServerIssuer.fromConfig(config, log);
  const authDir = join(config.dataDir, 'auth');
  const files = { jwks: join(authDir, 'jwks.json'), revocations: join(authDir, 'revocations.json') };
  const scrypt: ScryptParams = {
    N: config.scryptN,
    r: config.scryptR,
    p: config.scryptP,
    keyLength: 32,
    saltLength: 16,
  };

  // Store and scrypt calls run on the worker thread; this thread keeps HTTP and admission. The thread
  // starts (loads the AWS SDK, opens the store) while this one loads the signing keys.
  const starting = startAuthWorker({
    table: config.table,
    region: config.region,
    endpoint: config.dynamodbEndpoint,
    embeddedPath: config.dynamodbEndpoint || config.awsDynamodb ? undefined : join(config.dataDir, 'dynamo'),
    log,
  });
  starting.catch(() => undefined); // awaited below, after the keys
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
  try {
    await keys.start();
  } catch (err) {
    await starting.then(
      (w) => w.close(),
      () => undefined,
    );
    throw err;
  }
  const worker = await starting;
  const { store, passwords } = worker;

  // One hash timed at start-up seeds the pool's duration estimate: with a guess, the first seconds of a
  // storm admitted places whose turn came after their deadline (dropped after 3 s of waiting, bench).
  const calibrationStarted = performance.now();
  await passwords.dummyVerify('calibration-password', scrypt);
  const pool = new HashPool({
    initialRunMs: Math.max(1, performance.now() - calibrationStarted),
    // One core stays with the event loop: with every core hashing, a storm's requests (and their sheds)
    // waited behind the hashes (bench: 50x goodput 35% of C with 2 threads on 2 cores, 85% with 1).
    concurrency: config.hashConcurrency || Math.max(1, availableParallelism() - 1),
    maxQueue: config.hashQueue,
    deadlineMs: config.hashDeadlineMs,
  });
  const metrics = new AuthMetrics(pool);
  const gates = new Gates(config, pool, metrics, log);
  // Tokens issued before a revocation are all expired one access lifetime (plus skew) later.
  const revocations = new RevocationPublisher({
    store,
    file: files.revocations,
    publisher,
    retainMs: accessTtlMs + 60_000,
  });
  const tokens = new TokenIssuer(store, keys, revocations, config, iceServers);
  const lockout = new Lockout(store, {
    threshold: config.lockoutThreshold,
    baseSec: config.lockoutBaseSec,
    maxSec: config.lockoutMaxSec,
  });
  const accounts = new Accounts({ store, gates, lockout, tokens, revocations, metrics, scrypt, passwords });

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
  app.register(authApp, {
    accounts,
    tokens,
    gates,
    keys,
    revocations,
    pool,
    metrics,
    hashQueue: config.hashQueue,
    adminToken: config.adminToken,
    corsOrigins: config.corsOrigins,
  });

  const publishRevocations = () => revocations.publish();
  await publishRevocations();
  const revocationTimer = setInterval(() => {
    publishRevocations().catch((err: unknown) =>
      log.warn({ err: describe(err) }, 'revocation list refresh failed'),
    );
  }, config.revocationRefreshMs);
  revocationTimer.unref();

  const cloudWatch: CloudWatchPublisher | undefined = config.cloudwatch
    ? new (require('../metrics/cloudwatch') as typeof import('../metrics/cloudwatch')).CloudWatchPublisher({
        dimensions: { AutoScalingGroupName: config.autoScalingGroup as string },
        intervalMs: config.cloudwatchIntervalMs,
        collect: () => metrics.cloudWatchSamples(),
        region: config.region,
        log,
      })
    : undefined;

  iceServers?.start();
  let closed = false;
  const close = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    clearInterval(revocationTimer);
    keys.stop();
    iceServers?.stop();
    await app.close();
    // A last data point or object copy in flight may finish (each bounded by its timeout); no retries.
    await Promise.allSettled([cloudWatch?.stop(), publisher?.stop()]);
    secretStorage?.close();
    await worker.close();
  };
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
      try {
        await app.listen({ host: config.host, port: config.port });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE' && code !== 'EACCES') throw err;
        await close();
        // A port in use is a configuration problem: say which option moves it, in one line.
        throw new ConfigError(
          `TCP ${config.host}:${config.port} ${code === 'EADDRINUSE' ? 'is in use' : 'is not allowed'} (${code}); choose another with ${flagOf('port')} (${authOptionTable.port.env})`,
        );
      }
      const address = app.server.address();
      const port = typeof address === 'object' && address ? address.port : config.port;
      log.info({ port, kid: keys.signingKey().kid, store: worker.storeKind }, 'auth service listening');
      cloudWatch?.start();
      return { port, url: `http://${config.host}:${port}` };
    },
    close,
  };
}

/** `supernode auth`: the service until a signal; the first finishes requests in flight, a second exits. */
export async function runAuthService(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(helpText('Usage: supernode auth [options]\n\nRuns the auth service.', authOptionTable));
    return;
  }
  const service = await buildAuthService(parseOptions(authOptionTable, argv));
  await service.listen();
  let signals = 0;
  const onSignal = (): void => {
    if (++signals > 1) process.exit(1);
    // Finish requests in flight, refuse new ones, then release the store.
    service.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
