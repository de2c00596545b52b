import { buildAuthService } from './auth/service';
import { runClient } from './client/cli';
import { authOptionTable } from './config/auth-options';
import { nodeOptionTable } from './config/node-options';
import { ConfigError, helpText, parseOptions } from './config/options';
import { runLocalTier } from './local/tier';
import { buildSupernode } from './node/server';
import { runSoak } from './soak';

const USAGE = `Usage: supernode <command> [options]

Commands:
  node        Run one supernode (sessions, presence, relay, STUN, health, metrics)
  auth        Run the auth service (accounts, login, refresh, keys, revocations)
  local       Run the local tier: store, auth service and three supernodes
  client      Sign up, log in and connect as a user (try the tier by hand)
  soak        Release gate: exit 0 only after /readyz stays ready for the soak period
  drill       Recreate the 2007 login storm and the 2010 supernode crash on a local tier, measured

Run "supernode <command> --help" for the options of a command.`;

type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, Command> = {
  node: runNode,
  auth: runAuth,
  local: runLocalTier,
  client: runClient,
  soak: runSoak,
  // Loaded on demand: the drills pull in the whole client side.
  drill: (argv) => (require('./drill/cli') as typeof import('./drill/cli')).runDrill(argv),
};

async function runAuth(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(helpText('Usage: supernode auth [options]\n\nRuns the auth service.', authOptionTable));
    return;
  }
  const service = await buildAuthService(parseOptions(authOptionTable, argv));
  await listenOrExplain(() => service.listen());
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

/** A port in use is a configuration problem: say so in one line. */
async function listenOrExplain<T>(listen: () => Promise<T>): Promise<T> {
  try {
    return await listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(`${(err as Error).message}: choose another port`);
    }
    throw err;
  }
}

async function runNode(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(helpText('Usage: supernode node [options]\n\nRuns one supernode.', nodeOptionTable));
    return;
  }
  const config = parseOptions(nodeOptionTable, argv);
  const node = buildSupernode({ ...config, onDrained: () => process.exit(0) });
  await listenOrExplain(() => node.listen());
  if (config.faultCrashAfterMs > 0) {
    // Fault injection for drills and the release gate's own test: a build that dies some time after start.
    setTimeout(() => {
      node.app.log.fatal({ afterMs: config.faultCrashAfterMs }, 'fault injection: crashing');
      process.exit(70);
    }, config.faultCrashAfterMs).unref();
  }
  let signals = 0;
  const onSignal = (signal: string): void => {
    signals++;
    if (signals > 1) {
      node.app.log.warn({ signal }, 'second signal: exiting without waiting for the drain');
      process.exit(1);
    }
    node.app.log.info({ signal }, 'draining before exit');
    void node.drain();
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
}

export async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === 'help' || name === '-h') {
    console.log(USAGE);
    return;
  }
  const command = commands[name];
  if (!command) {
    console.error(
      `supernode: unknown command "${name.slice(0, 40)}"; run "supernode --help" for the commands`,
    );
    process.exitCode = 2;
    return;
  }
  try {
    await command(rest);
  } catch (err) {
    if (err instanceof ConfigError) {
      // One line saying which option and what is allowed, then a non-zero exit.
      console.error(`supernode ${name}: ${err.message}`);
      process.exit(2);
    }
    throw err;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).catch((err: unknown) => {
    console.error(`supernode: ${(err as Error).stack ?? String(err)}`);
    process.exit(1);
  });
}
