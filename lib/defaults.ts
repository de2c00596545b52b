/**
 * Every default of the tier in one place. `lib/config.ts` falls back to these when a context key is
 * unset, and each construct falls back to the same values when a prop is unset, so a construct used
 * on its own builds what `cdk synth` with an empty context builds. docs/deploy.md lists them.
 */

/** Supernode fleet of one region (`SupernodeFleet`). */
export const FLEET_DEFAULTS = {
  /** Graviton, as the design brief requires; the AMI follows the type's architecture. */
  instanceType: 'c7g.large',
  floor: 3,
  ceiling: 12,
  clientsPerNode: 50_000,
  cpuTargetPercent: 60,
  soakSeconds: 300,
  drainSeconds: 30,
  /**
   * Stopped, installed instances for break-glass scale-out. Two keep a first deploy of the defaults
   * (3 nodes + 2 warm + 2 auth, 2 vCPUs each) at 14 vCPUs, inside a new account's 16.
   */
  warmPoolSize: 2,
} as const;

/** TURN on the fleet (`SupernodeFleet`'s `turn` prop, the `turn` context key). */
export const TURN_DEFAULTS = {
  /**
   * Off: TURN puts every node on a public IPv4 address in a public subnet with the relay range open
   * to the internet, and public addresses and relayed traffic are billed; turning it on is a choice.
   */
  enabled: false,
  /** Relayed-transport ports, UDP (RFC 8656 section 7.2's range, the runtime's default). */
  minPort: 49152,
  maxPort: 65535,
  /** REALM of the long-term credentials when no `domainName` is given. */
  realm: 'supernode',
  /** Lifetime of the credentials the auth service mints; an allocation cannot outlive them. */
  credentialTtlSeconds: 86_400,
  /** How often instances fetch the shared secret again (rotation reaches every node within this). */
  secretRefreshMinutes: 5,
  /** A node holding more allocations than this (80% of the runtime's 10,000 default) alarms. */
  allocationsPerNodeAlarm: 8000,
} as const;

/** Auth service compute (`AuthService`). */
export const AUTH_DEFAULTS = {
  instanceType: 'c7g.large',
  floor: 2,
  ceiling: 6,
  soakSeconds: 120,
  requestsPerIpPer5Minutes: 600,
  wafRetryAfterSeconds: 60,
} as const;

/** The VPC of every stack (`TierNetwork`). */
export const NETWORK_DEFAULTS = {
  /** One NAT gateway per VPC in the dev stage; production defaults to one per zone (see config). */
  natGateways: 1,
  productionNatGateways: 2,
  interfaceEndpoints: false,
  cidr: '10.40.0.0/16',
} as const;

/** Settings of the whole app that have no construct of their own. */
export const TIER_DEFAULTS = {
  /** What a synth without a `stage` key builds: production, which refuses to run without TLS. */
  stage: 'production',
} as const;
