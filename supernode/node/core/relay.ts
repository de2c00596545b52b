import { encodeRelayFrame, FRAME_DELIVER } from '../../protocol/frames';
import type { NodeStats } from '../metrics';
import type { PresenceRegistry } from '../presence';
import type { Session } from './session';

/** What became of a frame: sessions reached, -1 if the recipient has none here, 'busy' if all are full. */
export type Delivery = number | 'busy';

/**
 * Delivery to this node's sessions. A recipient whose send buffer is over the limit is skipped and
 * marked congested (the slow-consumer sweep cuts it off if it stays so), never buffered without bound.
 */
export class LocalDelivery {
  constructor(
    private readonly presence: PresenceRegistry<Session>,
    private readonly stats: NodeStats,
    private readonly sendBufferBytes: number,
    private readonly markCongested: (session: Session) => void,
  ) {}

  deliver(from: string, to: string, msgId: number, payload: Buffer): Delivery {
    const targets = this.presence.sessionsOf(to);
    if (!targets) return -1;
    const frame = encodeRelayFrame(FRAME_DELIVER, 0, msgId, from, payload);
    let delivered = 0;
    for (const target of targets) {
      if (target.socket.bufferedAmount > this.sendBufferBytes) {
        this.markCongested(target);
        continue;
      }
      // Not batched (unlike control messages and mesh frames): a corked frame sits in user space until
      // the flush, so a reader that stopped would look busy early and then free again, and the bound on
      // what is queued for it would no longer be its send buffer.
      target.socket.send(frame);
      delivered++;
    }
    if (delivered === 0) return 'busy';
    this.stats.relayedMessages += delivered;
    this.stats.relayedBytes += delivered * payload.length;
    return delivered;
  }
}
