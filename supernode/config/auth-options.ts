import { ConfigError, type OptionTable, type OptionValues, patterns } from './options';
import { TURN_SECRET } from './turn-secrets';

const { host: HOST, httpUrl: HTTP_URL, path: PATH } = patterns;
/** RFC 7064/7065 URIs as RTCPeerConnection takes them: `turn:host:port?transport=udp`, `turns:...`. */
const TURN_URL = {
  regex: /^turns?:(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?(\?transport=(udp|tcp))?$/,
  description: 'a turn: or turns: URL (turn:host[:port][?transport=udp|tcp])',
};
const NAME = { regex: /^[A-Za-z0-9_.-]{3,255}$/, description: '3-255 characters of A-Z a-z 0-9 _ . -' };
/** A web origin as browsers send it in `Origin`: scheme, host and port, no path. */
const ORIGIN = {
  regex: /^https?:\/\/(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253})(:\d{1,5})?$/,
  description: 'an origin (http[s]://host[:port], no path)',
};

/** Every option of `supernode auth`; docs/configuration.md is generated from this table. */
export const authOptionTable = {
  host: {
    kind: 'string',
    env: 'AUTH_HOST',
    default: '127.0.0.1',
    pattern: HOST,
    help: 'Address the auth service binds to (0.0.0.0 in AWS).',
  },
  port: {
    kind: 'int',
    env: 'AUTH_PORT',
    default: 8080,
    min: 0,
    max: 65535,
    help: 'HTTP port (0 picks a free port).',
  },
  dataDir: {
    kind: 'string',
    env: 'AUTH_DATA_DIR',
    default: '.data',
    pattern: PATH,
    help: 'Local state: the embedded store, the signing keys, the published key set and revocation list.',
  },
  dynamodbEndpoint: {
    kind: 'string',
    env: 'AUTH_DYNAMODB_ENDPOINT',
    pattern: HTTP_URL,
    help: 'DynamoDB endpoint to use instead of the embedded store. Set neither this nor --aws-dynamodb to run the embedded store under --data-dir.',
  },
  awsDynamodb: {
    kind: 'bool',
    env: 'AUTH_AWS_DYNAMODB',
    default: false,
    help: 'Use DynamoDB in AWS (region and credentials from the environment; AWS_ENDPOINT_URL_DYNAMODB honoured).',
  },
  table: {
    kind: 'string',
    env: 'AUTH_TABLE',
    default: 'supernode-auth',
    pattern: NAME,
    help: 'DynamoDB table name. Created at start-up only for the embedded store or an explicit endpoint.',
  },
  region: {
    kind: 'string',
    env: 'AWS_REGION',
    pattern: { regex: /^[a-z0-9-]{2,32}$/, description: 'an AWS region name' },
    help: 'AWS region for DynamoDB, Secrets Manager, S3 and CloudWatch.',
  },
  issuer: {
    kind: 'string',
    env: 'AUTH_ISSUER',
    default: 'supernode-auth',
    pattern: { regex: /^\S{1,256}$/, description: '1-256 non-space characters' },
    help: 'The "iss" claim of issued tokens.',
  },
  audience: {
    kind: 'string',
    env: 'AUTH_AUDIENCE',
    default: 'supernode',
    pattern: { regex: /^\S{1,128}$/, description: '1-128 non-space characters' },
    help: 'The "aud" claim of access tokens (what supernodes require).',
  },
  accessTtlSec: {
    kind: 'int',
    env: 'AUTH_ACCESS_TTL_SEC',
    default: 900,
    min: 30,
    max: 86_400,
    help: 'Access token lifetime.',
  },
  refreshTtlSec: {
    kind: 'int',
    env: 'AUTH_REFRESH_TTL_SEC',
    default: 2_592_000,
    min: 300,
    max: 31_536_000,
    help: 'Refresh token lifetime (each use rotates it).',
  },
  keyRotationSec: {
    kind: 'int',
    env: 'AUTH_KEY_ROTATION_SEC',
    default: 86_400,
    min: 60,
    max: 31_536_000,
    help: 'How often a new signing key is made.',
  },
  keyPublishLeadSec: {
    kind: 'int',
    env: 'AUTH_KEY_PUBLISH_LEAD_SEC',
    default: 180,
    min: 0,
    max: 86_400,
    help: "How long a new key is published before it signs; keep above the supernodes' key refresh period.",
  },
  keyRingSecret: {
    kind: 'string',
    env: 'AUTH_KEY_RING_SECRET',
    pattern: {
      regex: /^(arn:[\w-]+:secretsmanager:[a-z0-9-]+:\d{12}:secret:)?[A-Za-z0-9/_+=.@-]{1,512}$/,
      description: 'a Secrets Manager secret ARN or name',
    },
    help: 'Secrets Manager secret holding the signing keys, shared by every instance (AWS_ENDPOINT_URL_SECRETS_MANAGER honoured). Without it they live in a file under --data-dir.',
  },
  scryptN: {
    kind: 'int',
    env: 'AUTH_SCRYPT_N',
    default: 131_072,
    min: 1024,
    max: 1_048_576,
    help: 'scrypt cost N (a power of two; OWASP: 2^17).',
  },
  scryptR: { kind: 'int', env: 'AUTH_SCRYPT_R', default: 8, min: 1, max: 32, help: 'scrypt block size r.' },
  scryptP: { kind: 'int', env: 'AUTH_SCRYPT_P', default: 1, min: 1, max: 16, help: 'scrypt parallelism p.' },
  hashConcurrency: {
    kind: 'int',
    env: 'AUTH_HASH_CONCURRENCY',
    default: 0,
    min: 0,
    max: 64,
    help: 'Password hashes at once (0: one per core less one, kept for the event loop; at least 1).',
  },
  hashQueue: {
    kind: 'int',
    env: 'AUTH_HASH_QUEUE',
    default: 8,
    min: 0,
    max: 10_000,
    help: 'Logins that may wait for the hash pool; more are shed at once with 503.',
  },
  hashDeadlineMs: {
    kind: 'int',
    env: 'AUTH_HASH_DEADLINE_MS',
    default: 3000,
    min: 100,
    max: 60_000,
    help: 'A login not hashing within this is dropped before hashing, with 503.',
  },
  cheapConcurrency: {
    kind: 'int',
    env: 'AUTH_CHEAP_CONCURRENCY',
    default: 64,
    min: 1,
    max: 10_000,
    help: 'Refresh requests handled at once (the cheap class); more are shed with 503.',
  },
  ipLoginsPerMinute: {
    kind: 'int',
    env: 'AUTH_IP_LOGINS_PER_MINUTE',
    default: 60,
    min: 1,
    max: 1_000_000,
    help: 'Password logins and sign-ups per client IP per minute.',
  },
  ipRefreshesPerMinute: {
    kind: 'int',
    env: 'AUTH_IP_REFRESHES_PER_MINUTE',
    default: 600,
    min: 1,
    max: 1_000_000,
    help: 'Refreshes per client IP per minute.',
  },
  accountLoginsPerMinute: {
    kind: 'int',
    env: 'AUTH_ACCOUNT_LOGINS_PER_MINUTE',
    default: 10,
    min: 1,
    max: 10_000,
    help: 'Password logins per username per minute, whether or not the account exists.',
  },
  lockoutThreshold: {
    kind: 'int',
    env: 'AUTH_LOCKOUT_THRESHOLD',
    default: 5,
    min: 1,
    max: 1000,
    help: 'Failed logins before an account is locked; each further failure doubles the lock.',
  },
  lockoutBaseSec: {
    kind: 'int',
    env: 'AUTH_LOCKOUT_BASE_SEC',
    default: 30,
    min: 1,
    max: 86_400,
    help: 'First lock duration.',
  },
  lockoutMaxSec: {
    kind: 'int',
    env: 'AUTH_LOCKOUT_MAX_SEC',
    default: 900,
    min: 1,
    max: 86_400,
    help: 'Longest lock.',
  },
  maxConnections: {
    kind: 'int',
    env: 'AUTH_MAX_CONNECTIONS',
    default: 10_000,
    min: 1,
    max: 1_000_000,
    help: 'Open connections beyond which new ones are closed at once: a storm of connections must not exhaust the file limit.',
  },
  trustProxy: {
    kind: 'bool',
    env: 'AUTH_TRUST_PROXY',
    default: false,
    help: 'Behind the ALB: take the client IP from the last X-Forwarded-For entry, the one the ALB appended (entries a client writes itself are ignored).',
  },
  adminToken: {
    kind: 'string',
    env: 'AUTH_ADMIN_TOKEN',
    pattern: { regex: /^\S{32,256}$/, description: '32-256 non-space characters' },
    help: 'Bearer token for admin routes (disable accounts). Without it, admin routes accept loopback callers only.',
  },
  revocationRefreshMs: {
    kind: 'int',
    env: 'AUTH_REVOCATION_REFRESH_MS',
    default: 5000,
    min: 500,
    max: 600_000,
    help: 'How often the published revocation list is rebuilt from the store.',
  },
  admissionControl: {
    kind: 'bool',
    env: 'AUTH_ADMISSION_CONTROL',
    default: true,
    help: 'Hash pool, shedding and rate limits. Turn off only to measure the naive baseline in the login-storm benchmark.',
  },
  publishBucket: {
    kind: 'string',
    env: 'AUTH_PUBLISH_BUCKET',
    pattern: {
      regex: /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/,
      description: 'an S3 bucket name (3-63 characters of a-z 0-9 . -)',
    },
    help: 'S3 bucket the public keys and the revocation list are copied to on every change, for supernodes to read while the auth service is down (AWS_ENDPOINT_URL_S3 honoured).',
  },
  publishPrefix: {
    kind: 'string',
    env: 'AUTH_PUBLISH_PREFIX',
    pattern: {
      regex: /^[A-Za-z0-9!_.*'()/-]{1,900}$/,
      description: "an S3 key prefix of A-Z a-z 0-9 ! _ . * ' ( ) / -",
    },
    help: 'Put in front of the object names as is: auth/ gives auth/jwks.json and auth/revocations.json. None: the bucket root.',
  },
  cloudwatch: {
    kind: 'bool',
    env: 'AUTH_CLOUDWATCH',
    default: false,
    help: 'Publish login and refresh figures to CloudWatch (namespace Supernode) as well as /metrics.',
  },
  cloudwatchIntervalMs: {
    kind: 'int',
    env: 'AUTH_CLOUDWATCH_INTERVAL_MS',
    default: 60_000,
    min: 1000,
    max: 3_600_000,
    help: 'How often metrics go to CloudWatch.',
  },
  autoScalingGroup: {
    kind: 'string',
    env: 'AUTH_AUTO_SCALING_GROUP',
    pattern: { regex: /^[\w.:/@+=-]{1,255}$/, description: 'an Auto Scaling group name' },
    help: 'Value of the AutoScalingGroupName dimension; required with --cloudwatch.',
  },
  turnUrls: {
    kind: 'list',
    env: 'AUTH_TURN_URLS',
    default: [],
    maxItems: 16,
    item: TURN_URL,
    help: 'TURN servers (the supernodes) to hand out: with them, login and refresh answers carry `iceServers` for RTCPeerConnection, with time-limited credentials signed by the first TURN secret.',
  },
  turnSecret: {
    kind: 'string',
    env: 'AUTH_TURN_SECRET',
    pattern: TURN_SECRET,
    help: "Shared secret of TURN's time-limited credentials (the supernodes' --turn-secret). For development and tests; in production use --turn-secret-file. With --turn-urls, give this or --turn-secret-file.",
  },
  turnSecretFile: {
    kind: 'string',
    env: 'AUTH_TURN_SECRET_FILE',
    pattern: PATH,
    help: 'File of TURN secrets, one a line, newest first (the same file the supernodes read): the first line signs. Re-read every --turn-secret-refresh-ms; a failed read keeps the last good secret.',
  },
  turnSecretRefreshMs: {
    kind: 'int',
    env: 'AUTH_TURN_SECRET_REFRESH_MS',
    default: 60_000,
    min: 100,
    max: 86_400_000,
    help: 'How often --turn-secret-file is re-read.',
  },
  turnCredentialTtlSec: {
    kind: 'int',
    env: 'AUTH_TURN_CREDENTIAL_TTL_SEC',
    default: 86_400,
    min: 60,
    max: 604_800,
    help: "Lifetime of the TURN credentials in `iceServers`. An allocation cannot be refreshed past it, so it bounds how long a call can keep its relay; a retired secret must stay in the supernodes' file this long.",
  },
  corsOrigins: {
    kind: 'list',
    env: 'AUTH_CORS_ORIGINS',
    default: [],
    maxItems: 32,
    item: ORIGIN,
    help: 'Web origins whose pages may call the API from a browser (CORS), e.g. the demo page. None by default: no CORS headers, so browsers refuse cross-origin calls.',
  },
  logLevel: {
    kind: 'enum',
    env: 'AUTH_LOG_LEVEL',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    help: 'Log level (pino JSON on stdout).',
  },
} as const satisfies OptionTable;

export type AuthConfig = OptionValues<typeof authOptionTable>;

export function checkAuthConfig(config: AuthConfig): AuthConfig {
  if (config.dynamodbEndpoint && config.awsDynamodb) {
    throw new ConfigError(
      '--dynamodb-endpoint (AUTH_DYNAMODB_ENDPOINT) and --aws-dynamodb (AUTH_AWS_DYNAMODB) exclude each other',
    );
  }
  if ((config.scryptN & (config.scryptN - 1)) !== 0) {
    throw new ConfigError(`--scrypt-n (AUTH_SCRYPT_N) must be a power of two; got ${config.scryptN}`);
  }
  if (config.cloudwatch && !config.autoScalingGroup) {
    throw new ConfigError('--auto-scaling-group (AUTH_AUTO_SCALING_GROUP) is required with --cloudwatch');
  }
  if (config.lockoutMaxSec < config.lockoutBaseSec) {
    throw new ConfigError('--lockout-max-sec (AUTH_LOCKOUT_MAX_SEC) must be at least --lockout-base-sec');
  }
  if (config.turnSecret && config.turnSecretFile) {
    throw new ConfigError(
      'give at most one of --turn-secret (AUTH_TURN_SECRET) and --turn-secret-file (AUTH_TURN_SECRET_FILE)',
    );
  }
  const hasTurnSecret = Boolean(config.turnSecret || config.turnSecretFile);
  if (config.turnUrls.length > 0 && !hasTurnSecret) {
    throw new ConfigError(
      '--turn-secret (AUTH_TURN_SECRET) or --turn-secret-file (AUTH_TURN_SECRET_FILE) is required with --turn-urls',
    );
  }
  if (hasTurnSecret && config.turnUrls.length === 0) {
    throw new ConfigError(
      '--turn-urls (AUTH_TURN_URLS) is required with a TURN secret: without it there is nothing to hand out',
    );
  }
  return config;
}
