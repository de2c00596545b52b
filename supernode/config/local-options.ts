/**
 * Options of `supernode local` (supernode/local/tier.ts). Several share
 * their variable with the component they configure (AUTH_PORT, SUPERNODE_STUN_PORT, ...): the tier
 * reads it and hands the value on, so one variable means one thing.
 */
export const localOptionTable = {
  host: {
    kind: 'string',
    env: 'SUPERNODE_LOCAL_HOST',
    default: '127.0.0.1',
    help: 'Address every service binds to.',
  },
  authPort: {
    kind: 'int',
    env: 'AUTH_PORT',
    default: 8080,
    min: 1,
    max: 65_535,
    help: 'Port of the auth service.',
  },
  consolePort: {
    kind: 'int',
    env: 'CONSOLE_PORT',
    default: 8090,
    min: 1,
    max: 65_535,
    help: 'Port of the operator console (/console) and the demo app (/demo/).',
  },
  meshBasePort: {
    kind: 'int',
    env: 'SUPERNODE_LOCAL_MESH_BASE_PORT',
    default: 7101,
    min: 1,
    max: 65_000,
    help: 'Mesh port of the first supernode; the others follow.',
  },
  basePort: {
    kind: 'int',
    env: 'SUPERNODE_LOCAL_BASE_PORT',
    default: 7001,
    min: 1,
    max: 65_000,
    help: 'Port of the first supernode; the others follow.',
  },
  nodes: {
    kind: 'int',
    env: 'SUPERNODE_LOCAL_NODES',
    default: 3,
    min: 1,
    max: 16,
    help: 'How many supernodes to run.',
  },
  stunPort: {
    kind: 'int',
    env: 'SUPERNODE_STUN_PORT',
    default: 3478,
    min: 0,
    max: 65_535,
    help: 'UDP port of STUN on the first supernode; with --turn, the UDP and TCP port of TURN (which answers STUN too) on the first supernode, the others following.',
  },
  turn: {
    kind: 'bool',
    env: 'SUPERNODE_LOCAL_TURN',
    default: true,
    help: 'Serve TURN on every supernode, with a secret made for this run and given to the supernodes and the auth service (whose login answers then carry iceServers); relays to loopback allowed. The banner prints a working iceServers example.',
  },
  drainTimeoutMs: {
    kind: 'int',
    env: 'SUPERNODE_DRAIN_TIMEOUT_MS',
    default: 5000,
    min: 0,
    max: 3_600_000,
    help: 'On Ctrl-C, how long the supernodes wait for clients to move before closing the rest.',
  },
  dataDir: {
    kind: 'string',
    env: 'SUPERNODE_DATA_DIR',
    default: '.data',
    help: 'Where the local tier keeps its data.',
  },
  logLevel: {
    kind: 'enum',
    env: 'SUPERNODE_LOG_LEVEL',
    default: 'warn',
    choices: ['fatal', 'error', 'warn', 'info', 'debug'],
    help: 'Log level of the services.',
  },
} as const;
