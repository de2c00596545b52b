import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import {
  encodeBindingSuccess,
  encodeStunMessage,
  encodeXorAddress,
  StunAttribute,
  StunClass,
  stunMessageType,
} from '../../supernode/stun/codec';
import { encodeChannelData, TurnAttribute, TurnMethod } from '../../supernode/turn/codec';
import {
  collect,
  eventually,
  type Harness,
  Peer,
  recordWrites,
  sleep,
  startTurn,
  TLS_CERT,
  TLS_KEY,
} from './helpers';

/**
 * What an attacker can send never crashes the server, never gets an answer it should not, and never
 * grows state beyond the configured limits. Every case ends by checking the server still serves.
 */

let turn: Harness;
afterEach(async () => {
  await turn?.close();
});

/** The server still allocates for an honest client, and nothing was an internal error. */
async function expectStillServing(): Promise<void> {
  const client = await turn.client({ user: `honest-${randomBytes(4).toString('hex')}` });
  await client.allocate();
  expect(turn.server.stats.dropped.internal_error).toBe(0);
}

function rawTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

const closed = (socket: net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) resolve();
    socket.once('close', () => resolve());
  });

describe('malformed datagrams', () => {
  it('drops garbage of every kind without answering, and keeps serving', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const got = collect(client);
    const overrun = encodeStunMessage(0x0003, randomBytes(12), [{ type: 0x8055, value: Buffer.alloc(4) }], {
      fingerprint: false,
    });
    overrun.writeUInt16BE(9, 22); // the attribute claims more than the message holds
    const badFingerprint = encodeStunMessage(0x0003, randomBytes(12), []);
    badFingerprint[badFingerprint.length - 1] ^= 1;
    const wrongCookie = encodeStunMessage(0x0003, randomBytes(12), []);
    wrongCookie.writeUInt32BE(0xdeadbeef, 4);
    const garbage: Array<[Buffer, string]> = [
      [Buffer.alloc(0), 'too_short'],
      [randomBytes(19).fill(0, 0, 1), 'too_short'],
      [Buffer.from([0x80, 1, 2, 3]), 'unknown_framing'],
      [Buffer.from([0xff]), 'unknown_framing'],
      [wrongCookie, 'bad_cookie'],
      [overrun, 'bad_attribute'],
      [badFingerprint, 'bad_fingerprint'],
      [Buffer.alloc(5000), 'too_large'],
      [encodeBindingSuccess(randomBytes(12), '127.0.0.1', 1, 'IPv4'), 'unexpected_message'],
      [encodeChannelData(0x4000, Buffer.alloc(8)), 'no_allocation'],
    ];
    for (const [datagram] of garbage) client.sendRaw(datagram);
    await eventually(
      () => Object.values(turn.server.stats.dropped).reduce((a, b) => a + b, 0) >= garbage.length,
    );
    for (const [, reason] of garbage)
      expect(turn.server.stats.dropped[reason as 'too_large']).toBeGreaterThan(0);
    await sleep(50);
    expect(got.other).toHaveLength(0);
    await expectStillServing();
  });

  it('answers a flood of wrongly signed Allocates with 401 and keeps no state for them', async () => {
    turn = await startTurn();
    const attacker = await turn.client({ secret: 'guessed' });
    for (let i = 0; i < 50; i++) await attacker.allocate().catch(() => undefined);
    expect(turn.server.stats.allocationsActive).toBe(0);
    expect(turn.server.stats.refusals[401]).toBeGreaterThanOrEqual(100);
    expect((turn.server as unknown as { users: Map<string, unknown> }).users.size).toBe(0);
    await expectStillServing();
  });

  it('refuses an expired nonce and a nonce replayed from another address with 438', async () => {
    turn = await startTurn({ nonceLifetimeSec: 10 });
    const client = await turn.client();
    await client.allocate();
    // Replay the signed request bytes from another source address, then after the nonce expired.
    const sent = recordWrites(client);
    await client.createPermission('198.51.100.1');
    const replayer = await turn.client({ localAddress: '127.0.0.2' });
    const got = collect(replayer);
    replayer.sendRaw(sent[0]);
    await eventually(() => turn.server.stats.refusals[438] === 1);
    turn.clock.now += 10_000;
    client.sendRaw(sent[0]);
    await eventually(() => turn.server.stats.refusals[438] === 2);
    expect(got.other).toHaveLength(1);
    await expectStillServing();
  });

  it('drops oversized relayed datagrams from peers', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'], maxMessageBytes: 1024 });
    const peer = await Peer.open();
    const client = await turn.client();
    const got = collect(client);
    const { relayed } = await client.allocate();
    await client.createPermission('127.0.0.1');
    peer.send(Buffer.alloc(1000), relayed.port);
    peer.send(Buffer.alloc(900), relayed.port);
    await got.waitFor(1);
    await eventually(() => turn.server.stats.dropped.too_large === 1);
    expect(got.data.map((d) => d.data.length)).toEqual([900]);
    await peer.close();
  });
});

describe('relays into the server’s own network', () => {
  it('refuses 169.254.169.254 by CreatePermission, ChannelBind and Send indication', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    const metadata = { address: '169.254.169.254', port: 80 };
    await expect(client.createPermission(metadata.address)).rejects.toMatchObject({ code: 403 });
    await expect(client.channelBind(0x4000, metadata)).rejects.toMatchObject({ code: 403 });
    client.send(metadata, Buffer.from('GET /latest/meta-data/ HTTP/1.0\r\n\r\n'));
    await eventually(() => turn.server.stats.dropped.no_permission === 1);
    expect(turn.server.stats.packetsToPeer).toBe(0);
    expect(turn.server.stats.refusals[403]).toBe(2);
  });

  it('cannot reach a private peer through a permission for a public one', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await client.createPermission('198.51.100.1');
    client.send({ address: '10.0.0.1', port: 22 }, Buffer.from('x'));
    await eventually(() => turn.server.stats.dropped.no_permission === 1);
  });
});

describe('floods bounded by the limits', () => {
  it('one user with many sockets gets maxAllocationsPerUser, everyone together maxAllocations', async () => {
    turn = await startTurn({ maxAllocationsPerUser: 4, maxAllocations: 10 });
    const results = await Promise.all(
      Array.from({ length: 20 }, async () =>
        (await turn.client()).allocate().catch((err) => err.code as number),
      ),
    );
    expect(results.filter((r) => typeof r === 'object')).toHaveLength(4);
    expect(results.filter((r) => r === 486)).toHaveLength(16);
    const others = await Promise.all(
      Array.from({ length: 10 }, async (_, i) =>
        (await turn.client({ user: `u${i}` })).allocate().catch((err) => err.code as number),
      ),
    );
    expect(others.filter((r) => typeof r === 'object')).toHaveLength(6);
    expect(others.filter((r) => r === 508)).toHaveLength(4);
    expect(turn.server.stats.allocationsActive).toBe(10);
  });

  it('drops a flood of ChannelData on unbound channels, counting each', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    // In bursts the socket buffer holds, so the kernel loses none of them.
    for (let burst = 0; burst < 20; burst++) {
      for (let i = 0; i < 100; i++) client.sendChannel(0x4000 + burst * 100 + i, Buffer.alloc(16));
      await sleep(5);
    }
    await eventually(() => turn.server.stats.dropped.unbound_channel === 2000, 5000);
    expect(turn.server.stats.channelsActive).toBe(0);
    await expectStillServing();
  });

  it('caps channels per allocation (508) however many numbers a client tries', async () => {
    turn = await startTurn({ maxChannelsPerAllocation: 3, maxPermissionsPerAllocation: 100 });
    const client = await turn.client();
    await client.allocate();
    const results = [];
    for (let i = 0; i < 6; i++) {
      results.push(
        await client
          .channelBind(0x4000 + i, { address: '198.51.100.1', port: 1000 + i })
          .then(() => 'ok')
          .catch((err) => err.code),
      );
    }
    expect(results).toEqual(['ok', 'ok', 'ok', 508, 508, 508]);
  });
});

describe('TCP and TLS streams', () => {
  it.each([
    ['garbage bytes', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a STUN header with a wrong cookie', Buffer.from('000100002112a443000000000000000000000000', 'hex')],
    ['a STUN length not a multiple of 4', Buffer.from('000100032112a442', 'hex')],
    ['a ChannelData header over the size limit', Buffer.from('4000ffff', 'hex')],
  ])('closes a connection that sends %s', async (_name, bytes) => {
    turn = await startTurn({ maxMessageBytes: 4096 });
    const socket = await rawTcp(turn.address.port);
    socket.on('error', () => undefined);
    socket.write(bytes);
    await closed(socket);
    expect(turn.server.stats.dropped.tcp_framing).toBe(1);
    expect(turn.server.stats.tcpConnections).toBe(0);
    await expectStillServing();
  });

  it('closes a connection whose well-framed STUN message is malformed', async () => {
    turn = await startTurn();
    const socket = await rawTcp(turn.address.port);
    socket.on('error', () => undefined);
    const message = encodeStunMessage(0x0003, randomBytes(12), []);
    message[message.length - 1] ^= 1; // bad FINGERPRINT
    socket.write(message);
    await closed(socket);
    expect(turn.server.stats.dropped.bad_fingerprint).toBe(1);
  });

  it('closes a connection that sends half a message and then nothing', async () => {
    turn = await startTurn({ tcpIdleTimeoutMs: 1000 });
    const socket = await rawTcp(turn.address.port);
    socket.on('error', () => undefined);
    socket.write(encodeStunMessage(0x0003, randomBytes(12), []).subarray(0, 12));
    await sleep(50);
    turn.clock.now += 1000;
    await closed(socket);
    expect(turn.server.stats.dropped.tcp_idle).toBe(1);
  });

  it('counts a failed TLS handshake and keeps serving TLS', async () => {
    turn = await startTurn({ tlsCert: TLS_CERT, tlsKey: TLS_KEY, tlsPort: 0 });
    const socket = await rawTcp(turn.address.tlsPort as number);
    socket.on('error', () => undefined);
    socket.write(randomBytes(64).fill(0x16, 0, 1));
    await closed(socket);
    await eventually(() => turn.server.stats.dropped.tls_error === 1);
    const client = await turn.client({ transport: 'tls' });
    await client.allocate();
    // A client that does not trust the certificate cannot connect at all.
    await expect(
      new Promise((resolve, reject) => {
        const s = tls.connect({ host: '127.0.0.1', port: turn.address.tlsPort as number }, () => resolve(s));
        s.once('error', reject);
      }),
    ).rejects.toThrow();
  });
});

describe('indications and odd requests', () => {
  it('drops Send indications that lack a peer or data, or carry an unknown required attribute', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'] });
    const peer = await Peer.open();
    const client = await turn.client();
    await client.allocate();
    await client.createPermission('127.0.0.1');
    const send = (attributes: Array<{ type: number; value: Buffer }>, id = randomBytes(12)) =>
      client.sendRaw(
        encodeStunMessage(stunMessageType(TurnMethod.Send, StunClass.Indication), id, attributes),
      );
    const id = randomBytes(12);
    const peerAttribute = {
      type: TurnAttribute.XorPeerAddress,
      value: encodeXorAddress('127.0.0.1', peer.port, id),
    };
    send([{ type: TurnAttribute.Data, value: Buffer.from('x') }]);
    send([peerAttribute], id);
    send(
      [
        peerAttribute,
        { type: TurnAttribute.Data, value: Buffer.from('x') },
        { type: 0x7001, value: Buffer.alloc(4) },
      ],
      id,
    );
    await eventually(() => turn.server.stats.dropped.bad_indication === 3);
    expect(peer.received).toHaveLength(0);
    await peer.close();
  });

  it('answers an unknown method with 400 and a request with an unknown attribute with 420', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.request(0x0ff, [])).rejects.toMatchObject({ code: 400 });
    await expect(
      client.request(TurnMethod.Refresh, [{ type: 0x7001, value: Buffer.alloc(4) }]),
    ).rejects.toMatchObject({ code: 420 });
    await expect(
      client.request(TurnMethod.Refresh, [{ type: StunAttribute.Software, value: Buffer.from('ok') }]),
    ).resolves.toBeDefined();
  });
});
