/**
 * `iceServers` kept with the tokens: the stores give them back (validated), files written before they
 * were kept still load, and the client exposes those of the tokens its session opened with, after a
 * fresh login and after a resume from the store alike.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IceServer, Tokens } from '../../supernode/client/auth-client';
import { parseStoredTokens, type WebStorage } from '../../supernode/client/credential-store';
import { FileCredentialStore, WebStorageCredentialStore } from '../../supernode/client/credentials';
import { FakeAuth, harness, issue } from './fakes';

const ICE_SERVERS: IceServer[] = [
  {
    urls: ['turn:127.0.0.1:3478?transport=udp', 'turn:127.0.0.1:3478?transport=tcp'],
    username: '1767225600:alice',
    credential: 'bm90LWEtcmVhbC1obWFjLWJ1dC1iYXNlNjQ=',
  },
];
const withIce = (tokens: Tokens): Tokens => ({ ...tokens, iceServers: ICE_SERVERS });

class MapStorage implements WebStorage {
  readonly items = new Map<string, string>();
  getItem(key: string): string | null {
    return this.items.get(key) ?? null;
  }
  setItem(key: string, value: string): void {
    this.items.set(key, value);
  }
  removeItem(key: string): void {
    this.items.delete(key);
  }
}

describe('parseStoredTokens', () => {
  const base = { accessToken: 'a.b.c', refreshToken: 'r'.repeat(43), expiresAt: 1234 };

  test('gives back the iceServers stored with the tokens', () => {
    expect(parseStoredTokens(JSON.stringify({ ...base, iceServers: ICE_SERVERS }))).toEqual({
      ...base,
      iceServers: ICE_SERVERS,
    });
  });

  test('a value saved before iceServers were kept loads as tokens without them', () => {
    const tokens = parseStoredTokens(JSON.stringify(base));
    expect(tokens).toEqual(base);
    expect(tokens && 'iceServers' in tokens).toBe(false);
  });

  test.each([
    ['not an array', { urls: ['turn:x'] }],
    ['an entry without urls', [{ username: 'u', credential: 'c' }]],
    ['urls that are not strings', [{ urls: [1] }]],
    ['a null entry', [null]],
  ])('iceServers of the wrong shape (%s) are dropped, the tokens still load', (_what, iceServers) => {
    expect(parseStoredTokens(JSON.stringify({ ...base, iceServers }))).toEqual(base);
  });

  test('only the fields of an ICE server are kept', () => {
    const stored = [
      { urls: ['turn:x'], username: 'u', credential: 'c', extra: 'dropped', credentialType: 1 },
    ];
    expect(parseStoredTokens(JSON.stringify({ ...base, iceServers: stored }))?.iceServers).toEqual([
      { urls: ['turn:x'], username: 'u', credential: 'c' },
    ]);
  });
});

describe('the stores keep iceServers across a restart', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'ice-store-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('file store: a new store on the same folder loads them; an old file without them still loads', async () => {
    const tokens = withIce(issue());
    await new FileCredentialStore(dir).save('alice', tokens);
    await expect(new FileCredentialStore(dir).load('alice')).resolves.toEqual(tokens);

    const old = { accessToken: 'old.access.token', refreshToken: 'old-refresh', expiresAt: 99 };
    await writeFile(join(dir, 'bob.json'), JSON.stringify(old));
    await expect(new FileCredentialStore(dir).load('bob')).resolves.toEqual(old);
  });

  test('Web Storage store: a new store on the same storage (a page reload) loads them', async () => {
    const storage = new MapStorage();
    const tokens = withIce(issue());
    await new WebStorageCredentialStore(storage).save('alice', tokens);
    await expect(new WebStorageCredentialStore(storage).load('alice')).resolves.toEqual(tokens);
  });
});

describe('SupernodeClient.iceServers', () => {
  test('after a password login: those of the login answer, read back from the store', async () => {
    const storage = new MapStorage();
    const { client, auth } = harness({ credentials: new WebStorageCredentialStore(storage) });
    jest.spyOn(auth, 'login').mockImplementation(async () => withIce(issue()));
    expect(client.iceServers).toBeUndefined();
    client.start();
    await client.whenConnected();
    expect(client.iceServers).toEqual(ICE_SERVERS);
    await client.stop();
  });

  test('after a resume from stored tokens (a reload): the stored ones, with no call to the auth service', async () => {
    const storage = new MapStorage();
    await new WebStorageCredentialStore(storage).save('alice', withIce(issue()));
    const auth = new FakeAuth();
    const { client } = harness({ credentials: new WebStorageCredentialStore(storage), auth });
    const connected = new Promise<boolean>((resolve) => client.once('connected', (e) => resolve(e.resumed)));
    client.start();
    await expect(connected).resolves.toBe(true);
    expect(client.iceServers).toEqual(ICE_SERVERS);
    expect(auth.loginCalls.length + auth.refreshCalls.length).toBe(0);
    await client.stop();
  });

  test('after a refresh: the refresh answer’s, replacing the stored ones', async () => {
    const storage = new MapStorage();
    await new WebStorageCredentialStore(storage).save('alice', withIce(issue(-1000)));
    const renewed: IceServer[] = [
      { urls: ['turn:127.0.0.1:3479?transport=udp'], username: 'u2', credential: 'c2' },
    ];
    const { client, auth } = harness({ credentials: new WebStorageCredentialStore(storage) });
    jest.spyOn(auth, 'refresh').mockImplementation(async () => ({ ...issue(), iceServers: renewed }));
    client.start();
    await client.whenConnected();
    expect(auth.refresh).toHaveBeenCalledTimes(1);
    expect(client.iceServers).toEqual(renewed);
    await client.stop();
  });

  test('when the auth service hands out no TURN: undefined', async () => {
    const { client } = harness();
    client.start();
    await client.whenConnected();
    expect(client.iceServers).toBeUndefined();
    await client.stop();
  });
});
