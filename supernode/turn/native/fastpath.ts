import path from 'node:path';
import { isMainThread } from 'node:worker_threads';

/** fastpath.c's exports (see the comments there for each). */
export interface FastPathBinding {
  open(
    family: 4 | 6,
    address: string,
    port: number,
    bufferBytes: number,
    onMessage: (msg: Buffer, address: string, port: number) => void,
    listener: boolean,
  ): [id: number, port: number];
  send(id: number, datagram: Buffer, port: number, address: string): boolean;
  close(id: number): void;
  route(
    listener: number,
    clientAddress: string,
    clientPort: number,
    channel: number,
    relay: number,
    peerAddress: string,
    peerPort: number,
    validUntil: number,
    allocationBucket: number,
    userBucket: number,
  ): void;
  bucket(bytesPerSecond: number, burst: number): number;
  spend(allocationBucket: number, userBucket: number, bytes: number): boolean;
  freeBucket(id: number): void;
  limits(maxChannelDataBytes: number, maxToClientBytes: number): void;
  counters(
    listener: number,
  ): [
    toPeerPackets: number,
    toPeerBytes: number,
    toClientPackets: number,
    toClientBytes: number,
    bandwidth: number,
    queueFull: number,
  ];
  now(): number;
}

export const FASTPATH_SOURCE = path.join(__dirname, 'fastpath.c');
export const FASTPATH_BINARY = path.join(
  __dirname,
  'build',
  `fastpath-${process.platform}-${process.arch}.node`,
);

let loaded: { binding: FastPathBinding } | { error: string } | undefined;

/** The addon, or why it cannot be used here (not built, not Linux, a worker thread). Loaded once. */
export function loadFastPath(): { binding: FastPathBinding } | { error: string } {
  if (loaded) return loaded;
  if (!isMainThread) return { error: 'not on the main thread (the addon keeps one state per process)' };
  try {
    loaded = { binding: require(FASTPATH_BINARY) as FastPathBinding };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    loaded = {
      error:
        code === 'MODULE_NOT_FOUND'
          ? `not built (${path.basename(FASTPATH_BINARY)}; npm run build:native)`
          : `failed to load: ${(err as Error).message}`,
    };
  }
  return loaded;
}
