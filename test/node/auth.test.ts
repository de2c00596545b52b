import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SignJWT } from 'jose';
import { generateSigningKey, publicJwks, signAccessToken } from '../../supernode/auth/signing';
import { SessionError, SupernodeSession } from '../../supernode/client/session';
import { makeTestKeys, type RunningNode, rawConnect, startTestNode, type TestKeys } from '../helpers/node';

let keys: TestKeys;
let running: RunningNode;

beforeAll(async () => {
  keys = await makeTestKeys();
  running = await startTestNode(keys, { authTimeoutMs: 1000 });
});
afterAll(async () => {
  await running.node.close();
  await keys.cleanup();
});

/** Sends a hello with `token` and returns the typed error and the close code the node answered with. */
async function refusalFor(token: string): Promise<{ code: unknown; closeCode: number }> {
  const connection = await rawConnect(running);
  connection.socket.send(JSON.stringify({ type: 'hello', token }));
  const message = await connection.next();
  const { code } = await connection.closed;
  expect(message.type).toBe('error');
  return { code: message.code, closeCode: code };
}

function base64url(value: object): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

describe('session authentication', () => {
  it('welcomes a valid token and takes the user id from its subject', async () => {
    const session = await SupernodeSession.connect({ url: running.url, token: await keys.mint('alice') });
    expect(session.welcome).toMatchObject({ type: 'welcome', user: 'alice', node: 'test-node' });
    expect(session.welcome.limits.maxFrameBytes).toBe(65_536);
    await session.close();
  });

  it('refuses an expired token as token_expired (4003)', async () => {
    expect(await refusalFor(await keys.mint('alice', { ttlSec: -120 }))).toEqual({
      code: 'token_expired',
      closeCode: 4003,
    });
  });

  it('refuses a tampered token as token_invalid (4002)', async () => {
    const [header, , signature] = (await keys.mint('alice')).split('.');
    const forgedPayload = base64url({
      sub: 'mallory',
      aud: 'supernode',
      exp: Math.floor(Date.now() / 1000) + 600,
    });
    expect(await refusalFor(`${header}.${forgedPayload}.${signature}`)).toEqual({
      code: 'token_invalid',
      closeCode: 4002,
    });
  });

  it('refuses a token for another audience', async () => {
    expect(await refusalFor(await keys.mint('alice', { aud: 'other-service' }))).toEqual({
      code: 'token_invalid',
      closeCode: 4002,
    });
  });

  it('refuses a token signed by a key that is not in the set (unknown kid)', async () => {
    const stranger = await generateSigningKey('k-stranger');
    expect(await refusalFor(await keys.mint('alice', { key: stranger }))).toEqual({
      code: 'token_invalid',
      closeCode: 4002,
    });
  });

  it('refuses a token that reuses a trusted kid but another private key', async () => {
    const impostor = await generateSigningKey(keys.key.kid);
    expect(await refusalFor(await keys.mint('alice', { key: impostor }))).toEqual({
      code: 'token_invalid',
      closeCode: 4002,
    });
  });

  it('refuses alg "none" and HMAC tokens keyed with the public key', async () => {
    const claims = { sub: 'alice', aud: 'supernode', exp: Math.floor(Date.now() / 1000) + 600 };
    const none = `${base64url({ alg: 'none', typ: 'JWT' })}.${base64url(claims)}.`;
    expect(await refusalFor(none)).toEqual({ code: 'token_invalid', closeCode: 4002 });
    const hmac = await new SignJWT(claims)
      .setProtectedHeader({ alg: 'HS256', kid: keys.key.kid })
      .sign(Buffer.from(keys.key.publicJwk.x as string));
    expect(await refusalFor(hmac)).toEqual({ code: 'token_invalid', closeCode: 4002 });
  });

  it('refuses garbage and a subject that is not a usable user id', async () => {
    expect(await refusalFor('not.a.token')).toEqual({ code: 'token_invalid', closeCode: 4002 });
    const badSubject = await signAccessToken(keys.key, { sub: 'has space', aud: 'supernode', ttlSec: 600 });
    expect(await refusalFor(badSubject)).toEqual({ code: 'token_invalid', closeCode: 4002 });
  });

  it('requires a hello first, as text, in time', async () => {
    const binaryFirst = await rawConnect(running);
    binaryFirst.socket.send(Buffer.from([1, 0, 0, 0, 0, 1, 1, 65, 66]));
    expect(await binaryFirst.next()).toMatchObject({ type: 'error', code: 'auth_required' });
    expect((await binaryFirst.closed).code).toBe(4001);

    const lookupFirst = await rawConnect(running);
    lookupFirst.socket.send(JSON.stringify({ type: 'lookup', id: 1, user: 'bob' }));
    expect(await lookupFirst.next()).toMatchObject({ type: 'error', code: 'auth_required' });
    expect((await lookupFirst.closed).code).toBe(4001);

    const silent = await rawConnect(running);
    expect(await silent.next()).toMatchObject({ type: 'error', code: 'auth_timeout' });
    expect((await silent.closed).code).toBe(4001);

    const garbage = await rawConnect(running);
    garbage.socket.send('{"type":"hello", "token": ');
    expect(await garbage.next()).toMatchObject({ type: 'error', code: 'bad_message' });
    expect((await garbage.closed).code).toBe(4000);
  });

  it('answers messages pipelined right behind the hello, in order', async () => {
    const connection = await rawConnect(running);
    connection.socket.send(JSON.stringify({ type: 'hello', token: await keys.mint('pipeliner') }));
    connection.socket.send(JSON.stringify({ type: 'ping', id: 7 }));
    connection.socket.send(JSON.stringify({ type: 'lookup', id: 8, user: 'pipeliner' }));
    expect(await connection.next()).toMatchObject({ type: 'welcome', user: 'pipeliner' });
    expect(await connection.next()).toEqual({ type: 'pong', id: 7 });
    expect(await connection.next()).toMatchObject({ type: 'lookup_result', id: 8, online: true });
    connection.socket.close();
  });

  it('the SDK surfaces a refusal as a typed SessionError', async () => {
    const error = await SupernodeSession.connect({
      url: running.url,
      token: await keys.mint('alice', { ttlSec: -120 }),
    }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect(error).toMatchObject({ code: 'token_expired', closeCode: 4003 });
  });
});

describe('keys from a JWKS URL', () => {
  let jwksServer: Server;
  let jwksRequests = 0;
  let serving = true;
  let testKeys: TestKeys;
  let urlNode: RunningNode;

  beforeAll(async () => {
    testKeys = await makeTestKeys();
    jwksServer = createServer((_req, res) => {
      jwksRequests++;
      if (!serving) {
        res.writeHead(503).end();
        return;
      }
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify(publicJwks([testKeys.key])));
    });
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    const { port } = jwksServer.address() as AddressInfo;
    urlNode = await startTestNode(testKeys, {
      jwksFile: undefined,
      jwksUrl: `http://127.0.0.1:${port}/jwks.json`,
    });
  });
  afterAll(async () => {
    await urlNode.node.close();
    await new Promise((resolve) => jwksServer.close(resolve));
    await testKeys.cleanup();
  });

  it('verifies sessions without calling the key server, and keeps the last good set when it fails', async () => {
    expect(urlNode.node.readyState().ready).toBe(true);
    const before = jwksRequests;
    const sessions = await Promise.all(
      ['u1', 'u2', 'u3', 'u4', 'u5'].map(async (user) =>
        SupernodeSession.connect({ url: urlNode.url, token: await testKeys.mint(user) }),
      ),
    );
    expect(jwksRequests).toBe(before);
    serving = false;
    expect(await urlNode.node.keys.refresh()).toBe(false);
    expect(jwksRequests).toBe(before + 1);
    const late = await SupernodeSession.connect({ url: urlNode.url, token: await testKeys.mint('u6') });
    expect(late.user).toBe('u6');
    await Promise.all([...sessions, late].map((s) => s.close()));
  });
});
