import type { WebSocket } from 'ws';
import type { Endpoint } from '../../protocol/messages';
import type { TokenBucket } from '../../shared/token-bucket';

/** Frames held while a session is paused; past this the client is ignoring backpressure. */
const MAX_BACKLOG_FRAMES = 512;
const MAX_BACKLOG_BYTES = 1024 * 1024;

type HeldFrame = [Buffer, boolean];

/** Per-connection state; kept small because a node holds tens of thousands of them. */
export class Session {
  userId = '';
  /** From the token: when it was issued and its refresh family, for the revocation check. */
  tokenIssuedAtSec = 0;
  family: string | undefined;
  endpoints: Endpoint[] = [];
  authenticated = false;
  /** Frames read while processing is paused (hello being verified, or over the rate limit). */
  backlog: HeldFrame[] | undefined;
  backlogBytes = 0;
  alive = true;
  /** Slot on the sessions' heartbeat wheel (heartbeat-wheel.ts); -1 off it. */
  heartbeatSlot = -1;
  closed = false;
  congestedSince = 0;
  resumeTimer: NodeJS.Timeout | undefined;
  authTimer: NodeJS.Timeout | undefined;
  lookups: TokenBucket | undefined;
  messages: TokenBucket | undefined;
  constructor(
    readonly socket: WebSocket,
    /** Unique on this node; names the session in welcome messages and in relays across nodes. */
    readonly serial: number,
  ) {}

  /**
   * Stops processing this session's frames: reading pauses (the client's TCP window then slows it
   * down) and frames already read wait, in order, in a bounded backlog. Used while a hello is verified
   * and while a session is over its rate, so throttling delays frames instead of dropping them.
   */
  pause(): void {
    this.backlog ??= [];
    this.socket.pause();
  }

  /** Keeps a frame read while paused; false when the backlog is full (the client ignores backpressure). */
  hold(data: Buffer, isBinary: boolean): boolean {
    const backlog = this.backlog as HeldFrame[];
    this.backlogBytes += data.length;
    if (backlog.length >= MAX_BACKLOG_FRAMES || this.backlogBytes > MAX_BACKLOG_BYTES) return false;
    backlog.push([data, isBinary]);
    return true;
  }

  /** Processes the backlog in order, then reads again, unless processing paused the session anew. */
  resume(process: (data: Buffer, isBinary: boolean) => void): void {
    const backlog = this.backlog ?? [];
    this.backlog = undefined;
    this.backlogBytes = 0;
    if (this.closed) return;
    let i = 0;
    while (i < backlog.length && !this.backlog && !this.closed) {
      const [data, isBinary] = backlog[i++];
      process(data, isBinary);
    }
    // process may have paused the session again (TypeScript cannot see that through the call).
    const again = this.backlog as HeldFrame[] | undefined;
    if (again) {
      // Throttled again part-way: the rest keeps its place ahead of anything read later.
      const rest = backlog.slice(i);
      again.unshift(...rest);
      for (const [data] of rest) this.backlogBytes += data.length;
      return;
    }
    if (!this.closed) this.socket.resume();
  }

  /** Pauses for `waitMs` (the rate limit's advice), then resumes. */
  throttle(waitMs: number, process: (data: Buffer, isBinary: boolean) => void): void {
    if (this.resumeTimer || this.closed) return;
    this.pause();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      this.resume(process);
    }, waitMs);
  }

  /** Sends a close frame; the closing handshake needs the peer's answer, so a paused socket reads again. */
  close(code: number, reason: string): void {
    this.closed = true;
    clearTimeout(this.resumeTimer);
    this.socket.resume();
    this.socket.close(code, reason);
  }
}
