import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { S3_URL } from '../shared/s3';
import { ConfigError, type OptionTable, type OptionValues, patterns } from './options';
import { readTurnSecrets, TURN_SECRET } from './turn-secrets';

const { host: HOST, httpUrl: HTTP_URL, path: PATH } = patterns;
/** Where the polled documents may come from: the auth service, or the S3 copy it publishes. */
const SOURCE_URL = {
  regex: new RegExp(`${HTTP_URL.regex.source}|${S3_URL.source}`),
  description: 'an http://, https:// or s3://bucket/key URL',
};
const MESH_SECRET = { regex: /^\S{32,512}$/, description: '32-512 non-space characters' };
const NODE_ID = { regex: /^[A-Za-z0-9._:-]{1,64}$/, description: '1-64 characters of A-Z a-z 0-9 . _ : -' };
/** Shapes only: the TURN server checks the address itself, and checkNodeConfig that it is an IP. */
const IP = { regex: /^[0-9A-Fa-f.:]{2,45}$/, description: 'an IPv4 or IPv6 address' };
const CIDR = { regex: /^[0-9A-Fa-f.:]{2,45}(\/\d{1,3})?$/, description: 'an IP address or CIDR (a.b.c.d/n)' };
const WS_URL = { regex: /^wss?:\/\/[^\s,]{1,250}$/, description: 'a ws:// or wss:// URL' };

/** Every option of `supernode node`; docs/configuration.md is generated from this table. */
export const nodeOptionTable = {
  host: {
    kind: 'string',
    env: 'SUPERNODE_HOST',
    default: '127.0.0.1',
    pattern: HOST,
    help: 'Address the session listener binds to (0.0.0.0 in AWS).',
  },
  port: {
    kind: 'int',
    env: 'SUPERNODE_PORT',
    default: 7001,
    min: 0,
    max: 65535,
    help: 'TCP port for WebSocket sessions, health and metrics (0 picks a free port).',
  },
  nodeId: {
    kind: 'string',
    env: 'SUPERNODE_NODE_ID',
    pattern: NODE_ID,
    help: 'Name of this node in lookups and logs.',
    defaultHelp: '<hostname>-<port>',
  },
  publicUrl: {
    kind: 'string',
    env: 'SUPERNODE_PUBLIC_URL',
    pattern: WS_URL,
    help: 'URL clients use to reach this node, returned as the home node in lookups.',
    defaultHelp: 'ws://<host>:<port>',
  },
  alternatives: {
    kind: 'list',
    env: 'SUPERNODE_ALTERNATIVES',
    default: [],
    maxItems: 16,
    item: WS_URL,
    help: 'Other nodes to suggest to clients refused for capacity or drain.',
  },
  jwksUrl: {
    kind: 'string',
    env: 'SUPERNODE_JWKS_URL',
    pattern: SOURCE_URL,
    help: 'URL of the auth service public key set (JWKS), or its S3 copy (s3://bucket/key, read with GetObject). Give this or --jwks-file.',
  },
  jwksFile: {
    kind: 'string',
    env: 'SUPERNODE_JWKS_FILE',
    pattern: PATH,
    help: 'File holding the public key set (JWKS). Give this or --jwks-url.',
  },
  jwksRefreshMs: {
    kind: 'int',
    env: 'SUPERNODE_JWKS_REFRESH_MS',
    default: 60_000,
    min: 1000,
    max: 86_400_000,
    help: 'How often the key set is re-read; a failed read keeps the last good set.',
  },
  revocationsUrl: {
    kind: 'string',
    env: 'SUPERNODE_REVOCATIONS_URL',
    pattern: SOURCE_URL,
    help: 'URL of the auth service revocation list, or its S3 copy (s3://bucket/key). Give this or --revocations-file to cut off revoked users and token families; without either, no revocation check.',
  },
  revocationsFile: {
    kind: 'string',
    env: 'SUPERNODE_REVOCATIONS_FILE',
    pattern: PATH,
    help: 'File holding the revocation list.',
  },
  revocationsRefreshMs: {
    kind: 'int',
    env: 'SUPERNODE_REVOCATIONS_REFRESH_MS',
    default: 15_000,
    min: 500,
    max: 600_000,
    help: 'How often the revocation list is re-read; a revoked session ends within this plus the auth service publishing period.',
  },
  s3Region: {
    kind: 'string',
    env: 'SUPERNODE_S3_REGION',
    pattern: { regex: /^[a-z0-9-]{2,32}$/, description: 'an AWS region name' },
    help: 'Region of the S3 client for s3:// sources (a bucket elsewhere is followed by redirect; AWS_ENDPOINT_URL_S3 honoured).',
    defaultHelp: "the SDK's (AWS_REGION, then instance metadata)",
  },
  audience: {
    kind: 'string',
    env: 'SUPERNODE_AUDIENCE',
    default: 'supernode',
    pattern: { regex: /^\S{1,128}$/, description: '1-128 non-space characters' },
    help: 'Required "aud" of access tokens.',
  },
  issuer: {
    kind: 'string',
    env: 'SUPERNODE_ISSUER',
    pattern: { regex: /^\S{1,256}$/, description: '1-256 non-space characters' },
    help: 'Required "iss" of access tokens, if set.',
  },
  clockToleranceSec: {
    kind: 'int',
    env: 'SUPERNODE_CLOCK_TOLERANCE_SEC',
    default: 30,
    min: 0,
    max: 300,
    help: 'Clock difference tolerated when checking "exp" and "nbf".',
  },
  maxSessions: {
    kind: 'int',
    env: 'SUPERNODE_MAX_SESSIONS',
    default: 10_000,
    min: 1,
    max: 1_000_000,
    help: 'Capacity: open connections (authenticated or not) above which new ones are refused as "full".',
  },
  maxSessionsPerUser: {
    kind: 'int',
    env: 'SUPERNODE_MAX_SESSIONS_PER_USER',
    default: 4,
    min: 1,
    max: 64,
    help: 'Sessions one user may hold on this node; a new one beyond this replaces the oldest.',
  },
  maxFrameBytes: {
    kind: 'int',
    env: 'SUPERNODE_MAX_FRAME_BYTES',
    default: 65_536,
    min: 1024,
    max: 1_048_576,
    help: 'Largest WebSocket frame accepted; larger closes the session with 1009.',
  },
  messagesPerSecond: {
    kind: 'int',
    env: 'SUPERNODE_MESSAGES_PER_SECOND',
    default: 500,
    min: 1,
    max: 1_000_000,
    help: 'Frames per second a session may send before the node stops reading from it.',
  },
  messageBurst: {
    kind: 'int',
    env: 'SUPERNODE_MESSAGE_BURST',
    default: 1000,
    min: 1,
    max: 1_000_000,
    help: 'Frames a session may send at once above its rate.',
  },
  lookupsPerSecond: {
    kind: 'int',
    env: 'SUPERNODE_LOOKUPS_PER_SECOND',
    default: 20,
    min: 1,
    max: 100_000,
    help: 'Lookups per second a session may make before the node stops reading from it.',
  },
  lookupBurst: {
    kind: 'int',
    env: 'SUPERNODE_LOOKUP_BURST',
    default: 50,
    min: 1,
    max: 100_000,
    help: 'Lookups a session may make at once above its rate.',
  },
  sendBufferBytes: {
    kind: 'int',
    env: 'SUPERNODE_SEND_BUFFER_BYTES',
    default: 1_048_576,
    min: 16_384,
    max: 67_108_864,
    help: 'Bytes queued towards one session above which relays to it are refused as "recipient_busy".',
  },
  slowConsumerMs: {
    kind: 'int',
    env: 'SUPERNODE_SLOW_CONSUMER_MS',
    default: 10_000,
    min: 100,
    max: 600_000,
    help: 'How long a session may stay above its send buffer before it is disconnected as a slow consumer.',
  },
  authTimeoutMs: {
    kind: 'int',
    env: 'SUPERNODE_AUTH_TIMEOUT_MS',
    default: 5000,
    min: 100,
    max: 60_000,
    help: 'Time a new connection has to send its hello.',
  },
  heartbeatMs: {
    kind: 'int',
    env: 'SUPERNODE_HEARTBEAT_MS',
    default: 30_000,
    min: 1000,
    max: 300_000,
    help: 'WebSocket ping interval; a session that misses one ping is closed. Keep under the NLB idle timeout (350 s).',
  },
  retryAfterMs: {
    kind: 'int',
    env: 'SUPERNODE_RETRY_AFTER_MS',
    default: 5000,
    min: 100,
    max: 600_000,
    help: 'Base of the retry advice given when full; clients get a random value between it and twice it.',
  },
  drainTimeoutMs: {
    kind: 'int',
    env: 'SUPERNODE_DRAIN_TIMEOUT_MS',
    default: 30_000,
    min: 0,
    max: 3_600_000,
    help: 'On SIGTERM or /admin/drain, how long to wait for clients to move before closing the rest and exiting.',
  },
  stun: { kind: 'bool', env: 'SUPERNODE_STUN', default: true, help: 'Answer STUN Binding requests on UDP.' },
  stunHost: {
    kind: 'string',
    env: 'SUPERNODE_STUN_HOST',
    pattern: HOST,
    help: 'Address the STUN socket binds to (with --turn, the TURN listeners and relay sockets).',
    defaultHelp: 'same as --host',
  },
  stunPort: {
    kind: 'int',
    env: 'SUPERNODE_STUN_PORT',
    default: 3478,
    min: 0,
    max: 65535,
    help: 'UDP port for STUN (0 picks a free port); with --turn, the UDP and TCP port of TURN, which answers STUN Binding there too.',
  },
  stunProcesses: {
    kind: 'int',
    env: 'SUPERNODE_STUN_PROCESSES',
    default: 1,
    min: 1,
    max: 64,
    help: 'Processes answering STUN Binding on the one UDP socket: 1 is the node process alone; each one more is a child process reading the same socket, so answers use more cores (docs/stun.md). Not used with --turn.',
  },
  turn: {
    kind: 'bool',
    env: 'SUPERNODE_TURN',
    default: false,
    help: 'Serve TURN (RFC 8656, docs/turn.md) on UDP and TCP at --stun-host/--stun-port, with time-limited credentials from --turn-secret or --turn-secret-file. The TURN server answers STUN Binding itself, so the plain STUN server is not started (whatever --stun says).',
  },
  turnSecret: {
    kind: 'string',
    env: 'SUPERNODE_TURN_SECRET',
    pattern: TURN_SECRET,
    help: "Shared secret of TURN's time-limited credentials (the auth service's --turn-secret). For development and tests; in production use --turn-secret-file. With --turn, give this or --turn-secret-file.",
  },
  turnSecretFile: {
    kind: 'string',
    env: 'SUPERNODE_TURN_SECRET_FILE',
    pattern: PATH,
    help: 'File of TURN secrets, one a line, newest first; any of them is accepted. Re-read every --turn-secret-refresh-ms, so a rotation with overlap needs no restart (a failed read keeps the last good list).',
  },
  turnSecretRefreshMs: {
    kind: 'int',
    env: 'SUPERNODE_TURN_SECRET_REFRESH_MS',
    default: 60_000,
    min: 100,
    max: 86_400_000,
    help: 'How often --turn-secret-file is re-read.',
  },
  turnRealm: {
    kind: 'string',
    env: 'SUPERNODE_TURN_REALM',
    default: 'supernode',
    pattern: { regex: /^[A-Za-z0-9._-]{1,128}$/, description: '1-128 characters of A-Z a-z 0-9 . _ -' },
    help: 'REALM of the TURN long-term credentials.',
  },
  turnExternalAddress: {
    kind: 'string',
    env: 'SUPERNODE_TURN_EXTERNAL_ADDRESS',
    pattern: IP,
    help: "IP address advertised in XOR-RELAYED-ADDRESS, where peers send relayed data (in AWS the instance's public IP, from IMDSv2). Required when --stun-host (or --host) is a wildcard.",
    defaultHelp: 'the address TURN binds (--stun-host, else --host)',
  },
  turnMinPort: {
    kind: 'int',
    env: 'SUPERNODE_TURN_MIN_PORT',
    default: 49_152,
    min: 1,
    max: 65_535,
    help: 'Lowest UDP port of the relay range (one port per allocation; open the range to the world).',
  },
  turnMaxPort: {
    kind: 'int',
    env: 'SUPERNODE_TURN_MAX_PORT',
    default: 65_535,
    min: 1,
    max: 65_535,
    help: 'Highest UDP port of the relay range.',
  },
  turnTlsCertFile: {
    kind: 'string',
    env: 'SUPERNODE_TURN_TLS_CERT_FILE',
    pattern: PATH,
    help: 'PEM certificate chain for TURN over TLS (turns:); with --turn-tls-key-file, TLS is served on --turn-tls-port.',
  },
  turnTlsKeyFile: {
    kind: 'string',
    env: 'SUPERNODE_TURN_TLS_KEY_FILE',
    pattern: PATH,
    help: 'PEM private key of --turn-tls-cert-file.',
  },
  turnTlsPort: {
    kind: 'int',
    env: 'SUPERNODE_TURN_TLS_PORT',
    default: 5349,
    min: 0,
    max: 65_535,
    help: 'TCP port of TURN over TLS (0 picks a free port).',
  },
  turnMaxAllocations: {
    kind: 'int',
    env: 'SUPERNODE_TURN_MAX_ALLOCATIONS',
    default: 10_000,
    min: 1,
    max: 1_000_000,
    help: 'TURN allocations on this node; beyond, Allocate gets 508 Insufficient Capacity. Each holds a UDP socket (a file descriptor).',
  },
  turnMaxAllocationsPerUser: {
    kind: 'int',
    env: 'SUPERNODE_TURN_MAX_ALLOCATIONS_PER_USER',
    default: 16,
    min: 1,
    max: 10_000,
    help: 'TURN allocations one user may hold on this node; beyond, 486 Allocation Quota Reached.',
  },
  turnAllocationBytesPerSecond: {
    kind: 'int',
    env: 'SUPERNODE_TURN_ALLOCATION_BYTES_PER_SECOND',
    default: 1_250_000,
    min: 0,
    max: 1_000_000_000,
    help: 'Relayed bytes/s per allocation, both ways together, with one second of burst; more is dropped (0: unlimited).',
  },
  turnUserBytesPerSecond: {
    kind: 'int',
    env: 'SUPERNODE_TURN_USER_BYTES_PER_SECOND',
    default: 2_500_000,
    min: 0,
    max: 1_000_000_000,
    help: 'Relayed bytes/s per user over all their allocations on this node (0: unlimited).',
  },
  turnRelayEngine: {
    kind: 'enum',
    env: 'SUPERNODE_TURN_RELAY_ENGINE',
    default: 'auto',
    choices: ['auto', 'native', 'dgram'],
    help: 'What relays TURN over UDP: native (the C fast path, built by npm run build:native), dgram (Node sockets), or auto (native when it is built, else dgram, logged).',
  },
  turnAllowPeers: {
    kind: 'list',
    env: 'SUPERNODE_TURN_ALLOW_PEERS',
    default: [],
    maxItems: 16,
    item: CIDR,
    help: 'CIDRs relays may reach although they are refused by default (loopback, private, link-local and metadata addresses). For tests and the local tier only (e.g. 127.0.0.0/8); never in production.',
  },
  cloudwatch: {
    kind: 'bool',
    env: 'SUPERNODE_CLOUDWATCH',
    default: false,
    help: 'Publish metrics to CloudWatch (namespace Supernode) as well as /metrics.',
  },
  cloudwatchIntervalMs: {
    kind: 'int',
    env: 'SUPERNODE_CLOUDWATCH_INTERVAL_MS',
    default: 60_000,
    min: 1000,
    max: 3_600_000,
    help: 'How often metrics go to CloudWatch.',
  },
  autoScalingGroup: {
    kind: 'string',
    env: 'SUPERNODE_AUTO_SCALING_GROUP',
    pattern: { regex: /^[\w.:/@+=-]{1,255}$/, description: 'an Auto Scaling group name' },
    help: 'Value of the AutoScalingGroupName dimension; required with --cloudwatch, --discovery ec2 and --lifecycle-hook.',
  },
  lifecycleHook: {
    kind: 'string',
    env: 'SUPERNODE_LIFECYCLE_HOOK',
    pattern: { regex: /^[A-Za-z0-9_/-]{1,255}$/, description: 'a lifecycle hook name' },
    help: "Termination lifecycle hook of --auto-scaling-group: watch instance metadata for the instance's termination, drain, then complete the hook with CONTINUE (AWS_ENDPOINT_URL_AUTO_SCALING honoured).",
  },
  lifecyclePollMs: {
    kind: 'int',
    env: 'SUPERNODE_LIFECYCLE_POLL_MS',
    default: 5000,
    min: 100,
    max: 300_000,
    help: 'How often instance metadata is asked for the target lifecycle state, with --lifecycle-hook.',
  },
  mesh: {
    kind: 'bool',
    env: 'SUPERNODE_MESH',
    default: false,
    help: 'Join the mesh: shared presence directory and relay across nodes.',
  },
  meshHost: {
    kind: 'string',
    env: 'SUPERNODE_MESH_HOST',
    pattern: HOST,
    help: 'Address the mesh listener binds to (the private address in AWS).',
    defaultHelp: 'same as --host',
  },
  meshPort: {
    kind: 'int',
    env: 'SUPERNODE_MESH_PORT',
    default: 7101,
    min: 0,
    max: 65535,
    help: 'TCP port for links from other supernodes (0 picks a free port).',
  },
  meshSecret: {
    kind: 'string',
    env: 'SUPERNODE_MESH_SECRET',
    pattern: MESH_SECRET,
    help: 'Shared secret every mesh member proves it holds (HMAC challenge; never sent). With --mesh, give this or --mesh-secret-file.',
  },
  meshSecretFile: {
    kind: 'string',
    env: 'SUPERNODE_MESH_SECRET_FILE',
    pattern: PATH,
    help: 'File holding the mesh secret (read once at start; a trailing newline is ignored), so the secret stays out of the environment. With --mesh, give this or --mesh-secret.',
  },
  meshPeers: {
    kind: 'list',
    env: 'SUPERNODE_MESH_PEERS',
    default: [],
    maxItems: 256,
    item: { regex: /^[A-Za-z0-9._:-]{1,64}@wss?:\/\/\S{1,250}$/, description: 'node-id@ws://host:port' },
    help: 'Static members (discovery "static"), this node included or not.',
  },
  discovery: {
    kind: 'enum',
    env: 'SUPERNODE_DISCOVERY',
    default: 'static',
    choices: ['static', 'ec2'],
    help: 'How members are found: the --mesh-peers list, or EC2 instances of --auto-scaling-group.',
  },
  discoveryRefreshMs: {
    kind: 'int',
    env: 'SUPERNODE_DISCOVERY_REFRESH_MS',
    default: 15_000,
    min: 1000,
    max: 600_000,
    help: 'How often EC2 discovery re-lists the group.',
  },
  meshHeartbeatMs: {
    kind: 'int',
    env: 'SUPERNODE_MESH_HEARTBEAT_MS',
    default: 1000,
    min: 100,
    max: 60_000,
    help: 'Heartbeat period on mesh links.',
  },
  meshDeadAfter: {
    kind: 'int',
    env: 'SUPERNODE_MESH_DEAD_AFTER',
    default: 3,
    min: 2,
    max: 100,
    help: 'Missed heartbeats after which a member is declared dead.',
  },
  directoryReplicas: {
    kind: 'int',
    env: 'SUPERNODE_DIRECTORY_REPLICAS',
    default: 2,
    min: 1,
    max: 5,
    help: "Owners holding each user's presence record (R).",
  },
  meshLookupTimeoutMs: {
    kind: 'int',
    env: 'SUPERNODE_MESH_LOOKUP_TIMEOUT_MS',
    default: 500,
    min: 10,
    max: 10_000,
    help: 'Time an owner has to answer a lookup before the next owner is asked.',
  },
  faultCrashAfterMs: {
    kind: 'int',
    env: 'SUPERNODE_FAULT_CRASH_AFTER_MS',
    default: 0,
    min: 0,
    max: 86_400_000,
    help: 'Fault injection for drills and tests only: exit with code 70 this long after start (0: never).',
  },
  logLevel: {
    kind: 'enum',
    env: 'SUPERNODE_LOG_LEVEL',
    default: 'info',
    choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
    help: 'Log level (pino JSON on stdout).',
  },
} as const satisfies OptionTable;

export type NodeConfig = OptionValues<typeof nodeOptionTable>;

/** Rules across options, checked after each option is valid on its own. */
export function checkNodeConfig(config: NodeConfig): NodeConfig {
  if (Boolean(config.jwksUrl) === Boolean(config.jwksFile)) {
    throw new ConfigError(
      'give exactly one of --jwks-url (SUPERNODE_JWKS_URL) and --jwks-file (SUPERNODE_JWKS_FILE)',
    );
  }
  if (config.revocationsUrl && config.revocationsFile) {
    throw new ConfigError(
      'give at most one of --revocations-url (SUPERNODE_REVOCATIONS_URL) and --revocations-file (SUPERNODE_REVOCATIONS_FILE)',
    );
  }
  if (config.meshSecret && config.meshSecretFile) {
    throw new ConfigError(
      'give at most one of --mesh-secret (SUPERNODE_MESH_SECRET) and --mesh-secret-file (SUPERNODE_MESH_SECRET_FILE)',
    );
  }
  if (config.mesh && !config.meshSecret && !config.meshSecretFile) {
    throw new ConfigError(
      '--mesh-secret (SUPERNODE_MESH_SECRET) or --mesh-secret-file (SUPERNODE_MESH_SECRET_FILE) is required with --mesh',
    );
  }
  if (config.mesh && config.discovery === 'ec2' && !config.autoScalingGroup) {
    throw new ConfigError(
      '--auto-scaling-group (SUPERNODE_AUTO_SCALING_GROUP) is required with --discovery ec2',
    );
  }
  if (config.cloudwatch && !config.autoScalingGroup) {
    throw new ConfigError(
      '--auto-scaling-group (SUPERNODE_AUTO_SCALING_GROUP) is required with --cloudwatch',
    );
  }
  if (config.lifecycleHook && !config.autoScalingGroup) {
    throw new ConfigError(
      '--auto-scaling-group (SUPERNODE_AUTO_SCALING_GROUP) is required with --lifecycle-hook',
    );
  }
  checkTurnConfig(config);
  return config;
}

/**
 * The mesh secret: --mesh-secret, or the content of --mesh-secret-file (read once; trailing newlines
 * dropped, as `echo` and most editors add one). Errors name the file, never its content.
 */
export function meshSecretOf(config: NodeConfig): string | undefined {
  if (!config.meshSecretFile) return config.meshSecret;
  const option = '--mesh-secret-file (SUPERNODE_MESH_SECRET_FILE)';
  let text: string;
  try {
    text = readFileSync(config.meshSecretFile, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new ConfigError(`${option}: cannot read ${config.meshSecretFile} (${code})`);
  }
  const secret = text.replace(/[\r\n]+$/, '');
  if (!MESH_SECRET.regex.test(secret)) {
    throw new ConfigError(
      `${option}: ${config.meshSecretFile} must hold ${MESH_SECRET.description} (a trailing newline is ignored); it holds ${secret.length} characters${/\s/.test(secret) ? ' including white space' : ''}`,
    );
  }
  return secret;
}

const WILDCARDS = new Set(['0.0.0.0', '::']);

/** The TURN rules across options; they apply whether or not --turn is on, so a typo shows at once. */
function checkTurnConfig(config: NodeConfig): void {
  if (config.turnSecret && config.turnSecretFile) {
    throw new ConfigError(
      'give at most one of --turn-secret (SUPERNODE_TURN_SECRET) and --turn-secret-file (SUPERNODE_TURN_SECRET_FILE)',
    );
  }
  if (config.turn && !config.turnSecret && !config.turnSecretFile) {
    throw new ConfigError(
      '--turn-secret (SUPERNODE_TURN_SECRET) or --turn-secret-file (SUPERNODE_TURN_SECRET_FILE) is required with --turn',
    );
  }
  if (config.turnMinPort > config.turnMaxPort) {
    throw new ConfigError(
      `--turn-min-port (SUPERNODE_TURN_MIN_PORT) must not exceed --turn-max-port (SUPERNODE_TURN_MAX_PORT); got ${config.turnMinPort}-${config.turnMaxPort}`,
    );
  }
  if (Boolean(config.turnTlsCertFile) !== Boolean(config.turnTlsKeyFile)) {
    throw new ConfigError(
      '--turn-tls-cert-file (SUPERNODE_TURN_TLS_CERT_FILE) and --turn-tls-key-file (SUPERNODE_TURN_TLS_KEY_FILE) go together',
    );
  }
  const external = config.turnExternalAddress;
  if (external !== undefined && (isIP(external) === 0 || WILDCARDS.has(external))) {
    throw new ConfigError(
      `--turn-external-address (SUPERNODE_TURN_EXTERNAL_ADDRESS) must be the IP address peers reach this node at; got ${JSON.stringify(external)}`,
    );
  }
  const bound = config.stunHost ?? config.host;
  if (config.turn && external === undefined && WILDCARDS.has(bound)) {
    throw new ConfigError(
      `--turn-external-address (SUPERNODE_TURN_EXTERNAL_ADDRESS) is required with --turn when TURN binds ${bound} (--stun-host, else --host): a wildcard cannot be advertised to peers`,
    );
  }
}

/**
 * The TURN secrets, newest first: --turn-secret, or the lines of --turn-secret-file (read now; errors
 * name the file, never a secret).
 */
export function turnSecretsOf(config: NodeConfig): string[] {
  if (!config.turnSecretFile) return config.turnSecret ? [config.turnSecret] : [];
  return readTurnSecrets(config.turnSecretFile, TURN_SECRET_FILE_OPTION);
}

export const TURN_SECRET_FILE_OPTION = '--turn-secret-file (SUPERNODE_TURN_SECRET_FILE)';
