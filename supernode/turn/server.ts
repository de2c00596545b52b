import { randomBytes } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import {
  attributeValue,
  decodeXorAddress,
  encodeBindingError,
  encodeBindingSuccess,
  encodeErrorCode,
  encodeStunMessage,
  encodeXorAddress,
  findAttribute,
  parseStunMessage,
  STUN_MAX_SOFTWARE_BYTES,
  StunAttribute,
  type StunAttributeValue,
  StunClass,
  type StunIntegrity,
  type StunMessage,
  stunMessageType,
  verifyIntegrity,
} from '../stun/codec';
import { Allocation, type Channel, type ClientLink } from './allocation';
import { type Budget, RelayBudgets } from './budget';
import {
  CHANNEL_MAX,
  CHANNEL_MIN,
  channelDataHeader,
  channelDataPadding,
  FAMILY_IPV4,
  FAMILY_IPV6,
  frameKind,
  parseChannelData,
  TRANSPORT_UDP,
  TURN_ERROR_REASONS,
  TURN_KNOWN_ATTRIBUTES,
  TurnAttribute,
  type TurnErrorCode,
  TurnMethod,
  TurnStreamFramer,
} from './codec';
import {
  longTermKey,
  NonceIssuer,
  type PasswordAlgorithm,
  parseTurnUsername,
  turnPassword,
} from './credentials';
import { loadFastPath } from './native/fastpath';
import {
  emptyTurnStats,
  TURN_DEFAULTS,
  type TurnDropReason,
  type TurnOutcome,
  type TurnServerAddress,
  type TurnServerOptions,
  type TurnServerStats,
} from './options';
import { PeerPolicy } from './peers';
import { type BoundRelay, RelayPortPool } from './ports';
import {
  dgramFactory,
  nativeFactory,
  type RelayEngine,
  type UdpEndpoint,
  type UdpFactory,
} from './udp-endpoint';

export type {
  TurnDropReason,
  TurnOutcome,
  TurnServerAddress,
  TurnServerLog,
  TurnServerOptions,
  TurnServerStats,
} from './options';

/** Room a Data indication needs around its payload (IPv6 peer address, padding, FINGERPRINT). */
const DATA_INDICATION_OVERHEAD = 64;
/** RFC 8656 §7.2 suggests 30 s for a port held by RESERVATION-TOKEN. */
const RESERVATION_MS = 30_000;
/** Attempts to find one port free for both UDP and TCP when `port` is 0. */
const SHARED_PORT_ATTEMPTS = 8;
const MAX_USERNAME_BYTES = 513;

/** An authenticated request's user and the key its response is signed with. */
interface Authenticated {
  username: string;
  userId: string;
  key: Buffer;
  integrity: StunIntegrity;
}

/** A refusal: the code, and attributes beyond ERROR-CODE (REALM and NONCE for 401/438, ...). */
type Refusal = { code: TurnErrorCode; attributes?: StunAttributeValue[] };

class UdpLink implements ClientLink {
  readonly transport = 'udp';
  readonly stream = false;

  constructor(
    private readonly sendDatagram: (
      datagram: Buffer,
      port: number,
      address: string,
      relayed: boolean,
    ) => boolean,
    readonly address: string,
    readonly port: number,
  ) {}

  send(parts: Buffer[], relayed: boolean): boolean {
    // One buffer: dgram's list path costs more than copying a ChannelData header and payload.
    const datagram = parts.length === 1 ? parts[0] : Buffer.concat(parts);
    return this.sendDatagram(datagram, this.port, this.address, relayed);
  }
}

class StreamLink implements ClientLink {
  readonly stream = true;
  readonly key: string;
  allocation: Allocation | undefined;
  /** When the connection last had no allocation (ms), for the idle timeout. */
  idleSince: number;
  closed = false;
  readonly framer: TurnStreamFramer;

  constructor(
    readonly transport: 'tcp' | 'tls',
    readonly socket: net.Socket,
    readonly address: string,
    readonly port: number,
    private readonly maxBuffered: number,
    maxFrameBytes: number,
    now: number,
  ) {
    this.key = `${transport}|${address}|${port}`;
    this.idleSince = now;
    this.framer = new TurnStreamFramer(maxFrameBytes);
  }

  send(parts: Buffer[]): boolean {
    if (this.closed || this.socket.writableLength > this.maxBuffered) return false;
    this.socket.cork();
    for (const part of parts) this.socket.write(part);
    this.socket.uncork();
    return true;
  }
}

/**
 * TURN server (RFC 8656) with the long-term credential mechanism over REST API credentials, on UDP,
 * TCP and TLS, relaying over UDP. Also answers STUN Binding requests, with the same codec as StunServer.
 * Nothing throws out of a socket callback: malformed input is dropped and counted, failures are logged.
 */
export class TurnServer {
  private readonly counts: TurnServerStats = emptyTurnStats();
  /** Which engine relays: 'native' (the fast path, docs/turn.md "Relay engine") or 'dgram'. */
  readonly engine: RelayEngine;
  private readonly udpFactory: UdpFactory;
  private readonly budgets: RelayBudgets;

  private readonly o: Required<
    Omit<
      TurnServerOptions,
      'tlsCert' | 'tlsKey' | 'software' | 'log' | 'onOutcome' | 'nonceSecret' | 'externalAddress' | 'secrets'
    >
  > &
    Pick<TurnServerOptions, 'tlsCert' | 'tlsKey' | 'software' | 'log' | 'onOutcome'>;
  private secrets: readonly string[];
  private readonly externalAddress: string;
  private readonly relayType: 'udp4' | 'udp6';
  private readonly ports: RelayPortPool;
  private readonly peers: PeerPolicy;
  private readonly nonces: NonceIssuer;
  private readonly now: () => number;
  private readonly allocations = new Map<string, Allocation>();
  /** 5-tuples whose Allocate is binding its relay socket. */
  private readonly pending = new Set<string>();
  private readonly users = new Map<string, { allocations: number; bucket: Budget | undefined }>();
  private readonly reservations = new Map<string, { relay: BoundRelay; expiresAt: number }>();
  private readonly links = new Set<StreamLink>();
  /** Data indication transaction ids: a random prefix and a counter, instead of randomBytes per packet. */
  private readonly indicationId = randomBytes(12);
  private indicationCounter = 0;
  private udp: UdpEndpoint | undefined;
  private tcpServer: net.Server | undefined;
  private tlsServer: tls.Server | undefined;
  private sweepTimer: NodeJS.Timeout | undefined;
  private started = false;
  private closing: Promise<void> | undefined;
  private draining: { resolve: (left: { left: number }) => void; timer: NodeJS.Timeout } | undefined;
  private drainRequested = false;

  constructor(options: TurnServerOptions) {
    this.o = { ...TURN_DEFAULTS, ...stripUndefined(options) } as typeof this.o;
    const o = this.o;
    if (options.software && Buffer.byteLength(options.software) > STUN_MAX_SOFTWARE_BYTES) {
      throw new RangeError(`software must be at most ${STUN_MAX_SOFTWARE_BYTES} bytes of UTF-8`);
    }
    if (!o.realm || Buffer.byteLength(o.realm) > 763) throw new RangeError('realm must be 1-763 bytes');
    this.secrets = checkSecrets(options.secrets);
    if (o.minPort > o.maxPort) throw new RangeError('minPort must not exceed maxPort');
    if (o.allocationLifetimeSec <= 0 || o.maxAllocationLifetimeSec < o.allocationLifetimeSec) {
      throw new RangeError('need 0 < allocationLifetimeSec <= maxAllocationLifetimeSec');
    }
    if (Boolean(o.tlsCert) !== Boolean(o.tlsKey)) throw new RangeError('tlsCert and tlsKey go together');
    if (o.maxMessageBytes < 512 || o.maxMessageBytes > 65_535) {
      throw new RangeError('maxMessageBytes must be 512-65535');
    }
    const wildcard = o.host === '0.0.0.0' || o.host === '::';
    o.relayAddress = options.relayAddress ?? o.host;
    this.relayType = net.isIP(o.relayAddress) === 6 ? 'udp6' : 'udp4';
    if (net.isIP(o.relayAddress) === 0) throw new RangeError(`relayAddress ${o.relayAddress} is not an IP`);
    const external = options.externalAddress ?? o.relayAddress;
    if (net.isIP(external) === 0) throw new RangeError(`externalAddress ${external} is not an IP`);
    if (external === '0.0.0.0' || external === '::') {
      // A wildcard cannot be advertised: clients would relay to nowhere. Fail at startup instead.
      throw new RangeError(
        `externalAddress is required when the relay binds a wildcard (${wildcard ? 'host' : 'relayAddress'})`,
      );
    }
    if ((net.isIP(external) === 6) !== (this.relayType === 'udp6')) {
      throw new RangeError('externalAddress and relayAddress must be of the same family');
    }
    this.externalAddress = external;
    this.ports = new RelayPortPool(o.minPort, o.maxPort);
    this.peers = new PeerPolicy(o.allowPeers);
    this.now = o.now;
    this.nonces = new NonceIssuer(o.nonceLifetimeSec, this.now, options.nonceSecret);
    this.udpFactory = this.chooseEngine(o.relayEngine, options.now !== undefined && options.now !== Date.now);
    this.engine = this.udpFactory.engine;
    this.budgets = new RelayBudgets(this.udpFactory.fast, this.now);
    this.udpFactory.fast?.limits(o.maxMessageBytes, o.maxMessageBytes - DATA_INDICATION_OVERHEAD);
  }

  /**
   * 'auto' takes the native engine when its addon loads and the clock is the wall clock (the addon
   * checks route expiry against it); 'native' fails instead of falling back.
   */
  private chooseEngine(wanted: 'auto' | 'native' | 'dgram', customClock: boolean): UdpFactory {
    if (wanted === 'dgram') return dgramFactory;
    const loaded = loadFastPath();
    const why = 'error' in loaded ? loaded.error : customClock ? 'a custom clock (now) is set' : undefined;
    if (why === undefined && 'binding' in loaded) return nativeFactory(loaded.binding);
    if (wanted === 'native') throw new Error(`relayEngine native is not available: ${why}`);
    this.o.log?.info?.({ reason: why }, 'turn relays through dgram');
    return dgramFactory;
  }

  /** Counters; the native engine's relaying is added in when they are read. */
  get stats(): TurnServerStats {
    this.foldFastCounters();
    return this.counts;
  }

  private foldFastCounters(): void {
    const fast = this.udpFactory.fast;
    if (!fast || !this.udp) return;
    const [toPeerPackets, toPeerBytes, toClientPackets, toClientBytes, bandwidth, queueFull] = fast.counters(
      this.udp.fastId,
    );
    const counts = this.counts;
    counts.packetsToPeer += toPeerPackets;
    counts.bytesToPeer += toPeerBytes;
    counts.packetsToClient += toClientPackets;
    counts.bytesToClient += toClientBytes;
    counts.dropped.bandwidth += bandwidth;
    counts.dropped.send_queue_full += queueFull;
  }

  /** Binds UDP, then TCP on the same port, then TLS; rejects on a bind error. Call at most once. */
  async start(): Promise<TurnServerAddress> {
    if (this.started || this.closing) throw new Error('TurnServer can only be started once');
    this.started = true;
    try {
      const { host, port } = this.o;
      let bound = -1;
      for (let attempt = 0; bound === -1; attempt++) {
        const udp = await this.bindUdp(host, port);
        const udpPort = udp.port;
        if (!this.o.tcp) {
          this.udp = udp;
          bound = udpPort;
          break;
        }
        try {
          this.tcpServer = await this.listenStream(net.createServer(), host, udpPort, 'tcp');
          this.udp = udp;
          bound = udpPort;
        } catch (err) {
          udp.close();
          // With port 0 the UDP port may be a TCP port someone holds: pick again.
          if (port !== 0 || attempt + 1 >= SHARED_PORT_ATTEMPTS || !isAddressInUse(err)) throw err;
        }
      }
      const result: TurnServerAddress = { address: this.udp?.address ?? host, port: bound };
      if (this.o.tlsCert && this.o.tlsKey) {
        const server = tls.createServer({
          cert: this.o.tlsCert,
          key: this.o.tlsKey,
          handshakeTimeout: Math.min(this.o.tcpIdleTimeoutMs, 10_000),
        });
        server.on('tlsClientError', () => this.drop('tls_error'));
        this.tlsServer = await this.listenStream(server, host, this.o.tlsPort, 'tls');
        result.tlsPort = (this.tlsServer.address() as net.AddressInfo).port;
      }
      this.sweepTimer = setInterval(this.sweep, this.o.sweepIntervalMs);
      this.sweepTimer.unref();
      return result;
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  /** Replaces the credential secrets (newest first), e.g. when a rotation adds or retires one. */
  updateSecrets(secrets: readonly string[]): void {
    this.secrets = checkSecrets(secrets);
  }

  /**
   * Stops new allocations (Allocate gets 508 Insufficient Capacity, so clients try another server) while
   * existing ones go on being refreshed and relayed. Resolves when none is left, or at the deadline with
   * how many are; close() then ends those.
   */
  drain(deadlineMs: number): Promise<{ left: number }> {
    this.drainRequested = true;
    if (this.draining) return Promise.reject(new Error('already draining'));
    return new Promise((resolve) => {
      const timer = setTimeout(() => this.finishDrain(), deadlineMs);
      timer.unref();
      this.draining = { resolve, timer };
      this.checkDrained();
    });
  }

  /** The relay port range and how many of its ports allocations and reservations hold now. */
  get relayPorts(): { min: number; max: number; inUse: number } {
    return { min: this.ports.min, max: this.ports.max, inUse: this.ports.inUse };
  }

  get isDraining(): boolean {
    return this.drainRequested;
  }

  /** Closes listeners, connections and relay sockets. Safe to call more than once, and before start(). */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    clearInterval(this.sweepTimer);
    for (const allocation of [...this.allocations.values()]) this.removeAllocation(allocation, null);
    for (const [token, { relay }] of this.reservations) {
      this.reservations.delete(token);
      this.releaseRelay(relay);
    }
    for (const link of this.links) this.closeLink(link);
    this.finishDrain();
    const closers: Promise<void>[] = [];
    if (this.udp) {
      this.foldFastCounters(); // before its listener, which holds them, goes
      const udp = this.udp;
      closers.push(new Promise((resolve) => udp.close(resolve)));
    }
    for (const server of [this.tcpServer, this.tlsServer]) {
      if (server) closers.push(new Promise((resolve) => server.close(() => resolve())));
    }
    this.closing = Promise.all(closers).then(() => undefined);
    return this.closing;
  }

  private async bindUdp(host: string, port: number): Promise<UdpEndpoint> {
    // Every client's datagrams arrive on this one socket: a burst from many clients overflows the
    // default receive buffer (~200 KiB) long before the process is busy. The kernel caps the size
    // at net.core.rmem_max / wmem_max.
    const socket = await this.udpFactory.open(host, port, {
      listener: true,
      bufferBytes: this.o.udpBufferBytes,
      maxQueuedSends: this.o.maxQueuedSends,
      onError: (err) => this.o.log?.warn({ err }, 'turn udp socket error'),
      onSendError: this.onSendError,
    });
    socket.onMessage = this.onUdpMessage;
    return socket;
  }

  /** A relay socket; its messages go to the allocation once there is one. */
  private readonly openRelay = (port: number): Promise<UdpEndpoint> =>
    this.udpFactory.open(this.o.relayAddress, port, {
      listener: false,
      bufferBytes: 0,
      maxQueuedSends: this.o.maxQueuedSends,
      onError: (err) => this.o.log?.warn({ err, port }, 'turn relay socket error'),
      onSendError: this.onSendError,
    });

  private listenStream<S extends net.Server>(
    server: S,
    host: string,
    port: number,
    transport: 'tcp' | 'tls',
  ): Promise<S> {
    // Counts raw connections, so unauthenticated (or never-handshaking) sockets are bounded too.
    server.maxConnections = this.o.maxTcpConnections;
    server.on(transport === 'tls' ? 'secureConnection' : 'connection', (socket: net.Socket) =>
      this.onStreamConnection(socket, transport),
    );
    server.on('drop', () => this.drop('tcp_limit'));
    return new Promise((resolve, reject) => {
      const onError = (err: Error) => reject(err);
      server.once('error', onError);
      server.listen({ host, port, exclusive: true }, () => {
        server.off('error', onError);
        server.on('error', (err) => this.o.log?.warn({ err }, `turn ${transport} server error`));
        resolve(server);
      });
    });
  }

  // ---- transports ----------------------------------------------------------------------------

  private readonly onUdpMessage = (msg: Buffer, address: string, port: number): void => {
    try {
      if (port === 0) {
        this.drop('bad_source_port');
        return;
      }
      const key = `udp|${address}|${port}`;
      const allocation = this.allocations.get(key);
      const kind = msg.length === 0 ? 'stun' : frameKind(msg[0]);
      if (kind === 'channel') {
        this.onChannelData(allocation, msg);
        return;
      }
      if (kind === null) {
        this.drop('unknown_framing');
        return;
      }
      this.onStunFrame(msg, key, allocation?.link ?? new UdpLink(this.sendFromListener, address, port));
    } catch (err) {
      this.internalError(err);
    }
  };

  private onStreamConnection(socket: net.Socket, transport: 'tcp' | 'tls'): void {
    if (this.closing || this.links.size >= this.o.maxTcpConnections) {
      socket.destroy();
      this.drop('tcp_limit');
      return;
    }
    const address = socket.remoteAddress;
    const port = socket.remotePort;
    if (!address || !port) {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true);
    const link = new StreamLink(
      transport,
      socket,
      address,
      port,
      this.o.maxTcpBufferedBytes,
      this.o.maxMessageBytes,
      this.now(),
    );
    this.links.add(link);
    this.counts.tcpConnections++;
    const onFrame = (frame: Buffer, kind: 'stun' | 'channel') => {
      if (link.closed) return;
      if (kind === 'channel') this.onChannelData(link.allocation, frame);
      else this.onStunFrame(frame, link.key, link);
    };
    socket.on('data', (chunk: Buffer) => {
      try {
        const failure = link.framer.push(chunk, onFrame);
        if (failure !== null) {
          this.drop('tcp_framing');
          this.closeLink(link);
        }
      } catch (err) {
        this.internalError(err);
        this.closeLink(link);
      }
    });
    socket.on('error', () => this.closeLink(link));
    socket.on('close', () => this.closeLink(link));
  }

  private closeLink(link: StreamLink): void {
    if (link.closed) return;
    link.closed = true;
    this.links.delete(link);
    this.counts.tcpConnections--;
    link.socket.destroy();
    if (link.allocation) this.removeAllocation(link.allocation, 'deleted');
  }

  private readonly sendFromListener = (datagram: Buffer, port: number, address: string, relayed: boolean) =>
    this.udp ? this.udp.send(datagram, port, address, relayed) : false;

  private readonly onSendError = (err: Error): void => {
    this.counts.sendErrors++;
    this.o.log?.debug?.({ err }, 'turn send failed');
  };

  // ---- STUN messages -------------------------------------------------------------------------

  private onStunFrame(buf: Buffer, key: string, link: ClientLink): void {
    const message = parseStunMessage(buf, TURN_KNOWN_ATTRIBUTES, this.o.maxMessageBytes);
    if (!message.ok) {
      this.drop(message.reason as TurnDropReason);
      // A stream that carries a broken STUN message cannot be resynchronised.
      if (link instanceof StreamLink) this.closeLink(link);
      return;
    }
    if (message.cls === StunClass.Request) {
      this.onRequest(message, key, link);
    } else if (message.cls === StunClass.Indication && message.method === TurnMethod.Send) {
      this.onSendIndication(message, this.allocations.get(key));
    } else {
      this.drop('unexpected_message');
    }
  }

  private onRequest(message: StunMessage, key: string, link: ClientLink): void {
    if (message.method === TurnMethod.Binding) {
      this.answerBinding(message, link);
      return;
    }
    const turnMethod =
      message.method === TurnMethod.Allocate ||
      message.method === TurnMethod.Refresh ||
      message.method === TurnMethod.CreatePermission ||
      message.method === TurnMethod.ChannelBind;
    if (!turnMethod) {
      this.refuse(link, message, { code: 400 });
      return;
    }
    const auth = this.authenticate(message, link.address);
    if ('code' in auth) {
      this.refuse(link, message, auth);
      return;
    }
    if (message.unknownRequired.length > 0) {
      const value = Buffer.alloc(2 * message.unknownRequired.length);
      for (const [i, type] of message.unknownRequired.entries()) value.writeUInt16BE(type, 2 * i);
      this.refuse(
        link,
        message,
        { code: 420, attributes: [{ type: StunAttribute.UnknownAttributes, value }] },
        auth,
      );
      return;
    }
    if (message.method === TurnMethod.Allocate) {
      this.onAllocate(message, key, link, auth).catch((err) => this.internalError(err));
      return;
    }
    const allocation = this.allocations.get(key);
    if (!allocation) {
      this.refuse(link, message, { code: 437 }, auth);
      return;
    }
    if (allocation.username !== auth.username) {
      this.refuse(link, message, { code: 441 }, auth);
      return;
    }
    const result =
      message.method === TurnMethod.Refresh
        ? this.onRefresh(message, allocation)
        : message.method === TurnMethod.CreatePermission
          ? this.onCreatePermission(message, allocation)
          : this.onChannelBind(message, allocation);
    if ('code' in result) {
      this.refuse(link, message, result, auth);
      return;
    }
    this.respond(link, message, result.attributes, auth);
    if (message.method !== TurnMethod.Refresh) this.report('answered');
  }

  private answerBinding(message: StunMessage, link: ClientLink): void {
    // Binding needs no credentials (docs/stun.md); an unknown attribute of RFC 8489's gets its 420.
    const reply =
      message.unknownRequired.length > 0
        ? encodeBindingError(
            Buffer.from(message.transactionId),
            420,
            message.unknownRequired,
            this.o.software,
          )
        : encodeBindingSuccess(
            Buffer.from(message.transactionId),
            link.address,
            link.port,
            net.isIP(link.address) === 6 ? 'IPv6' : 'IPv4',
            this.o.software,
          );
    this.sendToClient(link, [reply]);
    if (message.unknownRequired.length === 0) {
      this.report('answered');
      return;
    }
    this.counts.refusals[420]++;
    this.report('refused', 420);
  }

  /**
   * The long-term credential mechanism (RFC 8489 §9.2.4) over REST API usernames. Secrets are tried
   * newest first, so credentials minted under the previous secret keep working during a rotation.
   */
  private authenticate(message: StunMessage, ip: string): Authenticated | Refusal {
    if (message.integrityAt === -1 && message.integritySha256At === -1) {
      return this.challenge(401, ip);
    }
    const username = findAttribute(message, StunAttribute.Username);
    const realm = findAttribute(message, StunAttribute.Realm);
    const nonce = findAttribute(message, StunAttribute.Nonce);
    if (!username) {
      // A USERHASH cannot be reversed to a REST username; anything else is malformed.
      return findAttribute(message, StunAttribute.UserHash) ? this.challenge(401, ip) : { code: 400 };
    }
    if (!realm || !nonce || username.length > MAX_USERNAME_BYTES) return { code: 400 };
    if (attributeValue(message, realm).toString('utf8') !== this.o.realm) {
      return this.challenge(401, ip);
    }
    if (!this.nonces.check(attributeValue(message, nonce).toString('latin1'), ip)) {
      return this.challenge(438, ip);
    }
    let algorithm: PasswordAlgorithm = 'md5';
    const passwordAlgorithm = findAttribute(message, StunAttribute.PasswordAlgorithm);
    if (passwordAlgorithm) {
      const value = attributeValue(message, passwordAlgorithm);
      const id = value.length >= 4 ? value.readUInt16BE(0) : 0;
      if (id !== 1 && id !== 2) return { code: 400 };
      algorithm = id === 2 ? 'sha256' : 'md5';
    }
    const name = attributeValue(message, username).toString('utf8');
    const parsed = parseTurnUsername(name);
    // Expired or not ours: a new challenge, so a client with fresh credentials can retry.
    if (!parsed || parsed.expirySec * 1000 < this.now()) {
      return this.challenge(401, ip);
    }
    for (const secret of this.secrets) {
      const key = longTermKey(name, this.o.realm, turnPassword(secret, name), algorithm);
      const integrity = verifyIntegrity(message, key);
      if (integrity) return { username: name, userId: parsed.userId, key, integrity };
    }
    return this.challenge(401, ip);
  }

  private challenge(code: 401 | 438, ip: string): Refusal {
    return {
      code,
      attributes: [
        { type: StunAttribute.Realm, value: Buffer.from(this.o.realm, 'utf8') },
        { type: StunAttribute.Nonce, value: Buffer.from(this.nonces.issue(ip), 'latin1') },
      ],
    };
  }

  // ---- Allocate, Refresh, CreatePermission, ChannelBind --------------------------------------

  private async onAllocate(message: StunMessage, key: string, link: ClientLink, auth: Authenticated) {
    const existing = this.allocations.get(key);
    if (existing) {
      // A retransmission gets the original answer; anything else on this 5-tuple is a mismatch.
      if (existing.transactionId.equals(message.transactionId) && existing.response) {
        this.sendToClient(link, [existing.response]);
        return;
      }
      this.refuse(link, message, { code: 437 }, auth);
      return;
    }
    if (this.pending.has(key)) {
      this.drop('retransmission');
      return;
    }

    const transport = findAttribute(message, TurnAttribute.RequestedTransport);
    if (transport?.length !== 4) {
      this.refuse(link, message, { code: 400 }, auth);
      return;
    }
    if (message.buf[transport.offset] !== TRANSPORT_UDP) {
      this.refuse(link, message, { code: 442 }, auth);
      return;
    }
    const evenPort = findAttribute(message, TurnAttribute.EvenPort);
    const token = findAttribute(message, TurnAttribute.ReservationToken);
    const family = findAttribute(message, TurnAttribute.RequestedAddressFamily);
    if (
      (token && (evenPort || family)) ||
      (token && token.length !== 8) ||
      (evenPort && evenPort.length < 1)
    ) {
      this.refuse(link, message, { code: 400 }, auth);
      return;
    }
    if (family) {
      const code = family.length === 4 ? message.buf[family.offset] : -1;
      if (code !== FAMILY_IPV4 && code !== FAMILY_IPV6) {
        this.refuse(link, message, { code: 400 }, auth);
        return;
      }
      if ((code === FAMILY_IPV6) !== (this.relayType === 'udp6')) {
        this.refuse(link, message, { code: 440 }, auth);
        return;
      }
    }
    const requested = this.lifetimeOf(message);
    if (requested === null) {
      this.refuse(link, message, { code: 400 }, auth);
      return;
    }
    // Zero deletes an allocation; asked of Allocate it means nothing, so the default applies.
    const lifetime = requested === 0 ? this.o.allocationLifetimeSec * 1000 : requested;
    const user = this.users.get(auth.userId);
    if ((user?.allocations ?? 0) >= this.o.maxAllocationsPerUser) {
      this.refuse(link, message, { code: 486 }, auth);
      return;
    }
    const inUse = this.allocations.size + this.pending.size + this.reservations.size;
    if (this.drainRequested || this.closing || inUse >= this.o.maxAllocations) {
      this.refuse(link, message, { code: 508 }, auth);
      return;
    }

    this.pending.add(key);
    this.userEntry(auth.userId).allocations++;
    let relays: BoundRelay[] | null;
    try {
      if (token) {
        const reserved = this.takeReservation(attributeValue(message, token).toString('hex'));
        relays = reserved ? [reserved] : null;
      } else {
        const pair = evenPort !== undefined && (message.buf[evenPort.offset] & 0x80) !== 0;
        relays = await this.ports.bind({ even: !!evenPort, pair }, this.openRelay);
      }
    } finally {
      this.pending.delete(key);
    }
    const gone = this.closing || (link instanceof StreamLink && (link.closed || link.allocation));
    if (!relays || gone) {
      this.releaseUser(auth.userId);
      for (const relay of relays ?? []) this.releaseRelay(relay);
      if (!relays && !gone) this.refuse(link, message, { code: 508 }, auth);
      this.checkDrained();
      return;
    }

    const [relay, reserved] = relays;
    const now = this.now();
    const responseAttributes: StunAttributeValue[] = [
      {
        type: TurnAttribute.XorRelayedAddress,
        value: encodeXorAddress(this.externalAddress, relay.port, message.transactionId),
      },
      { type: TurnAttribute.Lifetime, value: uint32(Math.ceil(lifetime / 1000)) },
    ];
    if (reserved) {
      const tokenBytes = randomBytes(8);
      this.reservations.set(tokenBytes.toString('hex'), { relay: reserved, expiresAt: now + RESERVATION_MS });
      responseAttributes.push({ type: TurnAttribute.ReservationToken, value: tokenBytes });
    }
    responseAttributes.push({
      type: StunAttribute.XorMappedAddress,
      value: encodeXorAddress(link.address, link.port, message.transactionId),
    });
    const allocation = new Allocation(
      key,
      link,
      auth.username,
      auth.userId,
      relay.socket,
      relay.port,
      this.relayType === 'udp6' ? 'IPv6' : 'IPv4',
      Buffer.from(message.transactionId),
      this.budgets.create(this.o.allocationBandwidth),
      lifetime,
      now,
    );
    relay.socket.onMessage = (msg, address, port) => {
      try {
        this.onPeerDatagram(allocation, msg, address, port);
      } catch (err) {
        this.internalError(err);
      }
    };
    this.allocations.set(key, allocation);
    if (link instanceof StreamLink) link.allocation = allocation;
    this.counts.allocationsActive++;
    this.counts.allocationsCreated++;
    allocation.response = this.respond(link, message, responseAttributes, auth);
    this.report('allocated');
  }

  /**
   * RFC 8656 §7.2/§7.3: the requested lifetime capped at the maximum, but never below the default;
   * 0 means delete (Refresh only). Null when LIFETIME is malformed.
   */
  private lifetimeOf(message: StunMessage): number | null {
    const attribute = findAttribute(message, TurnAttribute.Lifetime);
    const fallback = this.o.allocationLifetimeSec * 1000;
    if (!attribute) return fallback;
    if (attribute.length !== 4) return null;
    const requested = message.buf.readUInt32BE(attribute.offset);
    if (requested === 0) return 0;
    return Math.max(Math.min(requested * 1000, this.o.maxAllocationLifetimeSec * 1000), fallback);
  }

  private onRefresh(
    message: StunMessage,
    allocation: Allocation,
  ): Refusal | { attributes: StunAttributeValue[] } {
    const family = findAttribute(message, TurnAttribute.RequestedAddressFamily);
    if (family) {
      const wanted = family.length === 4 ? message.buf[family.offset] : -1;
      if (wanted !== (allocation.family === 'IPv6' ? FAMILY_IPV6 : FAMILY_IPV4)) return { code: 443 };
    }
    const lifetime = this.lifetimeOf(message);
    if (lifetime === null) return { code: 400 };
    if (lifetime === 0) {
      this.removeAllocation(allocation, 'deleted');
    } else {
      allocation.expiresAt = this.now() + lifetime;
      this.report('refreshed');
    }
    return { attributes: [{ type: TurnAttribute.Lifetime, value: uint32(Math.ceil(lifetime / 1000)) }] };
  }

  /** A peer address from XOR-PEER-ADDRESS: 400 when malformed, 443 for the wrong family, 403 if refused. */
  private peerOf(
    message: StunMessage,
    view: { type: number; offset: number; length: number },
    allocation: Allocation,
  ): Refusal | { address: string; port: number } {
    const peer = decodeXorAddress(message, view);
    if (!peer) return { code: 400 };
    if (peer.family !== allocation.family) return { code: 443 };
    if (!this.peers.allows(peer.address)) return { code: 403 };
    return peer;
  }

  private onCreatePermission(
    message: StunMessage,
    allocation: Allocation,
  ): Refusal | { attributes: StunAttributeValue[] } {
    const addresses: string[] = [];
    for (const view of message.attributes) {
      if (view.type !== TurnAttribute.XorPeerAddress) continue;
      const peer = this.peerOf(message, view, allocation);
      if ('code' in peer) return peer;
      addresses.push(peer.address);
    }
    if (addresses.length === 0) return { code: 400 };
    const fresh = new Set(addresses.filter((address) => !allocation.permissions.has(address)));
    if (allocation.permissions.size + fresh.size > this.o.maxPermissionsPerAllocation) return { code: 508 };
    const expiresAt = this.now() + this.o.permissionLifetimeSec * 1000;
    for (const address of addresses) allocation.permissions.set(address, expiresAt);
    this.counts.permissionsActive += fresh.size;
    const renewed = new Set(addresses);
    for (const channel of allocation.channels.values()) {
      if (renewed.has(channel.peerAddress)) this.route(allocation, channel);
    }
    return { attributes: [] };
  }

  private onChannelBind(
    message: StunMessage,
    allocation: Allocation,
  ): Refusal | { attributes: StunAttributeValue[] } {
    const numberView = findAttribute(message, TurnAttribute.ChannelNumber);
    const peerView = findAttribute(message, TurnAttribute.XorPeerAddress);
    if (numberView?.length !== 4 || !peerView) return { code: 400 };
    const number = message.buf.readUInt16BE(numberView.offset);
    if (number < CHANNEL_MIN || number > CHANNEL_MAX) return { code: 400 };
    const peer = this.peerOf(message, peerView, allocation);
    if ('code' in peer) return peer;
    if (peer.port === 0) return { code: 400 };
    const peerKey = `${peer.address}|${peer.port}`;
    const bound = allocation.channels.get(number);
    const boundToPeer = allocation.peerChannels.get(peerKey);
    // RFC 8656 §11.2: a channel is bound to one peer and a peer to one channel, for the binding's life.
    if ((bound && bound.peerKey !== peerKey) || (boundToPeer && boundToPeer.number !== number)) {
      return { code: 400 };
    }
    const newPermission = !allocation.permissions.has(peer.address);
    if (!bound && allocation.channels.size >= this.o.maxChannelsPerAllocation) return { code: 508 };
    if (newPermission && allocation.permissions.size >= this.o.maxPermissionsPerAllocation)
      return { code: 508 };
    const now = this.now();
    if (bound) {
      bound.expiresAt = now + this.o.channelLifetimeSec * 1000;
    } else {
      allocation.bind({
        number,
        peerAddress: peer.address,
        peerPort: peer.port,
        peerKey,
        expiresAt: now + this.o.channelLifetimeSec * 1000,
      });
      this.counts.channelsActive++;
    }
    // A channel binding also installs or refreshes the permission for the peer's address.
    allocation.permissions.set(peer.address, now + this.o.permissionLifetimeSec * 1000);
    if (newPermission) this.counts.permissionsActive++;
    const channel = allocation.channels.get(number);
    if (channel) this.route(allocation, channel);
    return { attributes: [] };
  }

  /**
   * Installs (or renews) a channel's route in the native fast path, which then relays its ChannelData
   * both ways until the binding or its permission expires, whichever comes first. UDP clients only:
   * stream clients' data is framed in JavaScript.
   */
  private route(allocation: Allocation, channel: Channel): void {
    const fast = this.udpFactory.fast;
    const listener = this.udp;
    if (!fast || !listener || allocation.link.transport !== 'udp') return;
    const permission = allocation.permissions.get(channel.peerAddress) ?? 0;
    fast.route(
      listener.fastId,
      allocation.link.address,
      allocation.link.port,
      channel.number,
      allocation.relay.fastId,
      channel.peerAddress,
      channel.peerPort,
      Math.min(channel.expiresAt, permission),
      allocation.bucket?.fastId ?? -1,
      this.users.get(allocation.userId)?.bucket?.fastId ?? -1,
    );
  }

  // ---- relaying --------------------------------------------------------------------------------

  private onSendIndication(message: StunMessage, allocation: Allocation | undefined): void {
    if (!allocation) {
      this.drop('no_allocation');
      return;
    }
    const peerView = findAttribute(message, TurnAttribute.XorPeerAddress);
    const dataView = findAttribute(message, TurnAttribute.Data);
    // Indications are never answered, so an unknown required attribute means discard (RFC 8489 §6.3.2).
    if (!peerView || !dataView || message.unknownRequired.length > 0) {
      this.drop('bad_indication');
      return;
    }
    const peer = decodeXorAddress(message, peerView);
    if (!peer || peer.port === 0) {
      this.drop('bad_indication');
      return;
    }
    const now = this.now();
    // Permissions exist only for allowed peers, so this also refuses relays to private addresses.
    if (!allocation.hasPermission(peer.address, now)) {
      this.drop('no_permission');
      return;
    }
    this.relayToPeer(allocation, attributeValue(message, dataView), peer.address, peer.port, now);
  }

  private onChannelData(allocation: Allocation | undefined, buf: Buffer): void {
    if (!allocation) {
      this.drop('no_allocation');
      return;
    }
    const parsed = parseChannelData(buf, this.o.maxMessageBytes);
    if (!parsed.ok) {
      this.drop(parsed.reason === 'too_large' ? 'too_large' : 'bad_channel_data');
      return;
    }
    const now = this.now();
    const channel = allocation.liveChannel(parsed.channel, now);
    if (!channel) {
      this.drop('unbound_channel');
      return;
    }
    if (!allocation.hasPermission(channel.peerAddress, now)) {
      this.drop('no_permission');
      return;
    }
    this.relayToPeer(allocation, parsed.data, channel.peerAddress, channel.peerPort, now);
  }

  private relayToPeer(
    allocation: Allocation,
    data: Buffer,
    address: string,
    port: number,
    now: number,
  ): void {
    if (!this.withinBandwidth(allocation, data.length, now)) {
      this.drop('bandwidth');
      return;
    }
    if (!allocation.relay.send(data, port, address, true)) {
      this.drop('send_queue_full');
      return;
    }
    this.counts.packetsToPeer++;
    this.counts.bytesToPeer += data.length;
  }

  private onPeerDatagram(allocation: Allocation, msg: Buffer, address: string, port: number): void {
    const now = this.now();
    if (!allocation.hasPermission(address, now)) {
      this.drop('no_permission');
      return;
    }
    if (msg.length > this.o.maxMessageBytes - DATA_INDICATION_OVERHEAD) {
      this.drop('too_large');
      return;
    }
    if (!this.withinBandwidth(allocation, msg.length, now)) {
      this.drop('bandwidth');
      return;
    }
    const link = allocation.link;
    const channel = allocation.peerChannels.get(`${address}|${port}`);
    let parts: Buffer[];
    if (channel && channel.expiresAt > now) {
      parts = [channelDataHeader(channel.number, msg.length), msg];
      if (link.stream) parts.push(channelDataPadding(msg.length));
    } else {
      const transactionId = this.indicationId;
      transactionId.writeUInt32BE(this.indicationCounter++ >>> 0, 8);
      parts = [
        encodeStunMessage(stunMessageType(TurnMethod.Data, StunClass.Indication), transactionId, [
          {
            type: TurnAttribute.XorPeerAddress,
            value: encodeXorAddress(address, port, transactionId),
          },
          { type: TurnAttribute.Data, value: msg },
        ]),
      ];
    }
    if (!link.send(parts, true)) {
      this.drop('send_queue_full');
      return;
    }
    this.counts.packetsToClient++;
    this.counts.bytesToClient += msg.length;
  }

  /** Takes `bytes` from the allocation's and the user's buckets only if both have them. */
  private withinBandwidth(allocation: Allocation, bytes: number, now: number): boolean {
    return this.budgets.spend(allocation.bucket, this.users.get(allocation.userId)?.bucket, bytes, now);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  private userEntry(userId: string): { allocations: number; bucket: Budget | undefined } {
    let entry = this.users.get(userId);
    if (!entry) {
      entry = { allocations: 0, bucket: this.budgets.create(this.o.userBandwidth) };
      this.users.set(userId, entry);
    }
    return entry;
  }

  private releaseUser(userId: string): void {
    const entry = this.users.get(userId);
    if (!entry) return;
    // Forgotten at zero, so the map is bounded by the allocations that exist.
    if (--entry.allocations <= 0) {
      this.users.delete(userId);
      this.budgets.release(entry.bucket);
    }
  }

  private releaseRelay(relay: BoundRelay): void {
    relay.socket.close();
    this.ports.release(relay.port);
  }

  private takeReservation(token: string): BoundRelay | undefined {
    const reservation = this.reservations.get(token);
    if (!reservation) return undefined;
    this.reservations.delete(token);
    if (reservation.expiresAt > this.now()) return reservation.relay;
    this.releaseRelay(reservation.relay);
    return undefined;
  }

  /** `outcome` null: the server is closing, nothing is counted or reported. */
  private removeAllocation(allocation: Allocation, outcome: 'expired' | 'deleted' | null): void {
    if (this.allocations.get(allocation.key) !== allocation) return;
    this.allocations.delete(allocation.key);
    this.counts.allocationsActive--;
    this.counts.permissionsActive -= allocation.permissions.size;
    this.counts.channelsActive -= allocation.channels.size;
    // Closing the relay also removes its fast-path routes.
    allocation.relay.close();
    this.ports.release(allocation.relayPort);
    this.budgets.release(allocation.bucket);
    this.releaseUser(allocation.userId);
    const link = allocation.link;
    if (link instanceof StreamLink && link.allocation === allocation) {
      link.allocation = undefined;
      link.idleSince = this.now();
    }
    if (outcome) {
      if (outcome === 'expired') this.counts.allocationsExpired++;
      else this.counts.allocationsDeleted++;
      this.report(outcome);
    }
    this.checkDrained();
  }

  private readonly sweep = (): void => {
    try {
      const now = this.now();
      for (const allocation of [...this.allocations.values()]) {
        if (allocation.expiresAt <= now) {
          this.removeAllocation(allocation, 'expired');
          continue;
        }
        const pruned = allocation.prune(now);
        this.counts.permissionsActive -= pruned.permissions;
        this.counts.channelsActive -= pruned.channels;
      }
      for (const [token, reservation] of this.reservations) {
        if (reservation.expiresAt > now) continue;
        this.reservations.delete(token);
        this.releaseRelay(reservation.relay);
      }
      for (const link of [...this.links]) {
        if (!link.allocation && now - link.idleSince >= this.o.tcpIdleTimeoutMs) {
          this.drop('tcp_idle');
          this.closeLink(link);
        }
      }
      this.checkDrained();
    } catch (err) {
      this.internalError(err);
    }
  };

  private checkDrained(): void {
    if (this.draining && this.allocations.size + this.pending.size === 0) this.finishDrain();
  }

  private finishDrain(): void {
    const draining = this.draining;
    if (!draining) return;
    this.draining = undefined;
    clearTimeout(draining.timer);
    draining.resolve({ left: this.allocations.size });
  }

  // ---- responses -------------------------------------------------------------------------------

  /** Success response, signed when the request was authenticated; returns the bytes sent. */
  private respond(
    link: ClientLink,
    message: StunMessage,
    attributes: StunAttributeValue[],
    auth: Authenticated | undefined,
  ): Buffer {
    const reply = this.encodeReply(message, StunClass.Success, attributes, auth);
    this.sendToClient(link, [reply]);
    return reply;
  }

  private refuse(link: ClientLink, message: StunMessage, refusal: Refusal, auth?: Authenticated): void {
    const attributes: StunAttributeValue[] = [
      {
        type: StunAttribute.ErrorCode,
        value: encodeErrorCode(refusal.code, TURN_ERROR_REASONS[refusal.code]),
      },
      ...(refusal.attributes ?? []),
    ];
    this.sendToClient(link, [this.encodeReply(message, StunClass.Error, attributes, auth)]);
    this.counts.refusals[refusal.code]++;
    this.report('refused', refusal.code);
  }

  private encodeReply(
    message: StunMessage,
    cls: typeof StunClass.Success | typeof StunClass.Error,
    attributes: StunAttributeValue[],
    auth: Authenticated | undefined,
  ): Buffer {
    const all = this.o.software
      ? [...attributes, { type: StunAttribute.Software, value: Buffer.from(this.o.software, 'utf8') }]
      : attributes;
    return encodeStunMessage(stunMessageType(message.method, cls), Buffer.from(message.transactionId), all, {
      key: auth?.key,
      integrity: auth?.integrity,
    });
  }

  private sendToClient(link: ClientLink, parts: Buffer[]): void {
    if (!link.send(parts, false)) this.drop('send_queue_full');
  }

  private drop(reason: TurnDropReason): void {
    this.counts.dropped[reason]++;
    this.report('dropped', reason);
  }

  private internalError(err: unknown): void {
    this.o.log?.warn({ err }, 'turn message handling failed');
    this.drop('internal_error');
  }

  /** A throwing observer must not change what the server does. */
  private report(outcome: TurnOutcome, detail?: TurnErrorCode | TurnDropReason): void {
    if (!this.o.onOutcome) return;
    try {
      this.o.onOutcome(outcome, detail);
    } catch (err) {
      this.o.log?.warn({ err }, 'turn onOutcome callback failed');
    }
  }
}

function uint32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0, 0);
  return out;
}

function checkSecrets(secrets: readonly string[]): readonly string[] {
  if (!Array.isArray(secrets) || secrets.length === 0 || secrets.some((s) => typeof s !== 'string' || !s)) {
    throw new RangeError('secrets must be a non-empty list of non-empty strings');
  }
  return [...secrets];
}

function isAddressInUse(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'EADDRINUSE';
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}
