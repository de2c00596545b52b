/**
 * kill -9 of the auth service (a real process with the embedded store under a temporary data
 * directory) while accounts are created and passwords changed; then a restart on the same
 * directory. Every write the service acknowledged (2xx) before the kill must be there afterwards,
 * and the store must open cleanly.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { freePorts, waitReady } from '../../supernode/local/fleet';

const CLI = join(__dirname, '../../supernode/bin/supernode.cjs');
const cycles = process.env.FUZZ_RUNS ? 5 : 1;
const WORKERS = 12;

let dataDir: string;
let child: ChildProcess | undefined;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'durability-auth-'));
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await rm(dataDir, { recursive: true, force: true });
});

async function startAuth(port: number): Promise<string> {
  child = spawn(process.execPath, [CLI, 'auth'], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: {
      ...process.env,
      AUTH_HOST: '127.0.0.1',
      AUTH_PORT: String(port),
      AUTH_DATA_DIR: dataDir,
      AUTH_LOG_LEVEL: 'error',
      // Tiny scrypt, so the writes, not the hashing, are what the kill lands on.
      AUTH_SCRYPT_N: '1024',
      AUTH_HASH_CONCURRENCY: '2',
      AUTH_HASH_QUEUE: '64',
      AUTH_IP_LOGINS_PER_MINUTE: '1000000',
      AUTH_ACCOUNT_LOGINS_PER_MINUTE: '10000',
      AUTH_LOCKOUT_THRESHOLD: '1000',
      AUTH_KEY_PUBLISH_LEAD_SEC: '0',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(url, 30_000, child);
  return url;
}

async function killHard(): Promise<void> {
  const dying = child as ChildProcess;
  if (dying.exitCode !== null || dying.signalCode !== null) return;
  const exited = new Promise((resolve) => dying.once('exit', resolve));
  dying.kill('SIGKILL');
  await exited;
}

/** One account as the client knows it: the password last acknowledged, and one sent but unanswered. */
interface Known {
  username: string;
  acked: string;
  ackedChangedAt?: number;
  inFlight?: string;
}

async function post(
  url: string,
  path: string,
  body: object,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return {
    status: response.status,
    body: (await response.json().catch(() => ({}))) as Record<string, unknown>,
  };
}

/**
 * One client: creates an account, changes its password a few times, creates the next one... until a
 * request fails on the network (the service died). Only answers count: a 2xx is acknowledged.
 */
async function worker(url: string, cycle: number, id: number, known: Known[]): Promise<void> {
  for (let n = 0; ; n++) {
    const username = `d${cycle}-w${id}-${n}`;
    const first = `first-pass-${n}-${id}`;
    try {
      const created = await post(url, '/v1/accounts', { username, password: first });
      if (created.status !== 201) continue; // shed (503): not written, nothing to remember
    } catch {
      return; // unanswered: it may or may not exist, so nothing is expected of it
    }
    const account: Known = { username, acked: first };
    known.push(account);
    for (let k = 1; k <= 3; k++) {
      const next = `pass-${k}-${n}-${id}`;
      account.inFlight = next;
      try {
        const changed = await post(url, '/v1/accounts/password', {
          username,
          currentPassword: account.acked,
          newPassword: next,
        });
        account.inFlight = undefined;
        if (changed.status === 200) {
          account.acked = next;
          account.ackedChangedAt = changed.body.passwordChangedAt as number;
        }
      } catch {
        return; // the change in flight may have landed or not; either password may be the one
      }
    }
  }
}

describe('the auth service killed with SIGKILL under writes', () => {
  it('keeps every acknowledged account and password change, and its store and keys open cleanly', async () => {
    const [port] = await freePorts(1);
    let url = await startAuth(port);
    const all: Known[] = [];
    // A token issued before any kill: the signing key must survive too.
    expect((await post(url, '/v1/accounts', { username: 'keeper', password: 'keeper-pass-1' })).status).toBe(
      201,
    );
    const early = (await post(url, '/v1/login', { username: 'keeper', password: 'keeper-pass-1' })).body;

    for (let cycle = 0; cycle < cycles; cycle++) {
      const known: Known[] = [];
      const workers = Array.from({ length: WORKERS }, (_, id) => worker(url, cycle, id, known));
      // Let a good number of writes be acknowledged, then kill at a random moment within the stream.
      const deadline = Date.now() + 15_000;
      while (known.filter((k) => k.ackedChangedAt).length < 20 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 25));
      await new Promise((r) => setTimeout(r, Math.random() * 300));
      await killHard();
      await Promise.all(workers);
      all.push(...known);
      expect(known.filter((k) => k.ackedChangedAt).length).toBeGreaterThanOrEqual(20);

      url = await startAuth(port);
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
    }

    // Every acknowledged account exists, with its acknowledged password (or, if a change was in flight
    // at the kill, possibly that one: the write may have landed before its answer was lost).
    const lost: string[] = [];
    for (const account of all) {
      const withAcked = await post(url, '/v1/login', { username: account.username, password: account.acked });
      if (withAcked.status === 200) continue;
      if (account.inFlight) {
        const withNew = await post(url, '/v1/login', {
          username: account.username,
          password: account.inFlight,
        });
        if (withNew.status === 200) continue;
      }
      lost.push(`${account.username}: ${withAcked.status} ${JSON.stringify(withAcked.body)}`);
    }
    expect(lost).toEqual([]);

    // Each acknowledged change also revoked the tokens from before it, durably.
    const list = (await (await fetch(`${url}/v1/revocations`)).json()) as {
      entries: Array<{ kind: string; id: string; at: number }>;
    };
    const revokedAt = new Map(list.entries.filter((e) => e.kind === 'user').map((e) => [e.id, e.at]));
    for (const account of all.filter((a) => a.ackedChangedAt !== undefined))
      expect(revokedAt.get(account.username)).toBeGreaterThanOrEqual(account.ackedChangedAt as number);

    // Keys: the token issued before the first kill still verifies against the served key set.
    const jwks = (await (await fetch(`${url}/.well-known/jwks.json`)).json()) as { keys: [] };
    await expect(
      jwtVerify(early.accessToken as string, createLocalJWKSet(jwks), { audience: 'supernode' }),
    ).resolves.toMatchObject({ payload: { sub: 'keeper' } });
    // Refresh tokens were written durably too, and the store takes new writes.
    expect(
      (await post(url, '/v1/token/refresh', { refreshToken: early.refreshToken as string })).status,
    ).toBe(200);
    expect(
      (await post(url, '/v1/accounts', { username: 'after-crash', password: 'after-crash-1' })).status,
    ).toBe(201);
    // The dead process's lock was taken over, and the live one holds it.
    expect(await readdir(join(dataDir, 'dynamo'))).toContain('embedded-store.lock');
    await killHard();
  }, 90_000);
});
