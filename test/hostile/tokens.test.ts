/**
 * Hostile hellos: every forged-token shape, a valid token replayed from many connections, a revoked
 * user's token after the revocation list changes, and one user opening session after session. The
 * single-shape refusals are already in test/node/auth.test.ts; here each runs as an attack while a
 * control pair on the same node keeps working.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import { generateSigningKey, signAccessToken } from '../../supernode/auth/signing';
import { type SessionError, SupernodeSession } from '../../supernode/client/session';
import { makeTestKeys, type RunningNode, startTestNode, type TestKeys, waitFor } from '../helpers/node';
import { type ControlPair, controlPair, scale, sleep } from './hostile';

let keys: TestKeys;
let running: RunningNode;
let control: ControlPair;
let revocationsFile: string;
const open: SupernodeSession[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  revocationsFile = join(keys.dir, 'revocations.json');
  await writeRevocations([]);
  running = await startTestNode(keys, {
    maxSessionsPerUser: 3,
    revocationsFile,
    revocationsRefreshMs: 60_000, // refreshed by hand below
  });
  control = await controlPair({ a: running }, (user) => keys.mint(user));
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
  await control.check();
});
afterAll(async () => {
  await control.close();
  await running.node.close();
  await keys.cleanup();
});

function writeRevocations(
  entries: Array<{ kind: 'user' | 'family'; id: string; at: number }>,
): Promise<void> {
  return writeFile(revocationsFile, JSON.stringify({ generatedAt: Date.now(), entries }));
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

async function connect(token: string): Promise<SupernodeSession | SessionError> {
  return SupernodeSession.connect({ url: running.url, token }).catch((e: unknown) => e as SessionError);
}

const claims = () => ({ sub: 'mallory', aud: 'supernode', exp: Math.floor(Date.now() / 1000) + 600 });

/** Each forged shape, and the refusal docs/protocol.md gives it. */
const forgeries: Array<[string, () => Promise<string>, string, number]> = [
  ['expired', () => keys.mint('mallory', { ttlSec: -120 }), 'token_expired', 4003],
  [
    'a tampered signature',
    async () => {
      const [header, payload, signature] = (await keys.mint('mallory')).split('.');
      const flipped = Buffer.from(signature, 'base64url');
      flipped[0] ^= 1;
      return `${header}.${payload}.${flipped.toString('base64url')}`;
    },
    'token_invalid',
    4002,
  ],
  [
    'a tampered payload (another user)',
    async () => {
      const [header, , signature] = (await keys.mint('mallory')).split('.');
      return `${header}.${base64url({ ...claims(), sub: 'control-a' })}.${signature}`;
    },
    'token_invalid',
    4002,
  ],
  ['a wrong audience', () => keys.mint('mallory', { aud: 'another-service' }), 'token_invalid', 4002],
  [
    'an unknown kid',
    async () => keys.mint('mallory', { key: await generateSigningKey('k-unknown') }),
    'token_invalid',
    4002,
  ],
  [
    'a trusted kid with another private key',
    async () => keys.mint('mallory', { key: await generateSigningKey(keys.key.kid) }),
    'token_invalid',
    4002,
  ],
  [
    'alg none',
    async () => `${base64url({ alg: 'none', typ: 'JWT', kid: keys.key.kid })}.${base64url(claims())}.`,
    'token_invalid',
    4002,
  ],
  [
    'HS256 keyed with the public key',
    () =>
      new SignJWT(claims())
        .setProtectedHeader({ alg: 'HS256', kid: keys.key.kid })
        .sign(Buffer.from(keys.key.publicJwk.x as string)),
    'token_invalid',
    4002,
  ],
  ['garbage', async () => 'eyJ.garbage.!!', 'token_invalid', 4002],
  [
    'binary-looking garbage',
    async () => Buffer.from([0xff, 0xfe, 0, 1, 2]).toString('latin1'),
    'token_invalid',
    4002,
  ],
  [
    'a subject that is not a user id',
    () => signAccessToken(keys.key, { sub: 'ctl\u0000a', aud: 'supernode', ttlSec: 600 }),
    'token_invalid',
    4002,
  ],
  // Over the 4096-character limit of the hello: refused as a malformed message, before any crypto.
  ['a token of 5000 characters', async () => 'a'.repeat(5000), 'bad_message', 4000],
];

describe('forged tokens', () => {
  it.each(forgeries)(
    '%s: refused with its code, and the control pair keeps working',
    async (_name, forge, code, closeCode) => {
      const token = await forge();
      const outcomes = await Promise.all(Array.from({ length: 5 * scale }, () => connect(token)));
      for (const outcome of outcomes) expect(outcome).toMatchObject({ code, closeCode });
      await control.check();
      // A refused hello registers nothing: the forged subject is not online.
      expect(await control.a.lookup('mallory')).toMatchObject({ online: false });
    },
  );
});

describe('token replay', () => {
  it('one valid token replayed from many connections gets at most maxSessionsPerUser sessions; the oldest go with 4009', async () => {
    const token = await keys.mint('mallory');
    const sessions: SupernodeSession[] = [];
    const closes: Array<Promise<number>> = [];
    for (let i = 0; i < 8 * scale; i++) {
      const session = await SupernodeSession.connect({ url: running.url, token });
      sessions.push(session);
      closes.push(new Promise((resolve) => session.once('close', resolve)));
    }
    open.push(...sessions);
    const replaced = sessions.length - 3;
    expect(await Promise.all(closes.slice(0, replaced))).toEqual(Array(replaced).fill(4009));
    expect(sessions.slice(replaced).every((s) => s.isOpen)).toBe(true);
    expect(await control.a.lookup('mallory')).toMatchObject({ online: true, sessions: 3 });
    expect(running.node.metrics.stats.disconnects.get('replaced')).toBeGreaterThanOrEqual(replaced);
  });

  it('many concurrent sessions of one user stay bounded at maxSessionsPerUser; the others are closed 4009', async () => {
    const count = 20 * scale;
    const sessions = await Promise.all(
      Array.from({ length: count }, async () =>
        SupernodeSession.connect({ url: running.url, token: await keys.mint('swarm') }),
      ),
    );
    open.push(...sessions);
    await waitFor(
      () => sessions.filter((s) => s.closeCode !== undefined).length === count - 3,
      3000,
      'replaced',
    );
    expect(sessions.filter((s) => s.isOpen)).toHaveLength(3);
    expect(sessions.filter((s) => !s.isOpen).map((s) => s.closeCode)).toEqual(Array(count - 3).fill(4009));
    expect(await control.a.lookup('swarm')).toMatchObject({ online: true, sessions: 3 });
  });

  it("a revoked user's token: sessions closed with 4005 when the list changes, replays refused, others untouched", async () => {
    const token = await keys.mint('mallory');
    const session = await SupernodeSession.connect({ url: running.url, token });
    open.push(session);
    const closed = new Promise<number>((resolve) => session.once('close', resolve));
    // A user entry revokes tokens issued in an earlier second than `at` (docs/auth.md#revocation).
    await sleep(1100);
    await writeRevocations([{ kind: 'user', id: 'mallory', at: Date.now() }]);
    expect(await running.node.revocations?.refresh()).toBe(true);
    expect(await closed).toBe(4005);
    const replays = await Promise.all(Array.from({ length: 5 * scale }, () => connect(token)));
    for (const replay of replays) expect(replay).toMatchObject({ code: 'token_revoked', closeCode: 4005 });
    expect(running.node.metrics.stats.refusals.get('token_revoked')).toBeGreaterThanOrEqual(replays.length);
    await control.check();
    // A token issued after the revocation (a new login) is accepted.
    await sleep(1000);
    const fresh = await SupernodeSession.connect({ url: running.url, token: await keys.mint('mallory') });
    open.push(fresh);
    expect(fresh.user).toBe('mallory');
    await writeRevocations([]);
    await running.node.revocations?.refresh();
  });
});
