import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { stunBinding } from '../../supernode/stun/client';
import {
  attributeValue,
  decodeErrorCode,
  encodeStunMessage,
  findAttribute,
  parseStunMessage,
  StunAttribute,
  StunClass,
  type StunMessage,
  stunMessageType,
} from '../../supernode/stun/codec';
import { type TurnClient, TurnError } from '../../supernode/turn/client';
import { TURN_KNOWN_ATTRIBUTES, TurnAttribute, TurnMethod } from '../../supernode/turn/codec';
import { TurnServer } from '../../supernode/turn/server';
import {
  collect,
  eventually,
  type Harness,
  Peer,
  REALM,
  recordWrites,
  relayPortRange,
  relayThroughLoopback,
  SECRET,
  sleep,
  startTurn,
  TLS_CERT,
  TLS_KEY,
} from './helpers';

/** Decodes a frame a client got outside a transaction (answers to raw requests). */
function parse(frame: Buffer): StunMessage {
  const message = parseStunMessage(frame, TURN_KNOWN_ATTRIBUTES, 65_535);
  if (!message.ok) throw new Error(`not STUN: ${message.reason}`);
  return message;
}

function errorCodeOf(message: StunMessage): number | undefined {
  const view = findAttribute(message, StunAttribute.ErrorCode);
  return view ? decodeErrorCode(message, view)?.code : undefined;
}

const ALLOCATE_UDP = [{ type: TurnAttribute.RequestedTransport, value: Buffer.from([17, 0, 0, 0]) }];

/** Sends an Allocate built by hand (signed with `key` if given) and returns the server's answer. */
async function rawAnswer(
  client: TurnClient,
  attributes: Array<{ type: number; value: Buffer }>,
  key?: Buffer,
): Promise<StunMessage> {
  const got = collect(client);
  const type = stunMessageType(TurnMethod.Allocate, StunClass.Request);
  client.sendRaw(encodeStunMessage(type, randomBytes(12), attributes, { key }));
  await eventually(() => got.other.length === 1);
  return parse(got.other[0]);
}

let turn: Harness;
afterEach(async () => {
  await turn?.close();
});

describe('Allocate', () => {
  it('answers an unauthenticated Allocate with 401, REALM and NONCE, and keeps no state', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const reply = await rawAnswer(client, ALLOCATE_UDP);
    expect(reply.type).toBe(0x0113);
    expect(errorCodeOf(reply)).toBe(401);
    expect(attributeValue(reply, findAttribute(reply, StunAttribute.Realm) as never).toString()).toBe(REALM);
    expect(findAttribute(reply, StunAttribute.Nonce)?.length).toBe(32);
    expect(reply.fingerprint).toBe(true);
    expect(reply.integrityAt).toBe(-1);
    // docs/turn.md#hostile-input: 88 bytes plus the realm padded to 4.
    expect(reply.buf.length).toBe(88 + 12);
    expect(turn.server.stats.allocationsActive).toBe(0);
    expect(turn.server.stats.refusals[401]).toBe(1);
  });

  it('allocates: relayed port in range, mapped address, default lifetime, signed response', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const allocated = await client.allocate(); // the client verifies MESSAGE-INTEGRITY of the answer
    expect(allocated.relayed.address).toBe('127.0.0.1');
    expect(allocated.relayed.port).toBeGreaterThanOrEqual(turn.server.relayPorts.min);
    expect(allocated.relayed.port).toBeLessThanOrEqual(turn.server.relayPorts.max);
    expect(allocated.mapped).toEqual({ address: '127.0.0.1', port: client.local.port, family: 'IPv4' });
    expect(allocated.lifetimeSec).toBe(600);
    expect(turn.server.stats).toMatchObject({ allocationsActive: 1, allocationsCreated: 1 });
    expect(turn.outcomes).toEqual([
      ['refused', 401],
      ['allocated', undefined],
    ]);
  });

  it('advertises externalAddress, not the bind address, in XOR-RELAYED-ADDRESS', async () => {
    turn = await startTurn({ externalAddress: '203.0.113.9' });
    const client = await turn.client();
    expect((await client.allocate()).relayed.address).toBe('203.0.113.9');
  });

  it.each([
    [undefined, 600],
    [60, 600],
    [1200, 1200],
    [86_400, 3600],
  ])('grants lifetime %p as %p seconds (default 600 is the floor, 3600 the cap)', async (asked, granted) => {
    turn = await startTurn();
    const client = await turn.client();
    expect((await client.allocate({ lifetimeSec: asked })).lifetimeSec).toBe(granted);
  });

  it('refuses another Allocate on the same 5-tuple with 437', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.allocate()).rejects.toMatchObject({ code: 437 });
    expect(turn.server.stats).toMatchObject({ allocationsActive: 1, allocationsCreated: 1 });
  });

  it('a retransmitted Allocate (same transaction) gets the original success response again', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const sent = recordWrites(client);
    const first = await client.allocate();
    const got = collect(client);
    client.sendRaw(sent[sent.length - 1]);
    await eventually(() => got.other.length === 1);
    const again = parse(got.other[0]);
    expect(again.cls).toBe(StunClass.Success);
    expect(findAttribute(again, TurnAttribute.XorRelayedAddress)).toBeDefined();
    expect(turn.server.stats.allocationsCreated).toBe(1);
    expect(first.relayed.port).toBeGreaterThan(0);
  });

  it.each([
    ['a TCP relay (REQUESTED-TRANSPORT 6) with 442', { protocol: 6 }, 442],
    [
      'DONT-FRAGMENT (not supported) with 420',
      { extra: [{ type: TurnAttribute.DontFragment, value: Buffer.alloc(0) }] },
      420,
    ],
    ['an IPv6 relay from an IPv4 server with 440', { family: 'IPv6' as const }, 440],
    ['RESERVATION-TOKEN with EVEN-PORT with 400', { evenPort: true, reservationToken: Buffer.alloc(8) }, 400],
    ['an unknown RESERVATION-TOKEN with 508', { reservationToken: Buffer.alloc(8) }, 508],
    [
      'a malformed LIFETIME with 400',
      { extra: [{ type: TurnAttribute.Lifetime, value: Buffer.alloc(3) }] },
      400,
    ],
  ])('refuses %s', async (_name, options, code) => {
    turn = await startTurn();
    const client = await turn.client();
    const error = await client.allocate(options).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(TurnError);
    expect(error).toMatchObject({ code });
    if (code === 420) {
      const unknown = findAttribute((error as TurnError).response, StunAttribute.UnknownAttributes);
      expect(unknown && attributeValue((error as TurnError).response, unknown).readUInt16BE(0)).toBe(0x001a);
    }
    expect(turn.server.stats.allocationsActive).toBe(0);
    expect(turn.server.stats.refusals[code as 400]).toBe(1);
  });

  it('refuses an Allocate without REQUESTED-TRANSPORT with 400', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await expect(client.request(TurnMethod.Allocate, [])).rejects.toMatchObject({ code: 400 });
  });

  it('EVEN-PORT gives an even port; with R the next port is reserved for RESERVATION-TOKEN', async () => {
    turn = await startTurn({ ...relayPortRange(64) });
    const first = await turn.client();
    const even = await first.allocate({ evenPort: true });
    expect(even.relayed.port % 2).toBe(0);
    expect(even.reservationToken).toBeUndefined();

    const second = await turn.client();
    const reserving = await second.allocate({ evenPort: 'reserve' });
    expect(reserving.relayed.port % 2).toBe(0);
    expect(reserving.reservationToken).toHaveLength(8);

    const third = await turn.client();
    const claimed = await third.allocate({ reservationToken: reserving.reservationToken });
    expect(claimed.relayed.port).toBe(reserving.relayed.port + 1);
    // A token is used once.
    const fourth = await turn.client();
    await expect(fourth.allocate({ reservationToken: reserving.reservationToken })).rejects.toMatchObject({
      code: 508,
    });
  });
});

describe('credentials', () => {
  it('refuses a wrong password (another secret) with 401 and allocates nothing', async () => {
    turn = await startTurn();
    const client = await turn.client({ secret: 'not-the-secret' });
    await expect(client.allocate()).rejects.toMatchObject({ code: 401 });
    expect(turn.server.stats.allocationsActive).toBe(0);
    expect(turn.server.stats.refusals[401]).toBe(2);
  });

  it('refuses an expired username with 401', async () => {
    turn = await startTurn();
    const client = await turn.client({ ttlSec: 60 });
    turn.clock.now += 61_000;
    await expect(client.allocate()).rejects.toMatchObject({ code: 401 });
  });

  it('accepts the previous secret during a rotation, and refuses it once retired', async () => {
    turn = await startTurn({ secrets: ['new-secret', SECRET] });
    const old = await turn.client();
    await old.allocate();
    const fresh = await turn.client({ secret: 'new-secret' });
    await fresh.allocate();
    turn.server.updateSecrets(['new-secret']);
    await expect(old.refresh()).rejects.toMatchObject({ code: 401 });
    expect(await fresh.refresh()).toBe(600);
    expect(() => turn.server.updateSecrets([])).toThrow(RangeError);
  });

  it('answers a stale nonce with 438 and a fresh NONCE, with which the request succeeds', async () => {
    turn = await startTurn({ nonceLifetimeSec: 30 });
    const client = await turn.client();
    await client.allocate();
    turn.clock.now += 31_000;
    expect(await client.refresh()).toBe(600);
    expect(turn.server.stats.refusals[438]).toBe(1);
  });

  it('binds a nonce to the client IP: the same nonce from another address gets 438', async () => {
    turn = await startTurn();
    const first = await turn.client();
    await first.allocate();
    const second = await turn.client({ localAddress: '127.0.0.2' });
    // Give the second client the first one's realm, nonce and key, as a replay would.
    for (const field of ['realm', 'nonce', 'key']) {
      (second as unknown as Record<string, unknown>)[field] = (first as unknown as Record<string, unknown>)[
        field
      ];
    }
    await second.allocate();
    expect(turn.server.stats.refusals[438]).toBe(1);
    expect(turn.server.stats.allocationsActive).toBe(2);
  });

  it('accepts MESSAGE-INTEGRITY-SHA256 and signs its answers with it', async () => {
    turn = await startTurn();
    const client = await turn.client({ integrity: 'sha256' });
    await client.allocate();
    const got = collect(client);
    await client.createPermission('198.51.100.1');
    expect(got.other).toHaveLength(0);
    expect(turn.server.stats.permissionsActive).toBe(1);
  });

  it('refuses a request on an allocation under other credentials with 441', async () => {
    turn = await startTurn();
    const alice = await turn.client();
    await alice.allocate();
    // Same socket, other user: swap the credentials the client signs with.
    const bob = await turn.client({ user: 'bob' });
    Object.assign(alice as unknown as Record<string, unknown>, {
      options: {
        ...(alice as unknown as { options: object }).options,
        ...(bob as unknown as { options: object }).options,
      },
      key: undefined,
      nonce: undefined,
    });
    await expect(alice.createPermission('198.51.100.1')).rejects.toMatchObject({ code: 441 });
  });

  it('refuses a signed request without REALM or NONCE with 400', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const attributes = [...ALLOCATE_UDP, { type: StunAttribute.Username, value: Buffer.from('1:alice') }];
    expect(errorCodeOf(await rawAnswer(client, attributes, Buffer.alloc(16)))).toBe(400);
  });
});

describe('limits', () => {
  it('486 beyond maxAllocationsPerUser; another user still allocates', async () => {
    turn = await startTurn({ maxAllocationsPerUser: 2 });
    for (let i = 0; i < 2; i++) await (await turn.client()).allocate();
    await expect((await turn.client()).allocate()).rejects.toMatchObject({ code: 486 });
    await (await turn.client({ user: 'bob' })).allocate();
    expect(turn.server.stats.allocationsActive).toBe(3);
  });

  it('508 beyond maxAllocations', async () => {
    turn = await startTurn({ maxAllocations: 2 });
    await (await turn.client({ user: 'a' })).allocate();
    await (await turn.client({ user: 'b' })).allocate();
    await expect((await turn.client({ user: 'c' })).allocate()).rejects.toMatchObject({ code: 508 });
  });

  it('508 when the port range is exhausted; a freed port is allocated again', async () => {
    turn = await startTurn({ ...relayPortRange(3), maxAllocationsPerUser: 10 });
    const clients = [];
    const ports = new Set<number>();
    for (let i = 0; i < 3; i++) {
      const client = await turn.client();
      ports.add((await client.allocate()).relayed.port);
      clients.push(client);
    }
    expect(ports.size).toBe(3);
    await expect((await turn.client()).allocate()).rejects.toMatchObject({ code: 508 });
    const [first] = clients;
    const freed = [...ports][0];
    expect(await first.refresh(0)).toBe(0);
    const again = await (await turn.client()).allocate();
    expect(ports.has(again.relayed.port)).toBe(true);
    expect(again.relayed.port).toBe(freed);
  });
});

describe('Refresh', () => {
  it('refreshes with the default or requested lifetime, and 437 without an allocation', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await expect(client.refresh()).rejects.toMatchObject({ code: 437 });
    await client.allocate();
    expect(await client.refresh()).toBe(600);
    expect(await client.refresh(1800)).toBe(1800);
    expect(turn.outcomes.filter(([o]) => o === 'refreshed')).toHaveLength(2);
  });

  it('LIFETIME 0 deletes the allocation and closes its relay port', async () => {
    turn = await startTurn();
    const client = await turn.client();
    const { relayed } = await client.allocate();
    expect(await client.refresh(0)).toBe(0);
    expect(turn.server.stats).toMatchObject({ allocationsActive: 0, allocationsDeleted: 1 });
    await expect(client.createPermission('198.51.100.1')).rejects.toMatchObject({ code: 437 });
    // The port is free again: we can bind it ourselves.
    const probe = await Peer.open({ port: relayed.port });
    await probe.close();
  });

  it('expires an allocation at the end of its lifetime', async () => {
    turn = await startTurn({ allocationLifetimeSec: 60, maxAllocationLifetimeSec: 60 });
    const client = await turn.client();
    const { relayed } = await client.allocate();
    turn.clock.now += 59_000;
    await sleep(60);
    expect(turn.server.stats.allocationsActive).toBe(1);
    turn.clock.now += 1_000;
    await eventually(() => turn.server.stats.allocationsExpired === 1);
    expect(turn.server.stats.allocationsActive).toBe(0);
    expect(turn.outcomes).toContainEqual(['expired', undefined]);
    const probe = await Peer.open({ port: relayed.port });
    await probe.close();
  });
});

describe('CreatePermission, Send and Data indications', () => {
  it('relays a Send indication to the peer, and the peer back as a Data indication', async () => {
    const { peer, client, got, relayed, ...rest } = await relayThroughLoopback();
    turn = rest.turn;
    await client.createPermission('127.0.0.1');
    client.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('hello peer'));
    await peer.waitFor(1);
    expect(peer.received[0]).toMatchObject({ address: '127.0.0.1', port: relayed.port });
    expect(peer.received[0].data.toString()).toBe('hello peer');
    await got.waitFor(1);
    expect(got.data[0]).toMatchObject({ address: '127.0.0.1', port: peer.port, channel: undefined });
    expect(got.data[0].data.toString()).toBe('hello peer');
    expect(turn.server.stats).toMatchObject({
      packetsToPeer: 1,
      bytesToPeer: 10,
      packetsToClient: 1,
      bytesToClient: 10,
      permissionsActive: 1,
    });
    await peer.close();
  });

  it('drops data without a permission, both ways', async () => {
    const { peer, client, got, relayed, ...rest } = await relayThroughLoopback({}, {});
    turn = rest.turn;
    client.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('no permission'));
    peer.send(Buffer.from('unsolicited'), relayed.port);
    await eventually(() => turn.server.stats.dropped.no_permission === 2);
    expect(peer.received).toHaveLength(0);
    expect(got.data).toHaveLength(0);
    await peer.close();
  });

  it.each([
    '169.254.169.254',
    '169.254.0.1',
    '127.0.0.1',
    '10.1.2.3',
    '172.16.0.1',
    '172.31.255.254',
    '192.168.1.1',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '239.255.255.250',
    '255.255.255.255',
  ])('refuses a permission for %s with 403 by default', async (address) => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.createPermission(address)).rejects.toMatchObject({ code: 403 });
    await expect(client.channelBind(0x4000, { address, port: 9 })).rejects.toMatchObject({ code: 403 });
    expect(turn.server.stats.permissionsActive).toBe(0);
  });

  it('refuses the whole request when any one peer is refused', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.createPermission('198.51.100.1', '169.254.169.254')).rejects.toMatchObject({
      code: 403,
    });
    expect(turn.server.stats.permissionsActive).toBe(0);
  });

  it('refuses CreatePermission without a peer (400) and with an IPv6 peer on an IPv4 relay (443)', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.createPermission()).rejects.toMatchObject({ code: 400 });
    await expect(client.createPermission('2001:db8::1')).rejects.toMatchObject({ code: 443 });
  });

  it('expires permissions after permissionLifetimeSec', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'], permissionLifetimeSec: 30 });
    const peer = await Peer.open();
    const client = await turn.client();
    await client.allocate();
    await client.createPermission('127.0.0.1');
    turn.clock.now += 30_000;
    await eventually(() => turn.server.stats.permissionsActive === 0);
    client.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('late'));
    await eventually(() => turn.server.stats.dropped.no_permission === 1);
    expect(peer.received).toHaveLength(0);
    await peer.close();
  });

  it('508 beyond maxPermissionsPerAllocation', async () => {
    turn = await startTurn({ maxPermissionsPerAllocation: 2 });
    const client = await turn.client();
    await client.allocate();
    await client.createPermission('198.51.100.1', '198.51.100.2');
    await client.createPermission('198.51.100.1'); // a refresh, not a new one
    await expect(client.createPermission('198.51.100.3')).rejects.toMatchObject({ code: 508 });
  });
});

describe('ChannelBind and ChannelData', () => {
  it('relays ChannelData to the peer and the peer back as ChannelData', async () => {
    const { peer, client, got, relayed, ...rest } = await relayThroughLoopback();
    turn = rest.turn;
    await client.channelBind(0x4001, { address: '127.0.0.1', port: peer.port });
    expect(turn.server.stats).toMatchObject({ channelsActive: 1, permissionsActive: 1 });
    for (let i = 0; i < 5; i++) client.sendChannel(0x4001, Buffer.from(`packet ${i}`));
    await peer.waitFor(5);
    expect(peer.received.map((r) => r.data.toString())).toEqual([0, 1, 2, 3, 4].map((i) => `packet ${i}`));
    expect(peer.received.every((r) => r.port === relayed.port)).toBe(true);
    await got.waitFor(5);
    expect(got.data.every((d) => d.channel === 0x4001)).toBe(true);
    expect(turn.server.stats).toMatchObject({ packetsToPeer: 5, packetsToClient: 5 });
    await peer.close();
  });

  it('refreshes a binding, and keeps channel and peer one to one (400)', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    const peer = { address: '198.51.100.7', port: 5000 };
    await client.channelBind(0x4000, peer);
    await client.channelBind(0x4000, peer);
    await expect(client.channelBind(0x4000, { ...peer, port: 5001 })).rejects.toMatchObject({ code: 400 });
    await expect(client.channelBind(0x4002, peer)).rejects.toMatchObject({ code: 400 });
    expect(turn.server.stats.channelsActive).toBe(1);
  });

  it.each([
    ['0x3FFF', 0x3fff],
    ['0x8000', 0x8000],
    ['0xFFFF', 0xffff],
  ])('refuses channel number %s with 400', async (_name, channel) => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    await expect(client.channelBind(channel, { address: '198.51.100.7', port: 5000 })).rejects.toMatchObject({
      code: 400,
    });
  });

  it('drops and counts ChannelData on an unbound channel', async () => {
    turn = await startTurn();
    const client = await turn.client();
    await client.allocate();
    for (let i = 0; i < 100; i++) client.sendChannel(0x4abc, Buffer.alloc(32));
    await eventually(() => turn.server.stats.dropped.unbound_channel === 100);
    expect(turn.server.stats.packetsToPeer).toBe(0);
  });

  it('after a binding expires, ChannelData is dropped and the peer arrives as Data indications', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'], channelLifetimeSec: 60 });
    const peer = await Peer.open();
    const client = await turn.client();
    const got = collect(client);
    const { relayed } = await client.allocate();
    await client.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
    turn.clock.now += 60_000;
    await eventually(() => turn.server.stats.channelsActive === 0);
    await client.createPermission('127.0.0.1');
    client.sendChannel(0x4000, Buffer.from('stale'));
    await eventually(() => turn.server.stats.dropped.unbound_channel === 1);
    peer.send(Buffer.from('via indication'), relayed.port);
    await got.waitFor(1);
    expect(got.data[0]).toMatchObject({ channel: undefined, port: peer.port });
    await peer.close();
  });
});

describe('bandwidth', () => {
  it('drops relayed packets over the allocation rate and counts them', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'], allocationBandwidth: 1000, userBandwidth: 0 });
    const peer = await Peer.open();
    const client = await turn.client();
    await client.allocate();
    await client.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
    // The clock does not move: exactly the 1000-byte burst passes.
    for (let i = 0; i < 20; i++) client.sendChannel(0x4000, Buffer.alloc(200));
    await eventually(() => turn.server.stats.dropped.bandwidth === 15);
    expect(turn.server.stats.packetsToPeer).toBe(5);
    await peer.waitFor(5);
    expect(peer.received).toHaveLength(5);
    // One second later there is room again.
    turn.clock.now += 1000;
    client.sendChannel(0x4000, Buffer.alloc(200));
    await peer.waitFor(6);
    expect(peer.received).toHaveLength(6);
    await peer.close();
  });

  it('shares the user rate over all the user’s allocations', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'], allocationBandwidth: 0, userBandwidth: 1000 });
    const peer = await Peer.open();
    const clients = [await turn.client(), await turn.client()];
    for (const client of clients) {
      await client.allocate();
      await client.channelBind(0x4000, { address: '127.0.0.1', port: peer.port });
    }
    for (let i = 0; i < 5; i++) for (const client of clients) client.sendChannel(0x4000, Buffer.alloc(200));
    await eventually(() => turn.server.stats.dropped.bandwidth === 5);
    expect(turn.server.stats.packetsToPeer).toBe(5);
    await peer.close();
  });
});

describe('drain', () => {
  it('refuses new allocations with 508, keeps existing ones, resolves when the last is gone', async () => {
    turn = await startTurn({ allowPeers: ['127.0.0.1'] });
    const peer = await Peer.open();
    const client = await turn.client();
    await client.allocate();
    await client.createPermission('127.0.0.1');
    const drained = turn.server.drain(10_000);
    expect(turn.server.isDraining).toBe(true);
    await expect((await turn.client({ user: 'late' })).allocate()).rejects.toMatchObject({ code: 508 });
    expect(await client.refresh()).toBe(600);
    client.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('still relaying'));
    await peer.waitFor(1);
    expect(peer.received).toHaveLength(1);
    await client.refresh(0);
    await expect(drained).resolves.toEqual({ left: 0 });
    await peer.close();
  });

  it('resolves at the deadline with the allocations left', async () => {
    turn = await startTurn();
    await (await turn.client()).allocate();
    const started = Date.now();
    await expect(turn.server.drain(200)).resolves.toEqual({ left: 1 });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
  });

  it('resolves at once when there is nothing to drain', async () => {
    turn = await startTurn();
    await expect(turn.server.drain(10_000)).resolves.toEqual({ left: 0 });
  });
});

describe('TCP and TLS', () => {
  it.each(['tcp', 'tls'] as const)(
    'allocates and relays over %s (ChannelData padded, Data indications)',
    async (transport) => {
      turn = await startTurn({ allowPeers: ['127.0.0.1'], tlsCert: TLS_CERT, tlsKey: TLS_KEY, tlsPort: 0 });
      const peer = await Peer.open({ echo: true });
      const client = await turn.client({ transport });
      const got = collect(client);
      const { mapped } = await client.allocate();
      expect(mapped.port).toBe(client.local.port);
      await client.channelBind(0x4005, { address: '127.0.0.1', port: peer.port });
      client.sendChannel(0x4005, Buffer.from('odd length 17 b.')); // 17 bytes: needs padding on a stream
      client.sendChannel(0x4005, Buffer.from('second'));
      client.send({ address: '127.0.0.1', port: peer.port }, Buffer.from('indication'));
      await got.waitFor(3);
      expect(got.data.map((d) => d.data.toString()).sort()).toEqual(
        ['indication', 'odd length 17 b.', 'second'].sort(),
      );
      expect(turn.server.stats.tcpConnections).toBe(1);
      await peer.close();
    },
  );

  it('deletes the allocation when its connection closes', async () => {
    turn = await startTurn();
    const client = await turn.client({ transport: 'tcp' });
    await client.allocate();
    await client.close();
    await eventually(() => turn.server.stats.allocationsActive === 0);
    expect(turn.server.stats).toMatchObject({ allocationsDeleted: 1, tcpConnections: 0 });
  });

  it('closes a connection that holds no allocation for tcpIdleTimeoutMs', async () => {
    turn = await startTurn({ tcpIdleTimeoutMs: 5000 });
    const client = await turn.client({ transport: 'tcp' });
    turn.clock.now += 5000;
    await eventually(() => client.closedByServer);
    expect(turn.server.stats.dropped.tcp_idle).toBe(1);
  });

  it('refuses connections beyond maxTcpConnections', async () => {
    turn = await startTurn({ maxTcpConnections: 1 });
    const first = await turn.client({ transport: 'tcp' });
    await first.allocate();
    const second = await turn.client({ transport: 'tcp' });
    await eventually(() => second.closedByServer);
    expect(turn.server.stats.dropped.tcp_limit).toBe(1);
    expect(await first.refresh()).toBe(600);
  });
});

describe('IPv6', () => {
  it('allocates an IPv6 relay and relays to an IPv6 peer; an IPv4 relay asked of it is 440', async () => {
    const probe = dgram.createSocket('udp6');
    const ipv6 = await new Promise<boolean>((resolve) => {
      probe.once('error', () => resolve(false));
      probe.bind(0, '::1', () => resolve(true));
    });
    if (!ipv6) {
      console.warn('skipped: no IPv6 loopback');
      return;
    }
    probe.on('message', (msg, remote) => probe.send(msg, remote.port, remote.address));
    try {
      turn = await startTurn({ host: '::1', allowPeers: ['::1'] });
      const client = await turn.client({ host: '::1' });
      const got = collect(client);
      const { relayed, mapped } = await client.allocate({ family: 'IPv6' });
      expect(relayed.family).toBe('IPv6');
      expect(mapped).toMatchObject({ address: '::1', family: 'IPv6' });
      const peer = { address: '::1', port: probe.address().port };
      await client.channelBind(0x4000, peer);
      client.sendChannel(0x4000, Buffer.from('over v6'));
      client.send(peer, Buffer.from('indication over v6'));
      await got.waitFor(2);
      expect(got.data.map((d) => d.data.toString()).sort()).toEqual(['indication over v6', 'over v6']);
      await expect(client.createPermission('198.51.100.1')).rejects.toMatchObject({ code: 443 });
      const other = await turn.client({ host: '::1' });
      await expect(other.allocate({ family: 'IPv4' })).rejects.toMatchObject({ code: 440 });
    } finally {
      probe.close();
    }
  });
});

describe('Binding and the metrics hook', () => {
  it('answers STUN Binding requests on the TURN port without credentials', async () => {
    turn = await startTurn();
    const mapped = await stunBinding('127.0.0.1', turn.address.port, { timeoutMs: 2000 });
    expect(mapped).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    expect(turn.outcomes).toEqual([['answered', undefined]]);
  });

  it('keeps serving when the onOutcome observer throws', async () => {
    const warn = jest.fn();
    turn = await startTurn({
      log: { warn },
      onOutcome: () => {
        throw new Error('observer bug');
      },
    });
    await (await turn.client()).allocate();
    expect(turn.server.stats.allocationsActive).toBe(1);
    expect(warn).toHaveBeenCalled();
  });
});

describe('construction and start', () => {
  it('binds UDP and TCP on one port when given port 0, and cannot start twice', async () => {
    turn = await startTurn();
    const udp = await turn.client();
    const tcp = await turn.client({ transport: 'tcp' });
    await udp.allocate();
    await tcp.allocate();
    await expect(turn.server.start()).rejects.toThrow('only be started once');
  });

  it.each([
    ['a wildcard relay without externalAddress', { host: '0.0.0.0' }],
    ['no secrets', { secrets: [] }],
    ['an empty secret', { secrets: [''] }],
    ['a bad allowPeers CIDR', { allowPeers: ['10.0.0.0/33'] }],
    ['a port range upside down', { minPort: 50_000, maxPort: 40_000 }],
    ['a TLS key without a certificate', { tlsKey: 'x' }],
    ['an oversized SOFTWARE', { software: 'x'.repeat(764) }],
  ])('refuses %s at construction', (_name, options) => {
    expect(() => new TurnServer({ host: '127.0.0.1', realm: REALM, secrets: [SECRET], ...options })).toThrow(
      RangeError,
    );
  });

  it('rejects start() when the port is taken, and releases what it bound', async () => {
    const holder = dgram.createSocket('udp4');
    await new Promise<void>((resolve) => holder.bind(0, '127.0.0.1', () => resolve()));
    const server = new TurnServer({
      host: '127.0.0.1',
      port: holder.address().port,
      realm: REALM,
      secrets: [SECRET],
    });
    await expect(server.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await server.close();
    await new Promise<void>((resolve) => holder.close(() => resolve()));
  });

  it('can be closed without being started, more than once', async () => {
    const server = new TurnServer({ host: '127.0.0.1', realm: REALM, secrets: [SECRET] });
    await server.close();
    await server.close();
  });
});
