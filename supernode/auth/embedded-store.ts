import { mkdir, open, readFile, unlink } from 'node:fs/promises';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, resolve } from 'node:path';

/** A DynamoDB-compatible server on a local LevelDB directory (the store used outside AWS). */
export interface EmbeddedDynamo {
  endpoint: string;
  /** Stops the server and closes LevelDB, releasing its lock; idempotent. */
  close(): Promise<void>;
}

// dynalite does not report a LevelDB that fails to open (e.g. locked by another process): the first
// request then crashes the process with an uncaught LEVEL_DATABASE_NOT_OPEN. So we refuse a second
// opener ourselves with a pid file, checked before dynalite touches the directory.
const LOCK_FILE = 'embedded-store.lock';

export async function startEmbeddedDynamo(options: {
  path: string;
  host?: string;
  port?: number;
}): Promise<EmbeddedDynamo> {
  const dir = resolve(options.path);
  const host = options.host ?? '127.0.0.1';
  await mkdir(dir, { recursive: true });
  const lockPath = join(dir, LOCK_FILE);
  await takeLock(lockPath, dir);

  // Tables become ACTIVE at once: start-up need not wait out dynalite's default 500 ms.
  // Loaded here, not at the top: the AWS bundle leaves dynalite (a native LevelDB module) out.
  const dynalite = require('dynalite') as typeof import('dynalite');
  const server = dynalite({ path: dir, createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  try {
    await listen(server, options.port ?? 0, host);
  } catch (err) {
    // dynalite closes LevelDB only from a successful server.close(), which needs a listening server:
    // listen on any free loopback port just to be able to close and release the LevelDB lock.
    const released = await listen(server, 0, '127.0.0.1')
      .then(() => closeServer(server))
      .then(
        () => true,
        () => false,
      );
    // Keep the pid file if LevelDB may still be open: a later opener would crash on it.
    if (released) await unlink(lockPath).catch(() => undefined);
    throw err;
  }

  const { port } = server.address() as AddressInfo;
  const endpoint = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  let closing: Promise<void> | undefined;
  return {
    endpoint,
    close() {
      closing ??= closeServer(server).then(() => unlink(lockPath).catch(() => undefined));
      return closing;
    },
  };
}

function listen(server: Server, port: number, host: string): Promise<void> {
  return new Promise((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolveListen();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolveClose, reject) => {
    // Node >= 19 also drops idle keep-alive sockets here, so SDK clients still connected don't hold it up.
    server.close((err) => (err ? reject(err) : resolveClose()));
  });
}

async function takeLock(lockPath: string, dir: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const file = await open(lockPath, 'wx');
      await file.writeFile(String(process.pid));
      await file.close();
      return;
    } catch (err) {
      if (!isErrno(err, 'EEXIST')) throw err;
    }
    const pid = Number.parseInt(await readFile(lockPath, 'utf8').catch(() => ''), 10);
    if (pid === process.pid) throw new Error(`embedded store ${dir} is already open in this process`);
    if (Number.isInteger(pid) && pid > 0 && processAlive(pid)) {
      throw new Error(
        `embedded store ${dir} is in use by process ${pid} (remove ${lockPath} if that is not a supernode)`,
      );
    }
    // Left by a process that exited without closing: LevelDB's own lock died with it.
    await unlink(lockPath).catch(() => undefined);
  }
  throw new Error(`could not lock embedded store ${dir}`);
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return isErrno(err, 'EPERM');
  }
}

// Structural, not instanceof Error: errors from Node's fs fail that check inside Jest's module sandbox.
function isErrno(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && err.code === code;
}
