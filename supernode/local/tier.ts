import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { helpText, parseOptions } from '../config/options';
import { writeAtomically } from '../shared/files';
import { waitReady } from './fleet';

const tierOptions = {
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
    help: 'UDP port of STUN on the first supernode.',
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

const CLI = resolve(__dirname, '../bin/supernode.cjs');

/** Runs the tier as separate processes, as in AWS: a crash of one node leaves the others up. */
export async function runLocalTier(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(
      helpText('Usage: supernode local [options]\n\nRuns the whole tier on this machine.', tierOptions),
    );
    return;
  }
  const options = parseOptions(tierOptions, argv);
  const authUrl = `http://${options.host}:${options.authPort}`;
  const jwksFile = join(options.dataDir, 'auth', 'jwks.json');
  const revocationsFile = join(options.dataDir, 'auth', 'revocations.json');
  const urls = Array.from(
    { length: options.nodes },
    (_, i) => `ws://${options.host}:${options.basePort + i}`,
  );
  const meshPeers = urls
    .map((_, i) => `local-${i + 1}@ws://${options.host}:${options.meshBasePort + i}`)
    .join(',');
  const meshSecret = await loadOrCreateSecret(join(options.dataDir, 'mesh-secret'));
  const children: Array<{ name: string; child: ChildProcess }> = [];
  let stopping = false;
  const start = (name: string, command: string, env: NodeJS.ProcessEnv): void => {
    const child = spawn(process.execPath, [CLI, command], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: { ...process.env, ...env },
    });
    child.on('exit', (code, signal) => {
      if (!stopping)
        console.error(`local tier: ${name} exited (code ${code}, signal ${signal}); the others keep running`);
    });
    children.push({ name, child });
  };
  // The auth service first: it owns the store and writes the key set the supernodes read.
  start('auth', 'auth', {
    AUTH_HOST: options.host,
    AUTH_PORT: String(options.authPort),
    AUTH_DATA_DIR: options.dataDir,
    AUTH_LOG_LEVEL: options.logLevel,
  });
  await waitReady(authUrl, 30_000);
  urls.forEach((url, i) => {
    start(`node-${i + 1}`, 'node', {
      SUPERNODE_HOST: options.host,
      SUPERNODE_PORT: String(options.basePort + i),
      SUPERNODE_NODE_ID: `local-${i + 1}`,
      SUPERNODE_PUBLIC_URL: url,
      SUPERNODE_ALTERNATIVES: urls.filter((u) => u !== url).join(','),
      // Files, not URLs: nodes keep accepting tokens (and restart) while the auth service is down.
      SUPERNODE_JWKS_FILE: jwksFile,
      SUPERNODE_REVOCATIONS_FILE: revocationsFile,
      SUPERNODE_JWKS_REFRESH_MS: '10000',
      SUPERNODE_REVOCATIONS_REFRESH_MS: '5000',
      SUPERNODE_DRAIN_TIMEOUT_MS: '5000',
      SUPERNODE_MESH: 'true',
      SUPERNODE_MESH_PORT: String(options.meshBasePort + i),
      SUPERNODE_MESH_PEERS: meshPeers,
      SUPERNODE_MESH_SECRET: meshSecret,
      SUPERNODE_STUN: i === 0 ? 'true' : 'false',
      SUPERNODE_STUN_PORT: String(options.stunPort),
      SUPERNODE_LOG_LEVEL: options.logLevel,
    });
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('local tier: stopping (supernodes drain first, then the auth service)');
    const exited = (child: ChildProcess) =>
      new Promise((r) =>
        child.exitCode !== null || child.signalCode !== null ? r(null) : child.once('exit', r),
      );
    const nodes = children.filter((c) => c.name !== 'auth').map((c) => c.child);
    const auth = children.filter((c) => c.name === 'auth').map((c) => c.child);
    for (const child of nodes) child.kill('SIGTERM');
    void Promise.all(nodes.map(exited))
      .then(() => {
        for (const child of auth) child.kill('SIGTERM');
        return Promise.all(auth.map(exited));
      })
      .then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await Promise.all(urls.map((url) => waitReady(url.replace(/^ws/, 'http'), 30_000)));
  const cli = 'npx supernode client';
  console.log(
    [
      '',
      'Supernode Tier is running locally:',
      `  auth service       ${authUrl}   (store: embedded DynamoDB under ${options.dataDir}/dynamo)`,
      ...urls.map(
        (url, i) =>
          `  supernode local-${i + 1}  ${url}/v1/session   ready: ${url.replace(/^ws/, 'http')}/readyz`,
      ),
      `  STUN (UDP)         ${options.host}:${options.stunPort}`,
      `  public keys        ${jwksFile}`,
      '',
      'Try it (two terminals):',
      `  ${cli} signup --username alice --password 'alice-secret-1'`,
      `  ${cli} signup --username bob --password 'bob-secret-12'`,
      `  ${cli} connect --username bob --node ${urls[0]}                      # waits for messages`,
      `  ${cli} connect --username alice --node ${urls[urls.length - 1]} --lookup bob --send bob --message hi --wait-ms 1000`,
      '  (bob and alice sit on different supernodes: the lookup and the message cross the mesh)',
      '',
      'Ctrl-C drains and stops everything; the next start reuses the accounts and keys in .data/.',
    ].join('\n'),
  );
}

/** The mesh secret of the local tier, made once and kept (owner-only) so restarts rejoin the same mesh. */
async function loadOrCreateSecret(path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    const secret = randomBytes(32).toString('base64url');
    await writeAtomically(path, secret, 0o600);
    return secret;
  }
}
