import { randomInt } from 'node:crypto';
import type { UdpEndpoint } from './udp-endpoint';

/**
 * Relayed transport addresses: UDP sockets on ports from [min, max], never two allocations on one port.
 * The pool tracks our own claims; a port some other process holds shows up as EADDRINUSE at bind and
 * the next candidate is tried. Ports are picked at random (RFC 8656 §7.2 suggests it, so a relay
 * address cannot be guessed from the last one).
 */

/** Binds tried per allocation before giving up with 508. */
const BIND_ATTEMPTS = 8;

export interface BoundRelay {
  socket: UdpEndpoint;
  port: number;
}

export class RelayPortPool {
  private readonly claimed = new Set<number>();

  constructor(
    readonly min: number,
    readonly max: number,
  ) {
    if (!Number.isInteger(min) || !Number.isInteger(max) || min < 1 || max > 0xffff || min > max) {
      throw new RangeError(`invalid relay port range ${min}-${max}`);
    }
  }

  get size(): number {
    return this.max - this.min + 1;
  }

  get inUse(): number {
    return this.claimed.size;
  }

  /**
   * Claims a free port, or -1: any port, or an even one, or an even one whose successor is free too
   * (`pair`, for EVEN-PORT with the R bit), in which case both are claimed.
   */
  claim(even: boolean, pair: boolean): number {
    const step = even || pair ? 2 : 1;
    const first = even || pair ? this.min + (this.min & 1) : this.min;
    const count = Math.floor((this.max - first) / step) + 1;
    if (count <= 0) return -1;
    const start = randomInt(count);
    for (let i = 0; i < count; i++) {
      const port = first + ((start + i) % count) * step;
      if (this.claimed.has(port)) continue;
      if (pair && (port + 1 > this.max || this.claimed.has(port + 1))) continue;
      this.claimed.add(port);
      if (pair) this.claimed.add(port + 1);
      return port;
    }
    return -1;
  }

  release(port: number): void {
    this.claimed.delete(port);
  }

  /**
   * A bound relay socket (two, on consecutive ports, for `pair`), or null when the range is exhausted
   * or every attempt found its port taken by someone else.
   */
  async bind(
    options: { even: boolean; pair: boolean },
    open: (port: number) => Promise<UdpEndpoint>,
  ): Promise<BoundRelay[] | null> {
    for (let attempt = 0; attempt < BIND_ATTEMPTS; attempt++) {
      const port = this.claim(options.even, options.pair);
      if (port === -1) return null;
      const ports = options.pair ? [port, port + 1] : [port];
      const bound: BoundRelay[] = [];
      try {
        for (const p of ports) bound.push({ socket: await open(p), port: p });
        return bound;
      } catch {
        for (const relay of bound) relay.socket.close();
        for (const p of ports) this.release(p);
      }
    }
    return null;
  }
}
