import { randomBytes } from 'node:crypto';
import { type DeliveredMessage, SessionError, type SupernodeSession } from '../../supernode/client/session';
import { encodeRelayFrame, FRAME_DELIVER, FRAME_SEND } from '../../supernode/protocol/frames';
import {
  connectAs,
  makeTestKeys,
  type RunningNode,
  startTestNode,
  type TestKeys,
  waitFor,
} from '../helpers/node';

let keys: TestKeys;
let running: RunningNode;
const open: SupernodeSession[] = [];

async function session(
  user: string,
  endpoints?: { address: string; port: number }[],
): Promise<SupernodeSession> {
  const s = await connectAs(running, keys, user, { endpoints });
  open.push(s);
  return s;
}

function nextMessage(s: SupernodeSession): Promise<DeliveredMessage> {
  return new Promise((resolve) => s.once('message', resolve));
}

beforeAll(async () => {
  keys = await makeTestKeys();
  running = await startTestNode(keys, { maxSessionsPerUser: 2, publicUrl: 'ws://node-a.example:7001' });
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((s) => s.close()));
});
afterAll(async () => {
  await running.node.close();
  await keys.cleanup();
});

describe('presence', () => {
  it('a lookup finds an online user with home node and endpoints, and an unknown user offline', async () => {
    await session('alice', [{ address: '198.51.100.7', port: 40000 }]);
    const bob = await session('bob');
    expect(await bob.lookup('alice')).toEqual({
      type: 'lookup_result',
      id: expect.any(Number),
      user: 'alice',
      online: true,
      node: 'ws://node-a.example:7001',
      sessions: 1,
      endpoints: [{ address: '198.51.100.7', port: 40000 }],
    });
    expect(await bob.lookup('nobody')).toMatchObject({
      online: false,
      node: null,
      sessions: 0,
      endpoints: [],
    });
  });

  it('endpoints can be updated after registration; invalid endpoints are refused with a typed error', async () => {
    const alice = await session('alice');
    alice.setEndpoints([{ address: '2001:db8::1', port: 5000 }]);
    const bob = await session('bob');
    // The update is fire-and-forget; a ping behind it on the same socket proves it was processed.
    await alice.ping();
    expect((await bob.lookup('alice')).endpoints).toEqual([{ address: '2001:db8::1', port: 5000 }]);
    const errors: unknown[] = [];
    alice.on('server-error', (e) => errors.push(e));
    alice.sendRaw(JSON.stringify({ type: 'endpoints', endpoints: [{ address: 'not-an-ip', port: 1 }] }));
    await waitFor(() => errors.length === 1);
    expect(errors[0]).toMatchObject({ type: 'error', code: 'bad_message' });
    expect(alice.isOpen).toBe(true);
  });

  it('a second session of the same user joins the first; one beyond the limit replaces the oldest', async () => {
    const first = await session('carol');
    const second = await session('carol');
    const bob = await session('bob');
    expect(await bob.lookup('carol')).toMatchObject({ online: true, sessions: 2 });
    const firstClosed = new Promise<number>((resolve) => first.once('close', resolve));
    const third = await session('carol');
    expect(await firstClosed).toBe(4009);
    expect(second.isOpen && third.isOpen).toBe(true);
    expect(await bob.lookup('carol')).toMatchObject({ online: true, sessions: 2 });
  });

  it('a user goes offline when their last session closes', async () => {
    const dave = await session('dave');
    const bob = await session('bob');
    await dave.close();
    await waitFor(() => running.node.sessionCount() === 1);
    expect(await bob.lookup('dave')).toMatchObject({ online: false });
  });
});

describe('relay', () => {
  it('delivers the payload bytes unchanged as a binary frame that names the sender', async () => {
    const alice = await session('alice');
    const bob = await session('bob');
    const payload = randomBytes(4096); // arbitrary bytes, not valid UTF-8 or JSON
    const received = nextMessage(bob);
    const ack = await alice.sendWithAck('bob', payload);
    expect(ack).toEqual({ type: 'ack', msgId: expect.any(Number), delivered: 1 });
    const message = await received;
    expect(message.from).toBe('alice');
    expect(message.msgId).toBe(ack.msgId);
    expect(Buffer.compare(message.payload, payload)).toBe(0);
  });

  it('delivers to every session of the recipient', async () => {
    const alice = await session('alice');
    const phone = await session('erin');
    const laptop = await session('erin');
    const both = Promise.all([nextMessage(phone), nextMessage(laptop)]);
    expect((await alice.sendWithAck('erin', Buffer.from('hi'))).delivered).toBe(2);
    expect((await both).map((m) => m.payload.toString())).toEqual(['hi', 'hi']);
  });

  it('keeps order per sender and recipient', async () => {
    const alice = await session('alice');
    const bob = await session('bob');
    const seen: number[] = [];
    bob.on('message', (m: DeliveredMessage) => seen.push(m.payload.readUInt32BE(0)));
    for (let i = 0; i < 500; i++) {
      const payload = Buffer.alloc(4);
      payload.writeUInt32BE(i);
      alice.send('bob', payload);
    }
    await waitFor(() => seen.length === 500);
    expect(seen).toEqual(Array.from({ length: 500 }, (_, i) => i));
  });

  it('an unknown recipient gets a typed error that names the frame', async () => {
    const alice = await session('alice');
    const error = await alice.sendWithAck('nobody', Buffer.from('x')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SessionError);
    expect(error).toMatchObject({ code: 'unknown_recipient' });
  });

  it('malformed relay frames get bad_message and the session stays usable', async () => {
    const alice = await session('alice');
    const bob = await session('bob');
    const errors: Array<{ code: string; msgId?: number }> = [];
    alice.on('server-error', (e) => errors.push(e));
    alice.sendRaw(Buffer.from([FRAME_SEND, 0, 0, 0, 0, 9])); // shorter than its header
    alice.sendRaw(encodeRelayFrame(FRAME_DELIVER, 0, 10, 'bob', Buffer.from('x'))); // kind not allowed from clients
    alice.sendRaw(encodeRelayFrame(FRAME_SEND, 0x80, 11, 'bob', Buffer.from('x'))); // unknown flag
    const badId = encodeRelayFrame(FRAME_SEND, 0, 12, 'bob', Buffer.from('x'));
    badId[6] = 200; // id length past the end of the frame
    alice.sendRaw(badId);
    await waitFor(() => errors.length === 4);
    expect(errors.map((e) => e.code)).toEqual(['bad_message', 'bad_message', 'bad_message', 'bad_message']);
    expect(errors.map((e) => e.msgId)).toEqual([undefined, 10, 11, 12]);
    expect((await alice.sendWithAck('bob', Buffer.from('still here'))).delivered).toBe(1);
    expect(bob.isOpen).toBe(true);
  });

  it('unknown control types are refused without ending the session; broken JSON ends it', async () => {
    const alice = await session('alice');
    const errors: Array<{ code: string; id?: number }> = [];
    alice.on('server-error', (e) => errors.push(e));
    alice.sendRaw(JSON.stringify({ type: 'teleport', id: 5 }));
    alice.sendRaw(JSON.stringify({ type: 'lookup', id: 6, user: 'x', extra: true }));
    await waitFor(() => errors.length === 2);
    expect(errors).toEqual([
      expect.objectContaining({ code: 'unsupported', id: 5 }),
      expect.objectContaining({ code: 'bad_message', id: 6 }),
    ]);
    expect(await alice.ping()).toBeGreaterThanOrEqual(0);
    const closed = new Promise<number>((resolve) => alice.once('close', resolve));
    alice.sendRaw('{"type":');
    expect(await closed).toBe(4000);
  });
});
