/**
 * Compiles the TURN relay fast path (fastpath.c, a Node-API addon) with the machine's C compiler:
 * `npm run build:native` (also run by `npm test` and `npm start` first). Without a compiler or Node's
 * headers it says so and exits 0: TURN then relays through dgram (docs/turn.md, "Relay engine").
 * `--require` makes that an error (CI). Nothing is downloaded: the headers come with Node.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import { FASTPATH_BINARY, FASTPATH_SOURCE } from './fastpath';

/** Where Node's own headers are (node_api.h, uv.h): next to the binary, or a distribution's path. */
export function nodeIncludeDir(): string | undefined {
  const candidates = [
    path.join(path.dirname(process.execPath), '..', 'include', 'node'),
    '/usr/include/node',
    '/usr/local/include/node',
  ];
  return candidates.find(
    (dir) => existsSync(path.join(dir, 'node_api.h')) && existsSync(path.join(dir, 'uv.h')),
  );
}

/** Builds unless the binary is newer than the source; returns what happened, or throws on a compiler error. */
export function buildFastPath(compiler = process.env.CC || 'cc'): { built: boolean; reason: string } {
  if (process.platform !== 'linux')
    return { built: false, reason: `${process.platform} is not Linux (recvmmsg)` };
  const include = nodeIncludeDir();
  if (!include) return { built: false, reason: 'Node headers (node_api.h, uv.h) not found' };
  if (existsSync(FASTPATH_BINARY) && statSync(FASTPATH_BINARY).mtimeMs >= statSync(FASTPATH_SOURCE).mtimeMs) {
    return { built: false, reason: `up to date: ${path.relative(process.cwd(), FASTPATH_BINARY)}` };
  }
  try {
    execFileSync(compiler, ['--version'], { stdio: 'ignore' });
  } catch {
    return { built: false, reason: `no C compiler (${compiler}); on Debian: apt-get install -y gcc` };
  }
  mkdirSync(path.dirname(FASTPATH_BINARY), { recursive: true });
  const partial = `${FASTPATH_BINARY}.${process.pid}`;
  execFileSync(
    compiler,
    ['-O2', '-Wall', '-shared', '-fPIC', `-I${include}`, FASTPATH_SOURCE, '-o', partial],
    {
      stdio: 'inherit',
    },
  );
  renameSync(partial, FASTPATH_BINARY);
  return { built: true, reason: `built ${path.relative(process.cwd(), FASTPATH_BINARY)}` };
}

if (require.main === module) {
  const result = buildFastPath();
  console.log(`turn fast path: ${result.reason}`);
  if (process.argv.includes('--require') && !result.built && !result.reason.startsWith('up to date')) {
    process.exit(1);
  }
}
