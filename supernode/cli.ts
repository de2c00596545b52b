import { isAuthWorkerThread, runAuthService, serveAuthWorker } from './auth';
import { runClient } from './client/cli';
import { ConfigError } from './config/options';
import { runLocalTier } from './local/tier';
import { runSupernode } from './node';
import { runSoak } from './soak';
import { isStunResponderProcess, serveStunResponder } from './stun/responders';

// The AWS SDK warns once per process, on Node 20, that its 2027 releases will need Node 22. Our
// instances run Node 22 (docs/decisions.md); on a developer's Node 20 the warning is ten lines of noise
// in every start that the user can do nothing about for this release, so it is silenced here, knowingly,
// unless the user set the variable themselves. Children (the local tier, drills) inherit it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `Usage: supernode <command> [options]

Commands:
  node        Run one supernode (sessions, presence, relay, STUN, health, metrics)
  auth        Run the auth service (accounts, login, refresh, keys, revocations)
  local       Run the local tier: store, auth service and three supernodes
  client      Sign up, log in and connect as a user (try the tier by hand)
  soak        Release gate: exit 0 only after /readyz stays ready for the soak period
  drill       Recreate the 2007 login storm and the 2010 supernode crash on a local tier, measured
  console     The operator console (live nodes, sessions, mesh, admission) for a local tier or a fleet

Run "supernode <command> --help" for the options of a command.`;

type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, Command> = {
  node: runSupernode,
  auth: runAuthService,
  local: runLocalTier,
  client: runClient,
  soak: runSoak,
  // Loaded on demand: the drills pull in the whole client side.
  drill: (argv) => (require('./drill/cli') as typeof import('./drill/cli')).runDrill(argv),
  console: (argv) => (require('./web/index') as typeof import('./web/index')).runConsole(argv),
};

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
  // In the one-file bundle the auth service's worker thread and the STUN responders start from this file.
  if (isAuthWorkerThread()) serveAuthWorker();
  else if (isStunResponderProcess()) serveStunResponder();
  else
    main(process.argv.slice(2)).catch((err: unknown) => {
      console.error(`supernode: ${(err as Error).stack ?? String(err)}`);
      process.exit(1);
    });
}
