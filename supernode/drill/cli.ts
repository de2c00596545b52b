import { crashOptionTable, stormOptionTable } from '../config/drill-options';
import { helpText, type OptionTable } from '../config/options';
import { formatCrash, parseCrashOptions, runCrashDrill } from './crash';
import { formatStorm, parseStormOptions, runStormDrill } from './storm';

const USAGE = `Usage: supernode drill <storm|crash|all> [options]

  storm   Every supernode restarts at once while the auth service is down (2007), then again with
          the credentials lost. Prints a table; writes the timeline (JSON) and a chart (SVG).
  crash   kill -9 of one supernode under lookup and message traffic (2010), then a build that
          crashes after start, run through the release gate.
  all     Both, with their defaults (npm run drill).

Run "supernode drill <name> --help" for the options. The drills run from a clone of the repository
(they start the tier from source) on loopback only, and stop and clean up by themselves.`;

/** `--help`, or parse the options, run the drill and print its table. */
function command<O, R>(
  name: string,
  table: OptionTable,
  parse: (argv: string[]) => O,
  run: (options: O) => Promise<R>,
  format: (result: R) => string,
): (argv: string[]) => Promise<void> {
  return async (argv) => {
    if (argv.includes('--help')) {
      console.log(helpText(`Usage: supernode drill ${name} [options]`, table));
      return;
    }
    console.log(format(await run(parse(argv))));
  };
}

const storm = command('storm', stormOptionTable, parseStormOptions, runStormDrill, formatStorm);
const crash = command('crash', crashOptionTable, parseCrashOptions, runCrashDrill, formatCrash);

export async function runDrill(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === 'storm') return storm(rest);
  if (name === 'crash') return crash(rest);
  if (name === 'all') {
    await storm(rest);
    return crash(rest);
  }
  console.log(USAGE);
  if (name !== '--help' && name !== undefined) process.exitCode = 2;
}
