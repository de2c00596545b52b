/**
 * Hostile frames on the session channel: over the size limit (binary and text, before and after the
 * hello), huge and deeply nested JSON, endless fragments. Each is refused with the code of
 * docs/protocol.md, the node does not buffer what it refuses, and the control pair keeps working.
 */
import type { SupernodeSession } from '../../supernode/client/session';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  rawConnect,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';
import {
  type ControlPair,
  closeCodeIn,
  controlPair,
  rawTcp,
  scale,
  upgradeRequest,
  wsFrame,
} from './hostile';

let keys: TestKeys;
let running: RunningNode;
let control: ControlPair;
const open: SupernodeSession[] = [];

beforeAll(async () => {
  keys = await makeTestKeys();
  // The default limits: 64 KiB frames, 8 KiB control messages.
  running = await startTestNode(keys, {});
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

async function closeCodeOf(session: SupernodeSession, send: () => void): Promise<number> {
  const closed = new Promise<number>((resolve) => session.once('close', resolve));
  send();
  return closed;
}

describe('frames over the limit', () => {
  it('binary and text frames over maxFrameBytes close the session with 1009, before and after the hello', async () => {
    const big = Buffer.alloc(65_537, 1);
    for (const frame of [big, big.toString('latin1')]) {
      const anonymous = await rawConnect(running);
      anonymous.socket.send(frame);
      expect((await anonymous.closed).code).toBe(1009);
      const session = await connectAs(running, keys, 'mallory');
      open.push(session);
      expect(await closeCodeOf(session, () => session.sendRaw(frame))).toBe(1009);
    }
  });

  it('a frame header announcing gigabytes is refused on the header, before any payload is read', async () => {
    for (let i = 0; i < 3 * scale; i++) {
      const client = await rawTcp(running.port);
      client.socket.write(upgradeRequest('/v1/session'));
      // Claims 4 GiB, sends 1 KiB of it: the node must answer without waiting for (or storing) the rest.
      client.socket.write(wsFrame(0x2, Buffer.alloc(1024), { length: 4 * 1024 ** 3 }));
      await client.closed;
      expect(closeCodeIn(client.received())).toBe(1009);
    }
  });

  it('text between the control limit (8 KiB) and maxFrameBytes is bad_message (4000)', async () => {
    const text = JSON.stringify({ type: 'ping', id: 1, pad: 'x'.repeat(9000) });
    const anonymous = await rawConnect(running);
    anonymous.socket.send(text);
    expect(await anonymous.next()).toMatchObject({ type: 'error', code: 'bad_message' });
    expect((await anonymous.closed).code).toBe(4000);
    const session = await connectAs(running, keys, 'mallory');
    open.push(session);
    expect(await closeCodeOf(session, () => session.sendRaw(text))).toBe(4000);
  });

  it('endless fragments of one message are cut off (1009) once over the frame limit', async () => {
    const client = await rawTcp(running.port);
    client.socket.write(upgradeRequest('/v1/session'));
    const piece = Buffer.alloc(1000, 0x61);
    client.socket.write(wsFrame(0x1, piece, { fin: false }));
    for (let i = 0; i < 100 && !client.socket.destroyed; i++)
      client.socket.write(wsFrame(0x0, piece, { fin: false }));
    await client.closed;
    expect(closeCodeIn(client.received())).toBe(1009);
  });
});

describe('frames the WebSocket layer refuses', () => {
  it('a compressed frame (no extension was negotiated, so no zip bomb) is closed with 1002', async () => {
    const client = await rawTcp(running.port);
    client.socket.write(
      `${upgradeRequest('/v1/session').slice(0, -2)}Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n`,
    );
    const rsv1 = wsFrame(0x1, Buffer.from('{"type":"ping","id":1}'));
    rsv1[0] |= 0x40;
    client.socket.write(rsv1);
    await client.closed;
    expect(client.received().toString('latin1')).not.toMatch(/Sec-WebSocket-Extensions/i);
    expect(closeCodeIn(client.received())).toBe(1002);
  });

  it('a text frame that is not UTF-8 is closed with 1007', async () => {
    const client = await rawTcp(running.port);
    client.socket.write(upgradeRequest('/v1/session'));
    client.socket.write(wsFrame(0x1, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])));
    await client.closed;
    expect(closeCodeIn(client.received())).toBe(1007);
  });
});

describe('huge and deeply nested JSON on the control channel', () => {
  const depth = 4000; // 8,000 characters: under the 8 KiB control limit
  const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
  const nestedObject = `${'{"a":'.repeat(1200)}1${'}'.repeat(1200)}`;
  const nestedField = `${'['.repeat(3000)}${']'.repeat(3000)}`;

  it('before the hello: refused with bad_message (4000)', async () => {
    for (const text of [
      nested,
      nestedObject,
      `{"type":"hello","token":${nestedObject}}`,
      `{"type":"hello","token":"x","endpoints":${nested}}`,
    ]) {
      const anonymous = await rawConnect(running);
      anonymous.socket.send(text);
      expect(await anonymous.next()).toMatchObject({ type: 'error', code: 'bad_message' });
      expect((await anonymous.closed).code).toBe(4000);
    }
  });

  it('after the hello: a nested field is a field error (session stays); a nested document ends it (4000)', async () => {
    const session = await connectAs(running, keys, 'mallory');
    open.push(session);
    const errors: Array<{ code: string; id?: number }> = [];
    session.on('server-error', (e) => errors.push(e));
    const fieldErrors = 20 * scale;
    for (let i = 0; i < fieldErrors; i++)
      session.sendRaw(`{"type":"lookup","id":${i},"user":${i % 2 ? nestedField : nestedObject}}`);
    await waitFor(() => errors.length === fieldErrors, 5000, 'field errors');
    expect(new Set(errors.map((e) => e.code))).toEqual(new Set(['bad_message']));
    expect(await session.ping()).toBeGreaterThanOrEqual(0);
    await control.check();
    expect(await closeCodeOf(session, () => session.sendRaw(nested))).toBe(4000);
  });

  it('prototype keys are plain unknown fields or types, never merged into anything', async () => {
    const session = await connectAs(running, keys, 'mallory');
    open.push(session);
    const errors: Array<{ code: string; id?: number }> = [];
    session.on('server-error', (e) => errors.push(e));
    session.sendRaw('{"type":"lookup","id":1,"user":"bob","__proto__":{"admin":true}}');
    session.sendRaw('{"type":"__proto__","id":2}');
    session.sendRaw('{"type":"constructor","id":3}');
    session.sendRaw('{"type":"ping","id":4,"constructor":{"prototype":{"polluted":true}}}');
    await waitFor(() => errors.length === 4, 3000, 'four errors');
    expect(errors.map((e) => [e.code, e.id])).toEqual([
      ['bad_message', 1],
      ['unsupported', 2],
      ['unsupported', 3],
      ['bad_message', 4],
    ]);
    expect(({} as Record<string, unknown>).admin).toBeUndefined();
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(await session.ping()).toBeGreaterThanOrEqual(0);
  });
});
