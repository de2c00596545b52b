import dgram from 'node:dgram';
import { isIP } from 'node:net';
import {
  encodeBindingRequest,
  parseBindingResponse,
  STUN_HEADER_BYTES,
  type StunMappedAddress,
} from './codec';

export interface StunBindingOptions {
  /** Overall deadline, retransmissions included. Default 3000 ms. */
  timeoutMs?: number;
  /** Retransmissions after the first send. Default 3. */
  retries?: number;
  /** Local address to bind; default all interfaces. */
  localAddress?: string;
  /** Local port to bind (e.g. to observe a NAT mapping for a known port); default ephemeral. */
  localPort?: number;
}

export class StunTimeoutError extends Error {
  override readonly name = 'StunTimeoutError';

  constructor(
    readonly host: string,
    readonly port: number,
    readonly timeoutMs: number,
    readonly attempts: number,
  ) {
    super(`no STUN Binding response from ${host}:${port} after ${attempts} attempts in ${timeoutMs} ms`);
  }
}

/**
 * One STUN Binding transaction over a fresh UDP socket: our address as the server sees it.
 *
 * Retransmits like RFC 8489 §6.2.1 (the interval doubles each time) but scaled so every send fits in
 * `timeoutMs`: with 3 retries and 3000 ms, sends go at 0, 200, 600 and 1400 ms, and we give up at 3000.
 * The socket is closed before the promise settles, whatever the outcome.
 */
export function stunBinding(
  host: string,
  port: number,
  opts: StunBindingOptions = {},
): Promise<StunMappedAddress> {
  const timeoutMs = opts.timeoutMs ?? 3000;
  const retries = opts.retries ?? 3;
  const request = encodeBindingRequest(undefined, { fingerprint: true });
  const transactionId = request.subarray(8, STUN_HEADER_BYTES);
  const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');

  return new Promise((resolve, reject) => {
    let attempts = 0;
    let settled = false;
    let retransmitTimer: NodeJS.Timeout | undefined;
    const deadlineTimer = setTimeout(
      () => finish(() => reject(new StunTimeoutError(host, port, timeoutMs, attempts))),
      timeoutMs,
    );

    function finish(settle: () => void): void {
      if (settled) return;
      settled = true;
      clearTimeout(deadlineTimer);
      clearTimeout(retransmitTimer);
      try {
        socket.close(settle);
      } catch {
        settle(); // never bound, or already closed
      }
    }

    function send(interval: number): void {
      attempts++;
      try {
        socket.send(request, port, host, (err) => {
          if (err) finish(() => reject(err));
        });
      } catch (err) {
        finish(() => reject(err)); // invalid port or host
        return;
      }
      if (attempts <= retries) retransmitTimer = setTimeout(() => send(interval * 2), interval);
    }

    socket.on('error', (err) => finish(() => reject(err)));
    socket.on('message', (msg) => {
      // Anything that is not our transaction's success response is ignored, as RFC 8489 §6.3 says.
      const mapped = parseBindingResponse(msg, transactionId);
      if (mapped) finish(() => resolve(mapped));
    });
    try {
      socket.bind({ address: opts.localAddress, port: opts.localPort ?? 0 }, () => {
        // Intervals RTO, 2 RTO, 4 RTO, ... and a final 2^retries RTO wait sum to exactly timeoutMs.
        if (!settled) send(timeoutMs / (2 ** (retries + 1) - 1));
      });
    } catch (err) {
      finish(() => reject(err));
    }
  });
}
