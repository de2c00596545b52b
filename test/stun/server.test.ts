import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { StunTimeoutError, stunBinding } from '../../supernode/stun/client';
import {
  crc32,
  encodeBindingRequest,
  encodeBindingSuccess,
  parseBindingResponse,
  STUN_MAGIC_COOKIE,
} from '../../supernode/stun/codec';
import { type StunOutcome, StunServer, type StunServerDropReason } from '../../supernode/stun/server';

const SILENCE_MS = 150;

/** A raw UDP socket on loopback that records everything it receives. */
class Probe {
  readonly received: Buffer[] = [];
  private waiters: Array<() => void> = [];

  private constructor(readonly socket: dgram.Socket) {
    socket.on('message', (msg) => {
      this.received.push(msg);
      for (const wake of this.waiters.splice(0)) wake();
    });
  }

  static async open(type: 'udp4' | 'udp6' = 'udp4'): Promise<Probe> {
    const socket = dgram.createSocket(type);
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(0, type === 'udp4' ? '127.0.0.1' : '::1', () => resolve());
    });
    return new Probe(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(datagram: Buffer, port: number, host = '127.0.0.1'): Promise<void> {
    return new Promise((resolve, reject) =>
      this.socket.send(datagram, port, host, (err) => (err ? reject(err) : resolve())),
    );
  }

  /** Resolves with the next datagram not yet consumed, or rejects after `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<Buffer> {
    const deadline = Date.now() + timeoutMs;
    while (this.received.length === 0) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) throw new Error('no datagram received');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, remaining);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received.shift() as Buffer;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const udpHandleCount = () => process.getActiveResourcesInfo().filter((name) => name === 'UDPWrap').length;

/** Open UDP handles, once closes still in flight (they take a couple of loop turns) have finished. */
async function settledUdpHandleCount(): Promise<number> {
  await sleep(20);
  return udpHandleCount();
}

/** A leaked socket never closes, so polling until the count is back is a real check. */
async function expectUdpHandlesBackTo(expected: number): Promise<void> {
  const deadline = Date.now() + 1000;
  while (udpHandleCount() > expected && Date.now() < deadline) await sleep(10);
  expect(udpHandleCount()).toBe(expected);
}

/** An unused UDP port on loopback, freed again before returning. */
async function freePort(): Promise<number> {
  const probe = await Probe.open();
  const { port } = probe;
  await probe.close();
  return port;
}

async function ipv6LoopbackAvailable(): Promise<boolean> {
  try {
    await (await Probe.open('udp6')).close();
    return true;
  } catch {
    return false;
  }
}

/** Hand-built Binding request with raw attribute bytes and no FINGERPRINT. */
function requestWithAttributes(attributes: Buffer, transactionId = randomBytes(12)): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt16BE(0x0001, 0);
  header.writeUInt16BE(attributes.length, 2);
  header.writeUInt32BE(STUN_MAGIC_COOKIE, 4);
  transactionId.copy(header, 8);
  return Buffer.concat([header, attributes]);
}

describe('StunServer', () => {
  let server: StunServer;
  let port: number;
  let probe: Probe;
  let outcomes: Array<[StunOutcome, StunServerDropReason | undefined]>;

  beforeEach(async () => {
    outcomes = [];
    server = new StunServer({
      host: '127.0.0.1',
      port: 0,
      software: 'supernode-test',
      onOutcome: (outcome, reason) => outcomes.push([outcome, reason]),
    });
    ({ port } = await server.start());
    probe = await Probe.open();
  });

  afterEach(async () => {
    await server.close();
    await probe.close();
  });

  it('binds an ephemeral port on the requested host', () => {
    expect(port).toBeGreaterThan(0);
  });

  it('answers the client with its own address and source port over real UDP', async () => {
    const localPort = await freePort();
    const mapped = await stunBinding('127.0.0.1', port, {
      localAddress: '127.0.0.1',
      localPort,
      timeoutMs: 2000,
    });
    expect(mapped).toEqual({ address: '127.0.0.1', port: localPort, family: 'IPv4' });
    expect(server.stats).toEqual({
      answered: 1,
      errorResponses: 0,
      dropped: 0,
      sendErrors: 0,
      fromResponders: 0,
    });
    expect(outcomes).toEqual([['answered', undefined]]);
  });

  it('reports the exact source port of a raw request, with SOFTWARE and FINGERPRINT', async () => {
    const request = encodeBindingRequest();
    await probe.send(request, port);
    const response = await probe.next();
    expect(parseBindingResponse(response, request.subarray(8, 20))).toEqual({
      address: '127.0.0.1',
      port: probe.port,
      family: 'IPv4',
    });
    expect(response.includes(Buffer.from('supernode-test'))).toBe(true);
    const fingerprintAt = response.length - 8;
    expect(response.readUInt32BE(fingerprintAt + 4)).toBe(
      (crc32(response, 0, fingerprintAt) ^ 0x5354554e) >>> 0,
    );
  });

  it('drops malformed datagrams without replying, then still answers', async () => {
    const good = () => encodeBindingRequest(undefined, { fingerprint: true });
    const wrongCookie = good();
    wrongCookie.writeUInt32BE(0xdeadbeef, 4);
    const response = encodeBindingSuccess(randomBytes(12), '127.0.0.1', 1, 'IPv4');
    const overrun = requestWithAttributes(Buffer.from([0x80, 0x55, 0x00, 0x09, 0, 0, 0, 0]));
    const badFingerprint = good();
    badFingerprint[badFingerprint.length - 1] ^= 0x01;
    const random = randomBytes(64);
    random[0] |= 0x80; // random, but never a plausible STUN header

    const malformed: Array<[string, Buffer, StunServerDropReason]> = [
      ['random bytes', random, 'not_stun'],
      ['truncated', good().subarray(0, 12), 'too_short'],
      ['wrong cookie', wrongCookie, 'bad_cookie'],
      ['a response', response, 'not_binding_request'],
      ['overrunning attribute', overrun, 'bad_attribute'],
      ['bad fingerprint', badFingerprint, 'bad_fingerprint'],
      ['2000 bytes', requestWithAttributes(Buffer.alloc(1980)), 'too_large'],
      ['empty', Buffer.alloc(0), 'too_short'],
    ];
    for (const [, datagram] of malformed) await probe.send(datagram, port);
    await sleep(SILENCE_MS);
    expect(probe.received).toHaveLength(0);
    expect(server.stats).toEqual({
      answered: 0,
      errorResponses: 0,
      dropped: malformed.length,
      sendErrors: 0,
      fromResponders: 0,
    });
    expect(outcomes).toEqual(malformed.map(([, , reason]) => ['dropped', reason]));

    const request = good();
    await probe.send(request, port);
    expect(parseBindingResponse(await probe.next(), request.subarray(8, 20))).not.toBeNull();
    expect(server.stats).toEqual({
      answered: 1,
      errorResponses: 0,
      dropped: malformed.length,
      sendErrors: 0,
      fromResponders: 0,
    });
  });

  it('answers an unknown comprehension-required attribute with 420', async () => {
    const transactionId = randomBytes(12);
    // RFC 5780 CHANGE-REQUEST: we cannot change address, so we must not pretend to understand it.
    await probe.send(
      requestWithAttributes(Buffer.from([0x00, 0x03, 0x00, 0x04, 0, 0, 0, 6]), transactionId),
      port,
    );
    const reply = await probe.next();
    expect(reply.readUInt16BE(0)).toBe(0x0111);
    expect(reply.subarray(8, 20).equals(transactionId)).toBe(true);
    const unknownAt = reply.indexOf(Buffer.from([0x00, 0x0a, 0x00, 0x02]));
    expect(unknownAt).toBeGreaterThan(0);
    expect(reply.readUInt16BE(unknownAt + 4)).toBe(0x0003);
    expect(server.stats).toEqual({
      answered: 0,
      errorResponses: 1,
      dropped: 0,
      sendErrors: 0,
      fromResponders: 0,
    });
    expect(outcomes).toEqual([['error_response', undefined]]);
  });

  it('close() can be called repeatedly and concurrently, and start() cannot follow it', async () => {
    await Promise.all([server.close(), server.close()]);
    await server.close();
    await expect(server.start()).rejects.toThrow('only be started once');
    // The port is really released.
    const again = new StunServer({ host: '127.0.0.1', port });
    await expect(again.start()).resolves.toEqual({ address: '127.0.0.1', port });
    await again.close();
  });
});

describe('StunServer edge cases', () => {
  it('rejects start() on a bind error and can still be closed', async () => {
    const first = new StunServer({ host: '127.0.0.1', port: 0 });
    const { port } = await first.start();
    const second = new StunServer({ host: '127.0.0.1', port });
    await expect(second.start()).rejects.toMatchObject({ code: 'EADDRINUSE' });
    await second.close();
    await second.close();
    await first.close();
  });

  it('can be closed without ever being started', async () => {
    const server = new StunServer({ host: '127.0.0.1', port: 0 });
    await server.close();
    await server.close();
  });

  it('rejects an oversized SOFTWARE at construction', () => {
    expect(() => new StunServer({ host: '127.0.0.1', port: 0, software: 'x'.repeat(764) })).toThrow(
      RangeError,
    );
  });

  it('keeps answering when the outcome observer throws', async () => {
    const warn = jest.fn();
    const server = new StunServer({
      host: '127.0.0.1',
      port: 0,
      log: { warn },
      onOutcome: () => {
        throw new Error('observer bug');
      },
    });
    const { port } = await server.start();
    try {
      await stunBinding('127.0.0.1', port, { timeoutMs: 2000 });
      await stunBinding('127.0.0.1', port, { timeoutMs: 2000 });
      expect(server.stats).toMatchObject({ answered: 2, dropped: 0 });
      expect(warn).toHaveBeenCalledWith(
        expect.objectContaining({ err: expect.any(Error) }),
        expect.any(String),
      );
    } finally {
      await server.close();
    }
  });

  it('drops instead of queueing when the send queue is at its limit', async () => {
    const server = new StunServer({ host: '127.0.0.1', port: 0, maxQueuedSends: 0 });
    const { port } = await server.start();
    const probe = await Probe.open();
    try {
      await probe.send(encodeBindingRequest(), port);
      await sleep(SILENCE_MS);
      expect(probe.received).toHaveLength(0);
      expect(server.stats).toMatchObject({ answered: 0, dropped: 1 });
    } finally {
      await probe.close();
      await server.close();
    }
  });

  it('serves IPv6, and a dual-stack socket reports IPv4 peers as IPv4', async () => {
    if (!(await ipv6LoopbackAvailable())) {
      console.warn('skipped: no IPv6 loopback');
      return;
    }
    const ipv6Only = new StunServer({ host: '::1', port: 0 });
    const dualStack = new StunServer({ host: '::', port: 0 });
    try {
      const { port: ipv6Port } = await ipv6Only.start();
      const mapped = await stunBinding('::1', ipv6Port, { timeoutMs: 2000 });
      expect(mapped).toMatchObject({ address: '::1', family: 'IPv6' });

      const { port: dualPort } = await dualStack.start();
      const viaIpv4 = await stunBinding('127.0.0.1', dualPort, { timeoutMs: 2000 });
      expect(viaIpv4).toMatchObject({ address: '127.0.0.1', family: 'IPv4' });
    } finally {
      await ipv6Only.close();
      await dualStack.close();
    }
  });
});

describe('stunBinding client', () => {
  it('retransmits with the same transaction id, then rejects with StunTimeoutError and closes its socket', async () => {
    const silent = await Probe.open();
    const handlesBefore = await settledUdpHandleCount();
    try {
      const started = Date.now();
      const error = await stunBinding('127.0.0.1', silent.port, { timeoutMs: 700, retries: 2 }).catch(
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(StunTimeoutError);
      expect(error).toMatchObject({ name: 'StunTimeoutError', attempts: 3, timeoutMs: 700 });
      expect(Date.now() - started).toBeGreaterThanOrEqual(650);
      expect(silent.received).toHaveLength(3);
      const transactionIds = new Set(
        silent.received.map((request) => request.subarray(8, 20).toString('hex')),
      );
      expect(transactionIds.size).toBe(1);
      await expectUdpHandlesBackTo(handlesBefore);
    } finally {
      await silent.close();
    }
  });

  it('recovers from a lost request and ignores replies for other transactions', async () => {
    const lossy = await Probe.open();
    const handlesBefore = await settledUdpHandleCount();
    lossy.socket.on('message', (request, remote) => {
      if (lossy.received.length < 2) return; // "lose" the first transmission
      const stranger = encodeBindingSuccess(randomBytes(12), '192.0.2.66', 1, 'IPv4');
      const ours = encodeBindingSuccess(request.subarray(8, 20), '198.51.100.1', 4242, 'IPv4');
      lossy.socket.send(stranger, remote.port, remote.address);
      lossy.socket.send(ours, remote.port, remote.address);
    });
    try {
      const mapped = await stunBinding('127.0.0.1', lossy.port, { timeoutMs: 1500, retries: 3 });
      expect(mapped).toEqual({ address: '198.51.100.1', port: 4242, family: 'IPv4' });
      expect(lossy.received.length).toBeGreaterThanOrEqual(2);
      await expectUdpHandlesBackTo(handlesBefore);
    } finally {
      await lossy.close();
    }
  });

  it('rejects on an invalid destination port and closes its socket', async () => {
    const handlesBefore = await settledUdpHandleCount();
    await expect(stunBinding('127.0.0.1', 0, { timeoutMs: 500 })).rejects.toThrow();
    await expectUdpHandlesBackTo(handlesBefore);
  });
});
