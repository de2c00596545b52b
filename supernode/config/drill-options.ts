import { patterns } from './options';

/** Both drills write their timeline and chart to the same place. */
const drillOut = {
  kind: 'string',
  env: 'DRILL_OUT',
  default: '.data/drills',
  pattern: patterns.path,
  help: 'Where the timeline (JSON) and the chart (SVG) are written.',
} as const;

/** `supernode drill storm`: the 2007 login storm. */
export const stormOptionTable = {
  clients: {
    kind: 'int',
    env: 'DRILL_CLIENTS',
    default: 20_000,
    min: 10,
    max: 100_000,
    help: 'Simulated clients (5,000 per process).',
  },
  reconnectTimeoutSec: {
    kind: 'int',
    env: 'DRILL_RECONNECT_TIMEOUT_SEC',
    default: 180,
    min: 5,
    max: 3600,
    help: 'Longest wait for every client to come back after the cached-credentials restart.',
  },
  lostWindowSec: {
    kind: 'int',
    env: 'DRILL_LOST_WINDOW_SEC',
    default: 60,
    min: 5,
    max: 3600,
    help: 'How long the credentials-lost storm runs; the time to 100% is projected from its login rate.',
  },
  calibrateSec: {
    kind: 'int',
    env: 'DRILL_CALIBRATE_SEC',
    default: 10,
    min: 2,
    max: 120,
    help: 'How long the hash capacity is measured before the credentials-lost storm.',
  },
  startJitterMs: {
    kind: 'int',
    env: 'DRILL_START_JITTER_MS',
    default: 10_000,
    min: 0,
    max: 600_000,
    help: 'Clients first connect spread over this long (set-up only; the storms use the SDK defaults).',
  },
  out: drillOut,
} as const;

/** `supernode drill crash`: the 2010 supernode crash. */
export const crashOptionTable = {
  clients: {
    kind: 'int',
    env: 'DRILL_CLIENTS',
    default: 10_000,
    min: 10,
    max: 100_000,
    help: 'Simulated clients, spread over the three nodes.',
  },
  trafficIntervalMs: {
    kind: 'int',
    env: 'DRILL_TRAFFIC_INTERVAL_MS',
    default: 5000,
    min: 100,
    max: 60_000,
    help: 'Each client looks a random user up and sends it an acknowledged message this often.',
  },
  beforeSec: {
    kind: 'int',
    env: 'DRILL_BEFORE_SEC',
    default: 15,
    min: 1,
    max: 600,
    help: 'Traffic before the crash.',
  },
  afterSec: {
    kind: 'int',
    env: 'DRILL_AFTER_SEC',
    default: 45,
    min: 5,
    max: 600,
    help: 'Traffic after the crash (re-homing must finish within it).',
  },
  faultAfterMs: {
    kind: 'int',
    env: 'DRILL_FAULT_AFTER_MS',
    default: 5000,
    min: 100,
    max: 600_000,
    help: 'The faulty build crashes this long after start.',
  },
  soakSec: {
    kind: 'int',
    env: 'DRILL_SOAK_SEC',
    default: 20,
    min: 1,
    max: 3600,
    help: 'Soak period of the release gate run against the faulty build (300 s in AWS).',
  },
  startJitterMs: {
    kind: 'int',
    env: 'DRILL_START_JITTER_MS',
    default: 10_000,
    min: 0,
    max: 600_000,
    help: 'Clients first connect spread over this long.',
  },
  out: drillOut,
} as const;
