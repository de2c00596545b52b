import { runStormCommand } from './storm';

const USAGE = `Usage: supernode drill <storm|crash|all> [options]

  storm   Every supernode restarts at once while the auth service is down (2007), then again with
          the credentials lost. Prints a table; writes the timeline (JSON) and a chart (SVG).
  crash   kill -9 of one supernode under lookup and message traffic (2010), then a build that
          crashes after start, run through the release gate.
  all     Both, with their defaults (npm run drill).

Run "supernode drill <name> --help" for the options. The drills run from a clone of the repository
(they start the tier from source) on loopback only, and stop and clean up by themselves.`;

export async function runDrill(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  const { runCrashCommand } = require('./crash') as typeof import('./crash');
  if (name === 'storm') return runStormCommand(rest);
  if (name === 'crash') return runCrashCommand(rest);
  if (name === 'all') {
    await runStormCommand(rest);
    return runCrashCommand(rest);
  }
  console.log(USAGE);
  if (name !== '--help' && name !== undefined) process.exitCode = 2;
}
