/**
 * kill -9 of a supernode. A node persists nothing: sessions, presence, the directory and the relay
 * state live in memory; it only reads its key set, revocation list and mesh secret, and logs to
 * stdout. So there is nothing a crash can leave half-written. This shows it (no file open for writing
 * while it runs, no file created or changed by it) and that a restart on the same settings comes up
 * ready, with the same ports, and takes back the clients' cached tokens.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SupernodeSession } from '../../supernode/client/session';
import { freePorts, waitReady } from '../../supernode/local/fleet';
import { makeTestKeys, type TestKeys } from '../helpers/node';

const CLI = join(__dirname, '../../supernode/bin/supernode.cjs');
const SECRET = 'durability-mesh-secret-0123456789abcdef';

let keys: TestKeys;
let scratch: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  keys = await makeTestKeys();
  scratch = await mkdtemp(join(tmpdir(), 'durability-node-'));
  await writeFile(join(keys.dir, 'revocations.json'), JSON.stringify({ generatedAt: 0, entries: [] }));
  await writeFile(join(keys.dir, 'mesh-secret'), `${SECRET}\n`, { mode: 0o600 });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await keys.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

/** Every file under `dir` with a hash of its content and its mtime. */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const entry of await readdir(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const hash = createHash('sha256')
      .update(await readFile(path))
      .digest('hex');
    out.set(path, `${hash} ${(await stat(path)).mtimeMs}`);
  }
  return out;
}

async function startNode(ports: { port: number; meshPort: number; stunPort: number }): Promise<string> {
  child = spawn(process.execPath, [CLI, 'node'], {
    // Working directory, home and temporary directory all point at an empty scratch directory, so
    // anything the node wrote would show up there.
    cwd: scratch,
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      HOME: scratch,
      TMPDIR: scratch,
      SUPERNODE_NODE_ID: 'durable-1',
      SUPERNODE_PORT: String(ports.port),
      SUPERNODE_JWKS_FILE: keys.jwksFile,
      SUPERNODE_REVOCATIONS_FILE: join(keys.dir, 'revocations.json'),
      SUPERNODE_STUN_PORT: String(ports.stunPort),
      SUPERNODE_MESH: 'true',
      SUPERNODE_MESH_PORT: String(ports.meshPort),
      SUPERNODE_MESH_SECRET_FILE: join(keys.dir, 'mesh-secret'),
      SUPERNODE_MESH_PEERS: `durable-1@ws://127.0.0.1:${ports.meshPort}`,
      SUPERNODE_LOG_LEVEL: 'error',
    },
  });
  const url = `http://127.0.0.1:${ports.port}`;
  await waitReady(url, 20_000, child);
  return url.replace(/^http/, 'ws');
}

/** Paths of the regular files the process holds open with write access (none expected). */
async function filesOpenForWriting(pid: number): Promise<string[]> {
  const out: string[] = [];
  for (const fd of await readdir(`/proc/${pid}/fd`)) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    if (!target.startsWith('/') || target === '/dev/null') continue; // pipes, sockets, eventfds
    const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8').catch(() => '');
    const flags = Number.parseInt(/flags:\s+(\d+)/.exec(info)?.[1] ?? '0', 8);
    if ((flags & 0o3) !== 0) out.push(target); // O_WRONLY or O_RDWR
  }
  return out;
}

/** The scratch directory, without tsx's compile cache: the development loader's, not the node's (the AWS bundle runs without tsx). */
async function writtenByNode(): Promise<string[]> {
  return (await readdir(scratch)).filter((name) => !name.startsWith('tsx-'));
}

describe('a supernode killed with SIGKILL', () => {
  it('has written nothing, and restarts on the same settings ready, taking back cached tokens', async () => {
    if (process.platform !== 'linux') return; // reads /proc
    const [port, meshPort, stunPort] = await freePorts(3);
    const before = await snapshot(keys.dir);
    const url = await startNode({ port, meshPort, stunPort });
    const tokens = { alice: await keys.mint('alice'), bob: await keys.mint('bob') };
    const alice = await SupernodeSession.connect({ url, token: tokens.alice });
    const bob = await SupernodeSession.connect({ url, token: tokens.bob });
    let received = 0;
    bob.on('message', () => received++);
    for (let i = 0; i < 200; i++) alice.send('bob', Buffer.alloc(512, i));
    expect((await alice.sendWithAck('bob', Buffer.from('last'))).delivered).toBe(1);
    expect(await filesOpenForWriting(child?.pid as number)).toEqual([]);

    // The kill lands while frames are still flowing.
    const closed = Promise.all([alice, bob].map((s) => new Promise<number>((r) => s.once('close', r))));
    for (let i = 0; i < 500; i++) alice.send('bob', Buffer.alloc(512, i));
    const dying = child as ChildProcess;
    const exited = new Promise((resolve) => dying.once('exit', (_code, signal) => resolve(signal)));
    dying.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');
    expect(await closed).toEqual([1006, 1006]);
    expect(received).toBeGreaterThan(0);

    // Nothing the node reads was touched, and it wrote nothing anywhere it could.
    expect(await snapshot(keys.dir)).toEqual(before);
    expect(await writtenByNode()).toEqual([]);

    // Same ports, same files: ready again, and the clients come back with the tokens they hold.
    const restarted = await startNode({ port, meshPort, stunPort });
    const ready = (await (await fetch(`${restarted.replace(/^ws/, 'http')}/readyz`)).json()) as object;
    expect(ready).toMatchObject({ ready: true, sessions: 0 });
    const [alice2, bob2] = await Promise.all(
      [tokens.alice, tokens.bob].map((token) => SupernodeSession.connect({ url: restarted, token })),
    );
    expect((await alice2.sendWithAck('bob', Buffer.from('again'))).delivered).toBe(1);
    expect(await alice2.lookup('bob')).toMatchObject({ online: true, sessions: 1 });
    await Promise.all([alice2.close(), bob2.close()]);
    child?.kill('SIGKILL');
  });
});
