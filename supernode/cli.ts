import { nodeOptionTable } from './config/node-options';
import { ConfigError, helpText, parseOptions } from './config/options';
import { runDevToken } from './local/dev-keys';
import { runLocalTier } from './local/tier';
import { buildSupernode } from './node/server';

const USAGE = `Usage: supernode <command> [options]

Commands:
  node        Run one supernode (sessions, presence, relay, STUN, health, metrics)
  local       Run the local tier: dev keys and three supernodes on 7001-7003
  dev-token   Print an access token signed with the local tier's dev key

Run "supernode <command> --help" for the options of a command.`;

type Command = (argv: string[]) => Promise<void>;

const commands: Record<string, Command> = {
  node: runNode,
  local: runLocalTier,
  'dev-token': runDevToken,
};

async function runNode(argv: string[]): Promise<void> {
  if (argv.includes('--help')) {
    console.log(helpText('Usage: supernode node [options]\n\nRuns one supernode.', nodeOptionTable));
    return;
  }
  const config = parseOptions(nodeOptionTable, argv);
  const node = buildSupernode({ ...config, onDrained: () => process.exit(0) });
  try {
    await node.listen();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EADDRINUSE') {
      throw new ConfigError(`${(err as Error).message}: choose another --port or --stun-port`);
    }
    throw err;
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
