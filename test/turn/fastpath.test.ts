import dgram from 'node:dgram';
import { requireFastPath } from './engines';

/**
 * The native relay engine's addon on its own: the routes it relays in C, and what it hands to
 * JavaScript instead (no route, an expired one, a closed relay). Real UDP sockets on 127.0.0.1.
 */

const fast = requireFastPath();
const opened: number[] = [];
const sockets: dgram.Socket[] = [];
type Seen = { msg: Buffer; address: string; port: number };

afterEach(() => {
  for (const id of opened.splice(0)) fast.close(id);
  for (const socket of sockets.splice(0)) socket.close();
});

function open(listener: boolean, seen: Seen[]): [number, number] {
  const [id, port] = fast.open(
    4,
    '127.0.0.1',
    0,
    0,
    (msg, address, port) => seen.push({ msg, address, port }),
    listener,
  );
  opened.push(id);
  return [id, port];
}

async function udp(): Promise<{ socket: dgram.Socket; port: number; got: Buffer[] }> {
  const socket = dgram.createSocket('udp4');
  sockets.push(socket);
  const got: Buffer[] = [];
  socket.on('message', (msg) => got.push(msg));
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', () => resolve()));
  return { socket, port: socket.address().port, got };
}

function channelData(channel: number, data: Buffer): Buffer {
  const header = Buffer.alloc(4);
  header.writeUInt16BE(channel, 0);
  header.writeUInt16BE(data.length, 2);
  return Buffer.concat([header, data]);
}

const until = async (check: () => boolean, what: string) => {
  for (let i = 0; i < 200 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  if (!check()) throw new Error(`timed out waiting for ${what}`);
};

async function routed(validForMs = 60_000, bucketBytes = 0) {
  const listenerSeen: Seen[] = [];
  const relaySeen: Seen[] = [];
  const [listener, listenerPort] = open(true, listenerSeen);
  const [relay, relayPort] = open(false, relaySeen);
  const client = await udp();
  const peer = await udp();
  const bucket = bucketBytes > 0 ? fast.bucket(bucketBytes, bucketBytes) : -1;
  fast.route(
    listener,
    '127.0.0.1',
    client.port,
    0x4001,
    relay,
    '127.0.0.1',
    peer.port,
    fast.now() + validForMs,
    bucket,
    -1,
  );
  return { listener, listenerPort, listenerSeen, relay, relayPort, relaySeen, client, peer, bucket };
}

it('relays ChannelData to the peer and the peer back as ChannelData, counted, without JavaScript', async () => {
  const t = await routed();
  t.client.socket.send(channelData(0x4001, Buffer.from('to the peer')), t.listenerPort, '127.0.0.1');
  await until(() => t.peer.got.length === 1, 'the peer');
  expect(t.peer.got[0].toString()).toBe('to the peer');
  t.peer.socket.send(Buffer.from('to the client'), t.relayPort, '127.0.0.1');
  await until(() => t.client.got.length === 1, 'the client');
  expect(t.client.got[0]).toEqual(channelData(0x4001, Buffer.from('to the client')));
  expect(t.listenerSeen).toHaveLength(0);
  expect(t.relaySeen).toHaveLength(0);
  expect(fast.counters(t.listener)).toEqual([1, 11, 1, 13, 0, 0]);
  expect(fast.counters(t.listener)).toEqual([0, 0, 0, 0, 0, 0]);
});

it('hands JavaScript what has no route: STUN, an unbound channel, a short frame, a stranger on the relay', async () => {
  const t = await routed();
  const stun = Buffer.alloc(20);
  stun.writeUInt16BE(0x0001, 0);
  t.client.socket.send(stun, t.listenerPort, '127.0.0.1');
  t.client.socket.send(channelData(0x4002, Buffer.from('x')), t.listenerPort, '127.0.0.1');
  t.client.socket.send(channelData(0x4001, Buffer.from('xyz')).subarray(0, 5), t.listenerPort, '127.0.0.1');
  const stranger = await udp();
  stranger.socket.send(Buffer.from('hello'), t.relayPort, '127.0.0.1');
  await until(() => t.listenerSeen.length === 3 && t.relaySeen.length === 1, 'JavaScript');
  expect(t.listenerSeen.map((s) => s.msg.length)).toEqual([20, 5, 5]);
  expect(t.listenerSeen[0]).toMatchObject({ address: '127.0.0.1', port: t.client.port });
  expect(t.relaySeen[0]).toMatchObject({ address: '127.0.0.1', port: stranger.port });
  expect(t.peer.got).toHaveLength(0);
});

it('stops relaying when the route expires or its relay closes, and spends the budget', async () => {
  const expired = await routed(-1);
  expired.client.socket.send(channelData(0x4001, Buffer.from('late')), expired.listenerPort, '127.0.0.1');
  await until(() => expired.listenerSeen.length === 1, 'the expired route in JavaScript');
  expect(expired.peer.got).toHaveLength(0);

  const closed = await routed();
  fast.close(closed.relay);
  closed.client.socket.send(channelData(0x4001, Buffer.from('gone')), closed.listenerPort, '127.0.0.1');
  await until(() => closed.listenerSeen.length === 1, 'the closed relay in JavaScript');

  const limited = await routed(60_000, 10);
  for (let i = 0; i < 3; i++) {
    limited.client.socket.send(channelData(0x4001, Buffer.alloc(4)), limited.listenerPort, '127.0.0.1');
  }
  let refused = 0; // counters() reads and resets
  await until(() => {
    refused += fast.counters(limited.listener)[4];
    return refused + limited.peer.got.length >= 3;
  }, 'the budget');
  expect(refused).toBe(1);
  expect(limited.peer.got).toHaveLength(2); // 10 bytes per second: two of 4, not the third
  expect(fast.spend(limited.bucket, -1, 4)).toBe(false);
  fast.freeBucket(limited.bucket);
});

it('refuses bad arguments with errors, not crashes', () => {
  const [listener] = open(true, []);
  expect(() => fast.route(listener, 'not an ip', 1, 0x4000, listener, '127.0.0.1', 1, 0, -1, -1)).toThrow(
    /invalid route/,
  );
  expect(() => fast.open(4, '999.1.1.1', 0, 0, () => undefined, false)).toThrow(/invalid bind address/);
  expect(fast.send(12345, Buffer.from('x'), 1, '127.0.0.1')).toBe(false);
  const [, port] = open(false, []);
  expect(() => fast.open(4, '127.0.0.1', port, 0, () => undefined, false)).toThrow(
    expect.objectContaining({ code: 'EADDRINUSE' }),
  );
});
