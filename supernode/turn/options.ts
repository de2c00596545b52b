import type { LogSink } from '../shared/log';
import type { StunDropReason } from '../stun/codec';
import { TURN_ERROR_CODES, type TurnErrorCode } from './codec';

/** The TurnServer's constructor options, what it counts, and the defaults (docs/turn.md#configuration). */

export type TurnServerLog = LogSink<'warn'> & Partial<LogSink<'debug' | 'info'>>;

/** What happened to one message or allocation, for metrics. Relayed packets are counted in `stats` only. */
export type TurnOutcome =
  | 'allocated'
  | 'refreshed'
  | 'deleted'
  | 'expired'
  | 'answered'
  | 'refused'
  | 'dropped';

export type TurnDropReason =
  | Exclude<StunDropReason, 'not_binding_request'>
  /** First byte neither STUN nor ChannelData (RFC 7983), e.g. DTLS sent to the wrong port. */
  | 'unknown_framing'
  /** ChannelData whose length field exceeds the datagram. */
  | 'bad_channel_data'
  /** Send indication or ChannelData from a 5-tuple without an allocation. */
  | 'no_allocation'
  | 'unbound_channel'
  /** To or from a peer without a live permission, Send indications to refused addresses included. */
  | 'no_permission'
  /** Over the allocation's or the user's bytes/s. */
  | 'bandwidth'
  /** Send indication without XOR-PEER-ADDRESS or DATA, or with an unknown required attribute. */
  | 'bad_indication'
  /** Responses, and indications other than Send, sent by a client. */
  | 'unexpected_message'
  /** An Allocate retransmitted while its relay socket is still being bound. */
  | 'retransmission'
  | 'send_queue_full'
  | 'bad_source_port'
  | 'internal_error'
  /** A TCP or TLS connection refused at `maxTcpConnections`. */
  | 'tcp_limit'
  /** A TCP or TLS connection closed for garbage framing or an oversized message. */
  | 'tcp_framing'
  /** A TCP or TLS connection closed after `tcpIdleTimeoutMs` without an allocation. */
  | 'tcp_idle'
  | 'tls_error';

export interface TurnServerOptions {
  /** Address the UDP, TCP and TLS listeners bind; default 0.0.0.0. */
  host?: string;
  /** UDP and TCP port; default 3478. 0 picks one port free for both; start() reports it. */
  port?: number;
  /** Listen on TCP too (RFC 8656 over TCP, relayed transport UDP); default true. */
  tcp?: boolean;
  /** PEM certificate chain and key: with both, TURN over TLS is served on `tlsPort`. */
  tlsCert?: string | Buffer;
  tlsKey?: string | Buffer;
  /** TLS port; default 5349. */
  tlsPort?: number;
  /** Address relay sockets bind; default `host` (0.0.0.0 / :: when `host` is a wildcard). */
  relayAddress?: string;
  /** Address advertised in XOR-RELAYED-ADDRESS (e.g. the instance's public IP); default `relayAddress`. */
  externalAddress?: string;
  /** Relay port range, inclusive; default 49152-65535. */
  minPort?: number;
  maxPort?: number;
  realm: string;
  /** Shared secrets of the REST API credential scheme, newest first (several during a rotation). */
  secrets: readonly string[];
  /** Default 600 s. After it a request gets 438 Stale Nonce with a fresh nonce. */
  nonceLifetimeSec?: number;
  /** HMAC key for nonces; default random per process (a nonce is only ever checked by its issuer). */
  nonceSecret?: Buffer;
  /** Allocation lifetime granted by default, and the least granted; default 600 s. */
  allocationLifetimeSec?: number;
  /** Longest lifetime granted; default 3600 s. */
  maxAllocationLifetimeSec?: number;
  /** Default 300 s (RFC 8656 fixes it; shorter only for tests). */
  permissionLifetimeSec?: number;
  /** Default 600 s (RFC 8656 fixes it; shorter only for tests). */
  channelLifetimeSec?: number;
  /** Allocations on this server (508 beyond); default 10,000. Each holds a UDP socket (a descriptor). */
  maxAllocations?: number;
  /** Allocations per user id (486 beyond); default 16. */
  maxAllocationsPerUser?: number;
  /** Relayed bytes/s per allocation, both ways together, 1 s of burst; 0 = unlimited. Default 1,250,000. */
  allocationBandwidth?: number;
  /** Relayed bytes/s per user id over all their allocations; 0 = unlimited. Default 2,500,000. */
  userBandwidth?: number;
  /** Default 128 each (508 beyond); bounds the memory one allocation can claim. */
  maxPermissionsPerAllocation?: number;
  maxChannelsPerAllocation?: number;
  /** TCP plus TLS connections; default 10,000. */
  maxTcpConnections?: number;
  /** A TCP or TLS connection with no allocation for this long is closed; default 30,000 ms. */
  tcpIdleTimeoutMs?: number;
  /** Bytes buffered for one TCP client beyond which relayed packets to it are dropped; default 256 KiB. */
  maxTcpBufferedBytes?: number;
  /** Largest STUN or ChannelData message taken; relayed payloads get this less 64. Default 4096. */
  maxMessageBytes?: number;
  /** Datagrams waiting in one UDP socket's send queue beyond which more are dropped; default 1024. */
  maxQueuedSends?: number;
  /** SO_RCVBUF and SO_SNDBUF of the UDP listener; default 4 MiB (capped by net.core.rmem_max/wmem_max). */
  udpBufferBytes?: number;
  /** CIDRs peers may be in although they are private, loopback, ... (tests, lab networks). */
  allowPeers?: readonly string[];
  software?: string;
  /** How often expiries are enforced; default 1000 ms. */
  sweepIntervalMs?: number;
  log?: TurnServerLog;
  /** Every allocation event, answer, refusal (detail: the error code) and drop (detail: the reason). */
  onOutcome?: (outcome: TurnOutcome, detail?: TurnErrorCode | TurnDropReason) => void;
  /**
   * Which engine relays UDP: 'native' (the C fast path, `npm run build:native`), 'dgram' (Node's
   * sockets), or 'auto': native when it loads and `now` is not replaced, else dgram.
   * @default 'auto'
   */
  relayEngine?: 'auto' | 'native' | 'dgram';
  /** Clock in ms, for tests; default Date.now. */
  now?: () => number;
}

export interface TurnServerStats {
  allocationsActive: number;
  allocationsCreated: number;
  allocationsExpired: number;
  /** Deleted by Refresh with LIFETIME 0, or with their TCP connection. */
  allocationsDeleted: number;
  permissionsActive: number;
  channelsActive: number;
  tcpConnections: number;
  /** Relayed client -> peer (payload bytes). */
  packetsToPeer: number;
  bytesToPeer: number;
  /** Relayed peer -> client (payload bytes). */
  packetsToClient: number;
  bytesToClient: number;
  /** Error responses by code (401 includes every first, unauthenticated request). */
  refusals: Record<TurnErrorCode, number>;
  /** Messages and packets that got no answer and were not relayed, by reason. */
  dropped: Record<TurnDropReason, number>;
  /** Answers that failed to send after being counted (relayed packets go without a completion check). */
  sendErrors: number;
}

export interface TurnServerAddress {
  address: string;
  /** UDP (and TCP when enabled). */
  port: number;
  tlsPort?: number;
}

/** Defaults of every option that has one; docs/turn.md lists them. */
export const TURN_DEFAULTS = {
  host: '0.0.0.0',
  port: 3478,
  tcp: true,
  allowPeers: [] as readonly string[],
  now: Date.now,
  relayEngine: 'auto',
  tlsPort: 5349,
  minPort: 49152,
  maxPort: 65535,
  nonceLifetimeSec: 600,
  allocationLifetimeSec: 600,
  maxAllocationLifetimeSec: 3600,
  permissionLifetimeSec: 300,
  channelLifetimeSec: 600,
  maxAllocations: 10_000,
  maxAllocationsPerUser: 16,
  allocationBandwidth: 1_250_000,
  userBandwidth: 2_500_000,
  maxPermissionsPerAllocation: 128,
  maxChannelsPerAllocation: 128,
  maxTcpConnections: 10_000,
  tcpIdleTimeoutMs: 30_000,
  maxTcpBufferedBytes: 256 * 1024,
  maxMessageBytes: 4096,
  maxQueuedSends: 1024,
  udpBufferBytes: 4 * 1024 * 1024,
  sweepIntervalMs: 1000,
};

/** Every drop reason, in the order `stats.dropped` lists them. */
export const TURN_DROP_REASONS: readonly TurnDropReason[] = [
  'too_large',
  'too_short',
  'not_stun',
  'bad_cookie',
  'bad_length',
  'bad_attribute',
  'bad_fingerprint',
  'unknown_framing',
  'bad_channel_data',
  'no_allocation',
  'unbound_channel',
  'no_permission',
  'bandwidth',
  'bad_indication',
  'unexpected_message',
  'retransmission',
  'send_queue_full',
  'bad_source_port',
  'internal_error',
  'tcp_limit',
  'tcp_framing',
  'tcp_idle',
  'tls_error',
];

/** Stats with every counter at zero. */
export function emptyTurnStats(): TurnServerStats {
  return {
    allocationsActive: 0,
    allocationsCreated: 0,
    allocationsExpired: 0,
    allocationsDeleted: 0,
    permissionsActive: 0,
    channelsActive: 0,
    tcpConnections: 0,
    packetsToPeer: 0,
    bytesToPeer: 0,
    packetsToClient: 0,
    bytesToClient: 0,
    refusals: Object.fromEntries(TURN_ERROR_CODES.map((code) => [code, 0])) as Record<TurnErrorCode, number>,
    dropped: Object.fromEntries(TURN_DROP_REASONS.map((reason) => [reason, 0])) as Record<
      TurnDropReason,
      number
    >,
    sendErrors: 0,
  };
}
