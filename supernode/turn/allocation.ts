import type { Budget } from './budget';
import type { UdpEndpoint } from './udp-endpoint';

/**
 * One allocation's state (RFC 8656 §2.2): the relayed socket, its permissions (by peer IP), its channel
 * bindings (both ways), its expiry and its share of bandwidth. Plain data and small helpers; the server
 * decides what to do with it.
 */

/** How the server reaches the client of an allocation: the UDP listener, or its TCP/TLS connection. */
export interface ClientLink {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly address: string;
  readonly port: number;
  /** Stream transports need ChannelData padded to 4 bytes. */
  readonly stream: boolean;
  /**
   * Sends one message (given as parts); false when it was dropped because the queue is full.
   * `relayed`: a relayed packet rather than an answer (sent on the fast path, failures not seen).
   */
  send(parts: Buffer[], relayed: boolean): boolean;
}

export interface Channel {
  number: number;
  peerAddress: string;
  peerPort: number;
  /** `address:port`, the key of `Allocation.peerChannels`. */
  peerKey: string;
  expiresAt: number;
}

export class Allocation {
  /** Peer IP -> expiry (ms). Permissions are per IP address, any port (RFC 8656 §9). */
  readonly permissions = new Map<string, number>();
  readonly channels = new Map<number, Channel>();
  readonly peerChannels = new Map<string, Channel>();
  expiresAt: number;
  /** The Allocate success response, resent when a retransmitted Allocate arrives (RFC 8656 §7.2). */
  response: Buffer | undefined;

  constructor(
    /** The 5-tuple key: transport, client address and port (one listener per transport). */
    readonly key: string,
    readonly link: ClientLink,
    readonly username: string,
    readonly userId: string,
    readonly relay: UdpEndpoint,
    readonly relayPort: number,
    readonly family: 'IPv4' | 'IPv6',
    readonly transactionId: Buffer,
    /** Relayed bytes per second (a token per byte). */
    readonly bucket: Budget | undefined,
    lifetimeMs: number,
    now: number,
  ) {
    this.expiresAt = now + lifetimeMs;
  }

  hasPermission(peerAddress: string, now: number): boolean {
    const expiresAt = this.permissions.get(peerAddress);
    return expiresAt !== undefined && expiresAt > now;
  }

  /** Channel bound to a live peer, or undefined. */
  liveChannel(number: number, now: number): Channel | undefined {
    const channel = this.channels.get(number);
    return channel && channel.expiresAt > now ? channel : undefined;
  }

  bind(channel: Channel): void {
    this.channels.set(channel.number, channel);
    this.peerChannels.set(channel.peerKey, channel);
  }

  /** Drops expired permissions and channels; returns how many of each were removed. */
  prune(now: number): { permissions: number; channels: number } {
    let permissions = 0;
    let channels = 0;
    for (const [address, expiresAt] of this.permissions) {
      if (expiresAt <= now) {
        this.permissions.delete(address);
        permissions++;
      }
    }
    for (const [number, channel] of this.channels) {
      if (channel.expiresAt <= now) {
        this.channels.delete(number);
        this.peerChannels.delete(channel.peerKey);
        channels++;
      }
    }
    return { permissions, channels };
  }
}
