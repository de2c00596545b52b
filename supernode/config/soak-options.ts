import { patterns } from './options';

/** `supernode soak`, the release gate (supernode/soak.ts). */
export const soakOptionTable = {
  url: {
    kind: 'string',
    env: 'SOAK_URL',
    default: 'http://127.0.0.1:7001/readyz',
    pattern: patterns.httpUrl,
    help: 'Readiness URL to watch.',
  },
  soakSec: {
    kind: 'int',
    env: 'SOAK_SEC',
    default: 300,
    min: 1,
    max: 86_400,
    help: 'How long /readyz must stay ready, without one failure.',
  },
  startTimeoutSec: {
    kind: 'int',
    env: 'SOAK_START_TIMEOUT_SEC',
    default: 300,
    min: 1,
    max: 86_400,
    help: 'How long the service has to become ready at all.',
  },
  intervalMs: {
    kind: 'int',
    env: 'SOAK_INTERVAL_MS',
    default: 2000,
    min: 100,
    max: 60_000,
    help: 'Time between checks.',
  },
  requestTimeoutMs: {
    kind: 'int',
    env: 'SOAK_REQUEST_TIMEOUT_MS',
    default: 2000,
    min: 100,
    max: 60_000,
    help: 'A check slower than this counts as a failure.',
  },
} as const;
