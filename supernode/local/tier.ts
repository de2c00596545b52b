import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { iceServersFor } from '../auth/index';
import { authOptionTable } from '../config/auth-options';
import { localOptionTable } from '../config/local-options';
import { ConfigError, helpText, parseOptions } from '../config/options';
import { writeAtomically } from '../shared/files';
import { waitReady } from './fleet';
import { clashes, optionText, type PortUse, portProblem, portText } from './ports';

const CLI = resolve(__dirname, '../bin/supernode.cjs');
const PARENT_GUARD = resolve(__dirname, 'parent-guard.cjs');
const READY_TIMEOUT_MS = 30_000;
/** Stopping may take the drain deadline plus this; then whatever is left is killed. */
const STOP_GRACE_MS = 15_000;

interface Component {
  /** As in the banner: "auth service", "supernode local-1". */
  name: string;
  command: 'auth' | 'node' | 'console';
  readyUrl: string;
  ports: PortUse[];
  env: NodeJS.ProcessEnv;
  child?: ChildProcess;
  /** Sent its one orderly SIGTERM: a second one would make a supernode skip its drain. */
  signalled?: boolean;
}

type Phase = 'starting' | 'running' | 'stopping';

const alive = (c: Component): c is Component & { child: ChildProcess } =>
  c.child !== undefined && c.child.exitCode === null && c.child.signalCode === null;

const exited = (c: Component): Promise<void> =>
  new Promise((r) => (alive(c) ? c.child.once('exit', () => r()) : r()));

/** The component's whole process group: it is a group leader (detached). */
function killGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid !== undefined) process.kill(-child.pid, signal);
  } catch {
    child.kill(signal);
  }
}

/** Runs the tier as separate processes, as in AWS: a crash of one node leaves the others up. */
export async function runLocalTier(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(
      helpText('Usage: supernode local [options]\n\nRuns the whole tier on this machine.', localOptionTable),
    );
    return;
  }
  const options = parseOptions(localOptionTable, argv);
  const { host } = options;
  const authUrl = `http://${host}:${options.authPort}`;
  const jwksFile = join(options.dataDir, 'auth', 'jwks.json');
  const revocationsFile = join(options.dataDir, 'auth', 'revocations.json');
  const urls = Array.from({ length: options.nodes }, (_, i) => `ws://${host}:${options.basePort + i}`);
  const meshPeers = urls.map((_, i) => `local-${i + 1}@ws://${host}:${options.meshBasePort + i}`).join(',');
  const turn = options.turn ? localTurn(host, options.stunPort, options.nodes) : undefined;

  const auth: Component = {
    name: 'auth service',
    command: 'auth',
    readyUrl: authUrl,
    ports: [{ port: options.authPort, protocol: 'tcp', what: 'the auth service', option: 'authPort' }],
    env: {
      AUTH_HOST: host,
      AUTH_PORT: String(options.authPort),
      AUTH_DATA_DIR: options.dataDir,
      AUTH_LOG_LEVEL: options.logLevel,
      ...(turn && { AUTH_TURN_URLS: turn.urls.join(','), AUTH_TURN_SECRET: turn.secret }),
      // The demo page is served by the console, on another origin: the browser needs CORS to log in.
      AUTH_CORS_ORIGINS: `http://${host.includes(':') ? `[${host}]` : host}:${options.consolePort}`,
    },
  };
  const nodes: Component[] = urls.map((url, i) => {
    const name = `supernode local-${i + 1}`;
    const ports: PortUse[] = [
      { port: options.basePort + i, protocol: 'tcp', what: name, option: 'basePort' },
      {
        port: options.meshBasePort + i,
        protocol: 'tcp',
        what: `the mesh of ${name}`,
        option: 'meshBasePort',
      },
    ];
    // Port 0 lets the OS choose: nothing to check.
    if (turn) {
      for (const protocol of ['udp', 'tcp'] as const)
        ports.push({ port: turn.ports[i], protocol, what: `TURN of ${name}`, option: 'stunPort' });
    } else if (i === 0 && options.stunPort > 0)
      ports.push({ port: options.stunPort, protocol: 'udp', what: `STUN of ${name}`, option: 'stunPort' });
    return {
      name,
      command: 'node',
      readyUrl: url.replace(/^ws/, 'http'),
      ports,
      env: {
        SUPERNODE_HOST: host,
        SUPERNODE_PORT: String(options.basePort + i),
        SUPERNODE_NODE_ID: `local-${i + 1}`,
        SUPERNODE_PUBLIC_URL: url,
        SUPERNODE_ALTERNATIVES: urls.filter((u) => u !== url).join(','),
        // Files, not URLs: nodes keep accepting tokens (and restart) while the auth service is down.
        SUPERNODE_JWKS_FILE: jwksFile,
        SUPERNODE_REVOCATIONS_FILE: revocationsFile,
        SUPERNODE_JWKS_REFRESH_MS: '10000',
        SUPERNODE_REVOCATIONS_REFRESH_MS: '5000',
        SUPERNODE_DRAIN_TIMEOUT_MS: String(options.drainTimeoutMs),
        SUPERNODE_MESH: 'true',
        SUPERNODE_MESH_PORT: String(options.meshBasePort + i),
        SUPERNODE_MESH_PEERS: meshPeers,
        SUPERNODE_STUN: i === 0 ? 'true' : 'false',
        SUPERNODE_STUN_PORT: String(turn ? turn.ports[i] : options.stunPort),
        SUPERNODE_LOG_LEVEL: options.logLevel,
        ...(turn && {
          SUPERNODE_TURN: 'true',
          SUPERNODE_TURN_SECRET: turn.secret,
          // Local peers are loopback addresses, which a TURN server in AWS must never relay to.
          SUPERNODE_TURN_ALLOW_PEERS: '127.0.0.0/8,::1',
        }),
      },
    };
  });
  const consoleUrl = `http://${host}:${options.consolePort}`;
  // A component like the others (not in this process): it stops on the same SIGTERM, and a crash of
  // it leaves the tier running.
  const operatorConsole: Component = {
    name: 'console',
    command: 'console',
    readyUrl: consoleUrl,
    ports: [{ port: options.consolePort, protocol: 'tcp', what: 'the console', option: 'consolePort' }],
    env: {
      CONSOLE_HOST: host,
      CONSOLE_PORT: String(options.consolePort),
      CONSOLE_URLS: urls.map((url) => url.replace(/^ws/, 'http')).join(','),
      CONSOLE_AUTH_URL: authUrl,
      // The drills' default output (DRILL_OUT) under the same data directory.
      CONSOLE_DRILL_DIR: join(options.dataDir, 'drills'),
      CONSOLE_LOG_LEVEL: options.logLevel,
      ...(process.env.AUTH_ADMIN_TOKEN && { CONSOLE_AUTH_ADMIN_TOKEN: process.env.AUTH_ADMIN_TOKEN }),
    },
  };
  const components = [auth, ...nodes, operatorConsole];

  const allPorts = components.flatMap((c) => c.ports);
  const clash = clashes(allPorts);
  if (clash.length > 0) throw new ConfigError(`${clash[0]}: move one of them`);
  // Every port checked before anything starts, and every busy one named with the option that moves it.
  const busy = (
    await Promise.all(allPorts.map(async (use) => ({ use, problem: await portProblem(host, use) })))
  ).filter((b) => b.problem !== undefined);
  if (busy.length > 0) {
    for (const { use, problem } of busy)
      console.error(
        `local tier: ${use.protocol.toUpperCase()} port ${use.port} (${use.what}) ${problem}; choose another with ${optionText(use.option)}`,
      );
    console.error('local tier: nothing was started (is another tier running?)');
    process.exitCode = 2;
    return;
  }
  const meshSecret = await loadOrCreateSecret(join(options.dataDir, 'mesh-secret'));
  for (const node of nodes) node.env.SUPERNODE_MESH_SECRET = meshSecret;

  let phase: Phase = 'starting';
  let exitCode = 0;
  let signals = 0;

  const stop = async (why: 'requested' | 'failed to start' | 'nothing left'): Promise<void> => {
    if (phase === 'stopping') return;
    phase = 'stopping';
    if (why === 'requested')
      console.log(
        `local tier: stopping (supernodes drain, for up to ${options.drainTimeoutMs / 1000} s; then the auth service)`,
      );
    else if (components.some(alive)) console.log('local tier: stopping what is still running');
    const backstop = setTimeout(() => {
      const left = components.filter(alive);
      console.error(`local tier: ${left.map((c) => c.name).join(', ')} did not stop in time; killing`);
      exitCode = 1;
      for (const c of left) killGroup(c.child, 'SIGKILL');
    }, options.drainTimeoutMs + STOP_GRACE_MS);
    const terminate = (c: Component): void => {
      if (!alive(c) || c.signalled) return;
      c.signalled = true;
      c.child.kill('SIGTERM');
    };
    // The console first, with the supernodes: nobody is watching the tier stop.
    [operatorConsole, ...nodes].forEach(terminate);
    await Promise.all([operatorConsole, ...nodes].map(exited));
    terminate(auth);
    await exited(auth);
    clearTimeout(backstop);
    const outcome = {
      requested: 'stopped',
      'failed to start': 'the tier did not start; stopped what had started',
      'nothing left': 'stopped: every component has exited',
    }[why];
    (exitCode === 0 ? console.log : console.error)(`local tier: ${outcome} (exit code ${exitCode})`);
    process.exit(exitCode);
  };

  const onExit = (c: Component, code: number | null, signal: NodeJS.Signals | null): void => {
    const how = code !== null ? `with code ${code}` : `on ${signal}`;
    if (phase === 'stopping') {
      // Exits are expected now: only an unclean one is news (not after a second Ctrl-C, which asked for it).
      if (code !== 0 && !(c.signalled && signal === 'SIGTERM')) {
        if (signals < 2) console.error(`local tier: ${c.name} exited ${how} while stopping`);
        exitCode = 1;
      }
      return;
    }
    exitCode = 1;
    if (phase === 'starting') {
      // Exit code 2 is a configuration problem, most often a port taken since the check above.
      const ports = code === 2 ? ` (reason above); its ports: ${c.ports.map(portText).join(', ')}` : '';
      console.error(`local tier: ${c.name} exited ${how} before it was ready${ports}`);
      void stop('failed to start');
      return;
    }
    const running = components.filter(alive);
    if (running.length === 0) {
      console.error(`local tier: ${c.name} exited ${how}; nothing is left running`);
      void stop('nothing left');
      return;
    }
    console.error(
      `local tier: ${c.name} exited ${how}; still running: ${running.map((r) => r.name).join(', ')}`,
    );
  };

  const start = (c: Component): void => {
    const child = spawn(process.execPath, ['--require', PARENT_GUARD, CLI, c.command], {
      // Its own process group (and session). Ctrl-C in a terminal signals the whole foreground group:
      // a supernode that got it directly and again from this supervisor would take the second as
      // "exit now" and skip the drain. Now only the supervisor gets it, and passes it on once.
      detached: true,
      // stdin is a pipe only for the parent guard: it ends when this process is gone.
      stdio: ['pipe', 'inherit', 'inherit'],
      env: { ...process.env, ...c.env },
    });
    c.child = child;
    child.on('exit', (code, signal) => onExit(c, code, signal));
    child.on('error', (err) => {
      console.error(`local tier: cannot run ${c.name}: ${err.message}`);
      exitCode = 1;
      void stop('failed to start');
    });
  };

  /** True once `c` answers its readiness check; false if it exited or the tier is stopping. */
  const becameReady = async (c: Component): Promise<boolean> => {
    try {
      await waitReady(c.readyUrl, READY_TIMEOUT_MS, c.child);
      return phase === 'starting' && alive(c);
    } catch {
      // Exited: onExit has said so and stops the tier. Still running: it is stuck.
      if (phase === 'starting' && alive(c)) {
        console.error(
          `local tier: ${c.name} was not ready within ${READY_TIMEOUT_MS / 1000} s (${c.readyUrl}/readyz)`,
        );
        exitCode = 1;
        void stop('failed to start');
      }
      return false;
    }
  };

  const onSignal = (): void => {
    if (++signals === 1) {
      void stop('requested');
      return;
    }
    if (signals > 2) return;
    // A second Ctrl-C: the user does not want to wait. Passed on once; a supernode already draining
    // takes it as "exit now", the auth service (not yet told) closes at once.
    console.log('local tier: second signal: not waiting for the drain');
    for (const c of components.filter(alive)) {
      c.signalled = true;
      c.child.kill('SIGTERM');
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // The components are not in this process's group: if it ends without stopping them (an exception),
  // nothing else would. (If it is killed outright, the parent guard in each component stops it.)
  process.on('exit', () => {
    for (const c of components) if (alive(c)) killGroup(c.child, 'SIGKILL');
  });

  // The auth service first: it owns the store and writes the key set the supernodes read.
  start(auth);
  if (!(await becameReady(auth))) return;
  [...nodes, operatorConsole].forEach(start);
  const ready = await Promise.all([...nodes, operatorConsole].map(becameReady));
  if (!ready.every(Boolean) || phase !== 'starting') return;
  phase = 'running';

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
      turn
        ? `  TURN (UDP, TCP)    ${turn.ports.map((port) => `${host}:${port}`).join(', ')}   (STUN Binding too)`
        : `  STUN (UDP)         ${host}:${options.stunPort}`,
      `  public keys        ${jwksFile}`,
      `  console: ${consoleUrl}/console`,
      `  demo: ${consoleUrl}/demo/`,
      '',
      'Try it (two terminals):',
      `  ${cli} signup --username alice --password 'alice-secret-1'`,
      `  ${cli} signup --username bob --password 'bob-secret-12'`,
      `  ${cli} connect --username bob --node ${urls[0]}                      # waits for messages`,
      `  ${cli} connect --username alice --node ${urls[urls.length - 1]} --lookup bob --send bob --message hi --wait-ms 1000`,
      '  (bob and alice sit on different supernodes: the lookup and the message cross the mesh)',
      '',
      ...(turn ? turnBanner(turn, authUrl) : []),
      `Ctrl-C drains and stops everything; the next start reuses the accounts and keys in ${options.dataDir}/.`,
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

/** TURN of the local tier: node i on `stunPort + i`, one secret for this run, the URLs auth hands out. */
interface LocalTurn {
  ports: number[];
  secret: string;
  urls: string[];
}

function localTurn(host: string, stunPort: number, nodes: number): LocalTurn {
  // The auth service hands out every node's URL, so each port must be known before the nodes start.
  if (stunPort === 0) {
    throw new ConfigError(
      '--stun-port 0 (SUPERNODE_STUN_PORT) cannot be used with --turn: the auth service must know each TURN port; give a port or --no-turn',
    );
  }
  if (stunPort + nodes - 1 > 65_535) {
    throw new ConfigError(
      `--stun-port (SUPERNODE_STUN_PORT) ${stunPort} leaves no TURN port for ${nodes} supernodes`,
    );
  }
  const ports = Array.from({ length: nodes }, (_, i) => stunPort + i);
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const urls = ports.flatMap((port) => [
    `turn:${hostPart}:${port}?transport=udp`,
    `turn:${hostPart}:${port}?transport=tcp`,
  ]);
  // New each run: credentials of an earlier run stop working, nothing is written to disk.
  return { ports, secret: randomBytes(32).toString('base64url'), urls };
}

/** A working iceServers example, minted for a demo user, and where a client gets its own. */
function turnBanner(turn: LocalTurn, authUrl: string): string[] {
  const ttlSec = authOptionTable.turnCredentialTtlSec.default;
  const example = JSON.stringify(iceServersFor(turn.urls, turn.secret, 'demo', ttlSec));
  return [
    `WebRTC through the tier (TURN relay): iceServers minted now for user "demo", valid ${ttlSec / 3600} h:`,
    `  const iceServers = ${example};`,
    "  const pc = new RTCPeerConnection({ iceServers, iceTransportPolicy: 'relay' });",
    `  Each login (and refresh) answer carries a user's own: curl -s ${authUrl}/v1/login -H 'content-type: application/json' -d '{"username":"alice","password":"alice-secret-1"}'`,
    '',
  ];
}
