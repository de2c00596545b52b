import { type ChildProcess, spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { helpText, parseOptions } from '../config/options';
import { loadOrCreateDevKey } from './dev-keys';

const tierOptions = {
  host: {
    kind: 'string',
    env: 'SUPERNODE_LOCAL_HOST',
    default: '127.0.0.1',
    help: 'Address every service binds to.',
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
  const { jwksFile } = await loadOrCreateDevKey(options.dataDir);
  const urls = Array.from(
    { length: options.nodes },
    (_, i) => `ws://${options.host}:${options.basePort + i}`,
  );
  const children: ChildProcess[] = [];
  let stopping = false;
  urls.forEach((url, i) => {
    const name = `node-${i + 1}`;
    const child = spawn(process.execPath, [CLI, 'node'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        SUPERNODE_HOST: options.host,
        SUPERNODE_PORT: String(options.basePort + i),
        SUPERNODE_NODE_ID: `local-${i + 1}`,
        SUPERNODE_PUBLIC_URL: url,
        SUPERNODE_ALTERNATIVES: urls.filter((u) => u !== url).join(','),
        SUPERNODE_JWKS_FILE: jwksFile,
        SUPERNODE_STUN: i === 0 ? 'true' : 'false',
        SUPERNODE_STUN_PORT: String(options.stunPort),
        SUPERNODE_LOG_LEVEL: options.logLevel,
      },
    });
    child.on('exit', (code, signal) => {
      if (!stopping)
        console.error(`local tier: ${name} exited (code ${code}, signal ${signal}); the others keep running`);
    });
    children.push(child);
  });
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    console.log('local tier: stopping (each node drains first)');
    for (const child of children) child.kill('SIGTERM');
    void Promise.all(
      children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))),
    ).then(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await Promise.all(urls.map((url) => waitReady(url.replace(/^ws/, 'http'))));
  console.log(
    [
      '',
      'Supernode Tier is running locally:',
      ...urls.map(
        (url, i) =>
          `  supernode local-${i + 1}  ${url}/v1/session   health ${url.replace(/^ws/, 'http')}/readyz`,
      ),
      `  STUN (UDP)            ${options.host}:${options.stunPort}`,
      `  public keys           ${jwksFile}`,
      '',
      'Try it:',
      '  TOKEN=$(npx supernode dev-token --user alice)',
      `  curl -s ${urls[0].replace(/^ws/, 'http')}/readyz`,
      '  then open a WebSocket to the session URL and send {"type":"hello","token":"' +
        '$TOKEN' +
        '"} (docs/protocol.md)',
      'Stop with Ctrl-C.',
    ].join('\n'),
  );
}

async function waitReady(baseUrl: string): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    try {
      const response = await fetch(`${baseUrl}/readyz`);
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${baseUrl} did not become ready within 30 s`);
}
