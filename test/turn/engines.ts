import { type FastPathBinding, loadFastPath } from '../../supernode/turn/native/fastpath';
import { dgramFactory, nativeFactory, type UdpFactory } from '../../supernode/turn/udp-endpoint';

/** Both relay engines: TURN tests run on each, so the native fast path is held to the same behaviour. */
export const RELAY_ENGINES = ['native', 'dgram'] as const;

/** The addon; fails (never skips) when it is not built, saying how to build it. */
export function requireFastPath(): FastPathBinding {
  const loaded = loadFastPath();
  if ('error' in loaded) {
    throw new Error(
      `the native relay engine is ${loaded.error}: run npm run build:native (needs a C compiler: apt-get install -y gcc)`,
    );
  }
  return loaded.binding;
}

export function udpFactory(engine: (typeof RELAY_ENGINES)[number]): UdpFactory {
  return engine === 'native' ? nativeFactory(requireFastPath()) : dgramFactory;
}

export const openOptions = {
  listener: false,
  bufferBytes: 0,
  maxQueuedSends: 1000,
  onError: () => undefined,
  onSendError: () => undefined,
};
