import { randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import {
  attributeValue,
  decodeErrorCode,
  decodeXorAddress,
  encodeStunMessage,
  encodeXorAddress,
  findAttribute,
  parseStunMessage,
  StunAttribute,
  type StunAttributeValue,
  StunClass,
  type StunIntegrity,
  type StunMappedAddress,
  type StunMessage,
  stunMessageType,
  verifyIntegrity,
} from '../stun/codec';
import {
  encodeChannelData,
  frameKind,
  parseChannelData,
  TRANSPORT_UDP,
  TURN_KNOWN_ATTRIBUTES,
  TurnAttribute,
  TurnMethod,
  TurnStreamFramer,
} from './codec';
import { longTermKey } from './credentials';

/**
 * A small TURN client (RFC 8656) over UDP, TCP or TLS with the long-term credential mechanism: it
 * answers the 401 challenge and 438 Stale Nonce itself and checks the integrity of signed responses.
 * For tests, drills and benchmarks; browsers bring their own.
 */

export type TurnTransport = 'udp' | 'tcp' | 'tls';

export interface TurnClientOptions {
  host: string;
  port: number;
  transport?: TurnTransport;
  username?: string;
  password?: string;
  /** TLS options (ca, servername, rejectUnauthorized) for transport 'tls'. */
  tls?: tls.ConnectionOptions;
  /** Per-transaction deadline; default 3000 ms. */
  timeoutMs?: number;
  localAddress?: string;
  /** Sign with MESSAGE-INTEGRITY-SHA256 instead of MESSAGE-INTEGRITY. */
  integrity?: StunIntegrity;
}

export interface TurnPeer {
  address: string;
  port: number;
}

/** An error response: its code and reason, and the message itself for tests to inspect. */
export class TurnError extends Error {
  override readonly name = 'TurnError';

  constructor(
    readonly code: number,
    readonly reason: string,
    readonly response: StunMessage,
  ) {
    super(`TURN error ${code} ${reason}`);
  }
}

export interface Allocated {
  relayed: StunMappedAddress;
  mapped: StunMappedAddress;
  lifetimeSec: number;
  reservationToken?: Buffer;
}

export interface AllocateOptions {
  lifetimeSec?: number;
  /** EVEN-PORT; 'reserve' sets the R bit, asking the server to hold the next port too. */
  evenPort?: boolean | 'reserve';
  reservationToken?: Buffer;
  /** REQUESTED-TRANSPORT protocol; default UDP (17). */
  protocol?: number;
  family?: 'IPv4' | 'IPv6';
  /** More attributes, appended as given (tests of unknown or hostile attributes). */
  extra?: StunAttributeValue[];
}

export type AttributesFor = (transactionId: Buffer) => StunAttributeValue[];

type Pending = {
  resolve: (message: StunMessage) => void;
  reject: (err: Error) => void;
  timers: NodeJS.Timeout[];
};

const RTO_MS = 100;

export class TurnClient {
  /** Relayed data: from the peer, with the channel it came on (undefined for a Data indication). */
  onData: ((data: Buffer, peer: TurnPeer, channel: number | undefined) => void) | undefined;
  /** Every message that is not a response to a pending request and not data (tests). */
  onOther: ((frame: Buffer) => void) | undefined;
  /** True once the server closed a TCP or TLS connection. */
  closedByServer = false;

  private readonly pending = new Map<string, Pending>();
  private readonly channels = new Map<number, TurnPeer>();
  private realm: Buffer | undefined;
  private nonce: Buffer | undefined;
  private key: Buffer | undefined;
  private closed = false;
  private streamClosed = false;

  private constructor(
    private readonly options: TurnClientOptions,
    private readonly udp: dgram.Socket | undefined,
    private readonly stream: net.Socket | undefined,
  ) {
    if (udp) udp.on('message', (msg) => this.onFrame(msg));
    if (stream) {
      const framer = new TurnStreamFramer(65_535 + 20);
      stream.on('data', (chunk: Buffer) => {
        if (framer.push(chunk, (frame) => this.onFrame(frame)) !== null) stream.destroy();
      });
      stream.on('close', () => {
        this.streamClosed = true;
        if (!this.closed) this.closedByServer = true;
        this.failAll(new Error('connection closed'));
      });
      stream.on('error', () => undefined);
    }
  }

  static async connect(options: TurnClientOptions): Promise<TurnClient> {
    const transport = options.transport ?? 'udp';
    if (transport === 'udp') {
      const socket = dgram.createSocket(net.isIP(options.host) === 6 ? 'udp6' : 'udp4');
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        socket.bind({ address: options.localAddress, port: 0 }, () => {
          socket.off('error', reject);
          resolve();
        });
      });
      return new TurnClient(options, socket, undefined);
    }
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      const connectOptions = { host: options.host, port: options.port, localAddress: options.localAddress };
      const s =
        transport === 'tls'
          ? tls.connect({ ...connectOptions, ...options.tls }, () => resolve(s))
          : net.connect(connectOptions, () => resolve(s));
      s.once('error', reject);
    });
    socket.setNoDelay(true);
    return new TurnClient(options, undefined, socket);
  }

  /** The client's own address and port, as its socket is bound. */
  get local(): TurnPeer {
    const bound = this.udp ? this.udp.address() : (this.stream?.address() as net.AddressInfo);
    return { address: bound.address, port: bound.port };
  }

  async allocate(options: AllocateOptions = {}): Promise<Allocated> {
    const attributes: StunAttributeValue[] = [
      {
        type: TurnAttribute.RequestedTransport,
        value: Buffer.from([options.protocol ?? TRANSPORT_UDP, 0, 0, 0]),
      },
    ];
    if (options.lifetimeSec !== undefined) attributes.push(lifetime(options.lifetimeSec));
    if (options.evenPort) {
      attributes.push({
        type: TurnAttribute.EvenPort,
        value: Buffer.from([options.evenPort === 'reserve' ? 0x80 : 0]),
      });
    }
    if (options.reservationToken) {
      attributes.push({ type: TurnAttribute.ReservationToken, value: options.reservationToken });
    }
    if (options.family) {
      attributes.push({
        type: TurnAttribute.RequestedAddressFamily,
        value: Buffer.from([options.family === 'IPv6' ? 2 : 1, 0, 0, 0]),
      });
    }
    attributes.push(...(options.extra ?? []));
    const response = await this.request(TurnMethod.Allocate, attributes);
    const relayedView = findAttribute(response, TurnAttribute.XorRelayedAddress);
    const mappedView = findAttribute(response, StunAttribute.XorMappedAddress);
    const lifetimeView = findAttribute(response, TurnAttribute.Lifetime);
    const relayed = relayedView && decodeXorAddress(response, relayedView);
    const mapped = mappedView && decodeXorAddress(response, mappedView);
    if (!relayed || !mapped || lifetimeView?.length !== 4) throw new Error('malformed Allocate response');
    const tokenView = findAttribute(response, TurnAttribute.ReservationToken);
    return {
      relayed,
      mapped,
      lifetimeSec: response.buf.readUInt32BE(lifetimeView.offset),
      reservationToken: tokenView ? Buffer.from(attributeValue(response, tokenView)) : undefined,
    };
  }

  /** Refreshes (or with 0 deletes) the allocation; resolves with the lifetime granted. */
  async refresh(lifetimeSec?: number): Promise<number> {
    const response = await this.request(
      TurnMethod.Refresh,
      lifetimeSec === undefined ? [] : [lifetime(lifetimeSec)],
    );
    const view = findAttribute(response, TurnAttribute.Lifetime);
    return view?.length === 4 ? response.buf.readUInt32BE(view.offset) : -1;
  }

  async createPermission(...addresses: string[]): Promise<void> {
    await this.request(TurnMethod.CreatePermission, (id) =>
      addresses.map((address) => peerAttribute({ address, port: 0 }, id)),
    );
  }

  async channelBind(channel: number, peer: TurnPeer): Promise<void> {
    const number = Buffer.alloc(4);
    number.writeUInt16BE(channel, 0);
    await this.request(TurnMethod.ChannelBind, (id) => [
      { type: TurnAttribute.ChannelNumber, value: number },
      peerAttribute(peer, id),
    ]);
    this.channels.set(channel, peer);
  }

  /** A Send indication: relayed if a permission exists, silently dropped otherwise. */
  send(peer: TurnPeer, data: Buffer): void {
    const transactionId = randomBytes(12);
    this.write(
      encodeStunMessage(stunMessageType(TurnMethod.Send, StunClass.Indication), transactionId, [
        peerAttribute(peer, transactionId),
        { type: TurnAttribute.Data, value: data },
      ]),
    );
  }

  sendChannel(channel: number, data: Buffer): void {
    this.write(encodeChannelData(channel, data, this.stream !== undefined));
  }

  /** Writes bytes as they are (hostile-input tests). */
  sendRaw(bytes: Buffer): void {
    this.write(bytes);
  }

  /**
   * One transaction: signs once the realm and nonce are known, answers a 401 challenge or a 438 once
   * each, rejects with TurnError for any other error response. Attributes that depend on the
   * transaction id (XOR-PEER-ADDRESS of an IPv6 peer) are given as a function of it.
   */
  async request(method: number, attributes: AttributesFor | StunAttributeValue[]): Promise<StunMessage> {
    let challenged = false;
    let stale = false;
    for (;;) {
      const response = await this.transact(method, attributes);
      if (response.cls === StunClass.Success) {
        if (this.key && !verifyIntegrity(response, this.key))
          throw new Error('response integrity check failed');
        return response;
      }
      const errorView = findAttribute(response, StunAttribute.ErrorCode);
      const error = errorView ? decodeErrorCode(response, errorView) : null;
      if (!error) throw new Error('error response without ERROR-CODE');
      const nonceView = findAttribute(response, StunAttribute.Nonce);
      const realmView = findAttribute(response, StunAttribute.Realm);
      const retry =
        nonceView &&
        ((error.code === 401 && !challenged) || (error.code === 438 && !stale)) &&
        this.options.username;
      if (!retry) throw new TurnError(error.code, error.reason, response);
      if (error.code === 401) challenged = true;
      else stale = true;
      this.nonce = Buffer.from(attributeValue(response, nonceView));
      if (realmView) this.realm = Buffer.from(attributeValue(response, realmView));
      this.key = longTermKey(
        this.options.username ?? '',
        this.realm?.toString('utf8') ?? '',
        this.options.password ?? '',
      );
    }
  }

  /** Sends a request (signed when credentials are known) and resolves with the response. */
  private transact(method: number, attributes: AttributesFor | StunAttributeValue[]): Promise<StunMessage> {
    const transactionId = randomBytes(12);
    const all = typeof attributes === 'function' ? attributes(transactionId) : [...attributes];
    if (this.key && this.nonce && this.realm) {
      all.push(
        { type: StunAttribute.Username, value: Buffer.from(this.options.username ?? '', 'utf8') },
        { type: StunAttribute.Realm, value: this.realm },
        { type: StunAttribute.Nonce, value: this.nonce },
      );
    }
    const message = encodeStunMessage(stunMessageType(method, StunClass.Request), transactionId, all, {
      key: this.key,
      integrity: this.options.integrity,
    });
    return new Promise((resolve, reject) => {
      const id = transactionId.toString('hex');
      const timeoutMs = this.options.timeoutMs ?? 3000;
      const pending: Pending = { resolve, reject, timers: [] };
      const settle = () => {
        for (const timer of pending.timers) clearTimeout(timer);
        this.pending.delete(id);
      };
      pending.resolve = (response) => {
        settle();
        resolve(response);
      };
      pending.reject = (err) => {
        settle();
        reject(err);
      };
      this.pending.set(id, pending);
      pending.timers.push(
        setTimeout(() => pending.reject(new Error('TURN transaction timed out')), timeoutMs),
      );
      this.write(message);
      // Over UDP, retransmit with a doubling interval (RFC 8489 §6.2.1) until the deadline.
      for (let at = RTO_MS, rto = RTO_MS; this.udp && at < timeoutMs; rto *= 2, at += rto) {
        pending.timers.push(setTimeout(() => this.write(message), at));
      }
    });
  }

  private write(bytes: Buffer): void {
    if (this.closed) return;
    if (this.udp) this.udp.send(bytes, this.options.port, this.options.host);
    else this.stream?.write(bytes);
  }

  private onFrame(frame: Buffer): void {
    const kind = frame.length > 0 ? frameKind(frame[0]) : null;
    if (kind === 'channel') {
      const parsed = parseChannelData(frame, 65_535 + 4);
      const peer = parsed.ok ? this.channels.get(parsed.channel) : undefined;
      if (parsed.ok && peer) this.onData?.(Buffer.from(parsed.data), peer, parsed.channel);
      else this.onOther?.(frame);
      return;
    }
    const message = kind === 'stun' ? parseStunMessage(frame, TURN_KNOWN_ATTRIBUTES, 65_535 + 20) : null;
    if (!message?.ok) {
      this.onOther?.(frame);
      return;
    }
    const pending = this.pending.get(message.transactionId.toString('hex'));
    if (pending && (message.cls === StunClass.Success || message.cls === StunClass.Error)) {
      pending.resolve(message);
      return;
    }
    if (message.cls === StunClass.Indication && message.method === TurnMethod.Data) {
      const peerView = findAttribute(message, TurnAttribute.XorPeerAddress);
      const dataView = findAttribute(message, TurnAttribute.Data);
      const peer = peerView && decodeXorAddress(message, peerView);
      if (peer && dataView) {
        this.onData?.(Buffer.from(attributeValue(message, dataView)), peer, undefined);
        return;
      }
    }
    this.onOther?.(frame);
  }

  private failAll(err: Error): void {
    for (const pending of [...this.pending.values()]) pending.reject(err);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.failAll(new Error('client closed'));
    return new Promise((resolve) => {
      if (this.udp) this.udp.close(() => resolve());
      else if (this.stream && !this.streamClosed) {
        this.stream.once('close', () => resolve());
        this.stream.destroy();
      } else resolve();
    });
  }
}

/** XOR-PEER-ADDRESS for a message with `transactionId` (an IPv6 address is XORed with it). */
function peerAttribute(peer: TurnPeer, transactionId: Buffer): StunAttributeValue {
  return {
    type: TurnAttribute.XorPeerAddress,
    value: encodeXorAddress(peer.address, peer.port, transactionId),
  };
}

function lifetime(seconds: number): StunAttributeValue {
  const value = Buffer.alloc(4);
  value.writeUInt32BE(seconds >>> 0, 0);
  return { type: TurnAttribute.Lifetime, value };
}
