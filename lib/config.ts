/**
 * The deployment's settings, read from CDK context (`cdk.json` or `-c key=value`) and validated
 * before anything is synthesized, so a typo fails in a second with a message instead of in
 * CloudFormation twenty minutes later. Every key is documented in docs/deploy.md.
 */
import { InstanceClass, InstanceSize, InstanceType } from 'aws-cdk-lib/aws-ec2';
import { authOptionTable } from '../supernode/config/auth-options';
import { AUTH_DEFAULTS, FLEET_DEFAULTS, NETWORK_DEFAULTS, TIER_DEFAULTS, TURN_DEFAULTS } from './defaults';

/** A value is wrong; the message names the context key and what it accepts. */
export class TierConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TierConfigError';
  }
}

export interface FleetSize {
  /** Guaranteed floor: the group never runs fewer nodes (at least 3). */
  floor: number;
  /** Ceiling for scale-out. */
  ceiling: number;
}

export interface FleetPlacement extends FleetSize {
  /** Concrete region, or undefined for the region `cdk deploy` targets (environment-agnostic). */
  region: string | undefined;
  /** ACM certificate for TLS on the fleet's NLB in this region; TCP without one (or a hosted zone). */
  certificateArn: string | undefined;
}

/**
 * `production` refuses to synthesize without TLS on the auth API and on every fleet's session
 * listener (unless `allowPlainHttp`); `dev` allows plain HTTP/TCP and defaults to one NAT gateway.
 */
export type Stage = 'dev' | 'production';

export interface HostedZone {
  /** Route 53 hosted zone id (no lookup: given in context). */
  id: string;
  /** The zone's name: `domainName`. */
  name: string;
}

export interface TierConfig {
  stage: Stage;
  /** Production without TLS was asked for explicitly. */
  allowPlainHttp: boolean;
  /** Region of the auth service, the table, the public keys and the dashboard; undefined = agnostic. */
  homeRegion: string | undefined;
  fleets: FleetPlacement[];
  instanceType: string;
  authInstanceType: string;
  authFloor: number;
  authCeiling: number;
  /** Connected clients per node that target tracking aims for. */
  clientsPerNode: number;
  /** How long a new node's /readyz must stay healthy before it signals success. */
  soakSeconds: number;
  /** Stopped, installed instances per fleet for break-glass scale-out (0: no warm pool). */
  warmPoolSize: number;
  natGateways: number;
  /** Interface endpoints for the AWS APIs the instances call, so they do not depend on the NAT. */
  interfaceEndpoints: boolean;
  /** ACM certificate (home region) for HTTPS on the auth ALB; HTTP without one (or a hosted zone). */
  authCertificateArn: string | undefined;
  domainName: string | undefined;
  /** With `domainName`: the stacks issue certificates (DNS validation) and create the DNS records. */
  hostedZone: HostedZone | undefined;
  alarmEmail: string | undefined;
  /**
   * TURN (RFC 8656) on every fleet: nodes on public IPv4 addresses, the relay range open, the NLB
   * carrying TURN, the auth service handing out credentials and URLs (docs/deploy.md#turn-for-webrtc).
   */
  turn: boolean;
}

/** The defaults of the context keys (lib/defaults.ts is the one source; constructs use it too). */
export const DEFAULTS = {
  stage: TIER_DEFAULTS.stage,
  floor: FLEET_DEFAULTS.floor,
  ceiling: FLEET_DEFAULTS.ceiling,
  instanceType: FLEET_DEFAULTS.instanceType,
  authInstanceType: AUTH_DEFAULTS.instanceType,
  authFloor: AUTH_DEFAULTS.floor,
  authCeiling: AUTH_DEFAULTS.ceiling,
  clientsPerNode: FLEET_DEFAULTS.clientsPerNode,
  soakSeconds: FLEET_DEFAULTS.soakSeconds,
  warmPoolSize: FLEET_DEFAULTS.warmPoolSize,
  natGateways: { dev: NETWORK_DEFAULTS.natGateways, production: NETWORK_DEFAULTS.productionNatGateways },
  interfaceEndpoints: NETWORK_DEFAULTS.interfaceEndpoints,
  turn: TURN_DEFAULTS.enabled,
} as const;

const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$/;
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate\/[0-9a-f-]{36}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,}$/;
const HOSTED_ZONE_ID = /^Z[A-Z0-9]{1,31}$/;
const STAGES: readonly Stage[] = ['dev', 'production'];

/**
 * Instance families and sizes CDK knows (its enums, short names only: `c7g`, not `compute7-graviton3`);
 * anything else fails later with a stack trace, or not at all (`c7g.huge` synthesizes).
 */
const FAMILIES = new Set<string>(
  Object.values(InstanceClass).filter((family) => /^([a-z]{1,3}\d|u-)/.test(family) && family !== 'arm1'),
);
const SIZES = new Set<string>(Object.values(InstanceSize));

/** The context keys this app reads; anything else that looks like ours is a typo. */
export const CONTEXT_KEYS = [
  'stage',
  'allowPlainHttp',
  'homeRegion',
  'fleetRegions',
  'floor',
  'ceiling',
  'fleetSizes',
  'instanceType',
  'authInstanceType',
  'authFloor',
  'authCeiling',
  'clientsPerNode',
  'soakSeconds',
  'warmPoolSize',
  'natGateways',
  'interfaceEndpoints',
  'domainName',
  'hostedZoneId',
  'certificateArns',
  'alarmEmail',
  'turn',
] as const;

type Context = (key: string) => unknown;

/** Reads and validates the settings; throws TierConfigError naming the first bad key. */
export function readTierConfig(context: Context): TierConfig {
  const stage = oneOf(context, 'stage', STAGES, DEFAULTS.stage);
  const allowPlainHttp = boolean(context, 'allowPlainHttp', false);
  const homeRegion = optionalString(context, 'homeRegion', REGION, 'a region name such as eu-west-1');
  const regions = regionList(context('fleetRegions'));
  if (regions.length > 0 && !homeRegion) {
    throw new TierConfigError(
      'context "fleetRegions" needs "homeRegion" too: each fleet reads the public keys from the home region',
    );
  }
  const floor = integer(context, 'floor', DEFAULTS.floor, 3, 1000);
  const ceiling = integer(context, 'ceiling', DEFAULTS.ceiling, 4, 5000);
  const sizes = fleetSizes(context('fleetSizes'), regions, { floor, ceiling });
  const certificates = certificateArns(context('certificateArns'), homeRegion);
  const fleets: FleetPlacement[] = (regions.length > 0 ? regions : [homeRegion]).map((region) => ({
    region,
    ...(region ? (sizes[region] ?? { floor, ceiling }) : { floor, ceiling }),
    certificateArn: certificates[region ?? ''],
  }));
  for (const fleet of fleets) checkSize(fleet, sizeKey(fleet));
  const warmPoolSize = integer(context, 'warmPoolSize', DEFAULTS.warmPoolSize, 0, 10);
  for (const fleet of fleets) {
    // Warm instances only ever go into service by scale-out, so the ceiling must leave room for them.
    if (warmPoolSize > fleet.ceiling - fleet.floor) {
      throw new TierConfigError(
        `context "warmPoolSize" (${warmPoolSize}) must be at most ceiling - floor (${fleet.ceiling - fleet.floor}) of "${sizeKey(fleet)}"`,
      );
    }
  }

  const authFloor = integer(context, 'authFloor', DEFAULTS.authFloor, 2, 100);
  const authCeiling = integer(context, 'authCeiling', DEFAULTS.authCeiling, 2, 500);
  if (authCeiling < authFloor) {
    throw new TierConfigError(
      `context "authCeiling" (${authCeiling}) must be at least "authFloor" (${authFloor})`,
    );
  }
  const domainName = optionalString(
    context,
    'domainName',
    DOMAIN,
    'a lower-case DNS name such as example.com',
  );
  const hostedZoneId = optionalString(context, 'hostedZoneId', HOSTED_ZONE_ID, 'a Route 53 hosted zone id');
  if (hostedZoneId && !domainName) {
    throw new TierConfigError('context "hostedZoneId" needs "domainName" too: the name of that hosted zone');
  }
  const turn = boolean(context, 'turn', DEFAULTS.turn);
  const remoteRegions = fleets.map((fleet) => fleet.region).filter((region) => region !== homeRegion);
  if (turn && remoteRegions.length > 0 && !domainName) {
    // The auth service hands out every fleet's TURN URLs, but fleets of other regions are deployed
    // after it: only a name known in advance (nodes.<region>.<domain>) can be handed out.
    throw new TierConfigError(
      `context "turn" with fleets outside the home region (${remoteRegions.join(', ')}) needs "domainName": ` +
        'the auth service hands out their TURN URLs as nodes.<region>.<domainName>',
    );
  }
  if (turn) checkTurnUrlCount(fleets, Boolean(hostedZoneId && domainName));
  const config: TierConfig = {
    stage,
    allowPlainHttp,
    homeRegion,
    fleets,
    instanceType: instanceType(context, 'instanceType', DEFAULTS.instanceType, { graviton: true }),
    authInstanceType: instanceType(context, 'authInstanceType', DEFAULTS.authInstanceType, {
      graviton: false,
    }),
    authFloor,
    authCeiling,
    clientsPerNode: integer(context, 'clientsPerNode', DEFAULTS.clientsPerNode, 100, 1_000_000),
    soakSeconds: integer(context, 'soakSeconds', DEFAULTS.soakSeconds, 30, 1800),
    warmPoolSize,
    natGateways: integer(context, 'natGateways', DEFAULTS.natGateways[stage], 1, 3),
    interfaceEndpoints: boolean(context, 'interfaceEndpoints', DEFAULTS.interfaceEndpoints),
    authCertificateArn: certificates[homeRegion ?? ''],
    domainName,
    hostedZone: hostedZoneId && domainName ? { id: hostedZoneId, name: domainName } : undefined,
    alarmEmail: optionalString(context, 'alarmEmail', EMAIL, 'an e-mail address'),
    turn,
  };
  checkTls(config);
  return config;
}

/**
 * Passwords and tokens must not cross the internet in cleartext: production needs a certificate (or
 * a hosted zone to issue one in) for the auth API and for every fleet, unless told otherwise.
 */
function checkTls(config: TierConfig): void {
  if (config.stage !== 'production' || config.allowPlainHttp || config.hostedZone) return;
  const missing = [
    ...(config.authCertificateArn ? [] : [`the auth API (${config.homeRegion ?? 'home'})`]),
    ...config.fleets
      .filter((fleet) => !fleet.certificateArn)
      .map((fleet) => `the fleet in ${fleet.region ?? 'the home region'}`),
  ];
  if (missing.length === 0) return;
  throw new TierConfigError(
    `stage "production" needs TLS: context "certificateArns" has no certificate for ${missing.join(', ')}. ` +
      'Give "certificateArns" (or "domainName" with "hostedZoneId"), use -c stage=dev for a trial, ' +
      'or -c allowPlainHttp=true to deploy production without TLS on purpose',
  );
}

/**
 * The auth service hands out every fleet's TURN URLs (two, three with TLS) and takes at most
 * `AUTH_TURN_URLS`' limit of them; more regions than that fail here, not on the instances.
 */
function checkTurnUrlCount(fleets: FleetPlacement[], hostedZone: boolean): void {
  const limit = authOptionTable.turnUrls.maxItems;
  const count = fleets.reduce((sum, fleet) => sum + (fleet.certificateArn || hostedZone ? 3 : 2), 0);
  if (count > limit) {
    throw new TierConfigError(
      `context "turn": ${fleets.length} fleet regions make ${count} TURN URLs, more than the ${limit} the auth service hands out (AUTH_TURN_URLS); use fewer fleet regions with TURN`,
    );
  }
}

function sizeKey(fleet: FleetPlacement): string {
  return fleet.region ? `fleetSizes.${fleet.region}` : 'floor/ceiling';
}

function checkSize(size: FleetSize, key: string): void {
  if (size.floor < 3)
    throw new TierConfigError(`context "${key}": floor must be at least 3 (got ${size.floor})`);
  // A rolling update keeps the floor in service and adds one node, so the ceiling must leave room for it.
  if (size.ceiling <= size.floor) {
    throw new TierConfigError(
      `context "${key}": ceiling (${size.ceiling}) must be greater than floor (${size.floor}) so a rolling update can add a node`,
    );
  }
}

/** `-c key=value` gives strings; cdk.json gives JSON values. Accept both. */
function raw(context: Context, key: string): unknown {
  const value = context(key);
  return value === '' ? undefined : value;
}

function integer(context: Context, key: string, fallback: number, min: number, max: number): number {
  const value = raw(context, key);
  if (value === undefined) return fallback;
  const parsed = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof parsed !== 'number' || !Number.isInteger(parsed) || parsed < min || parsed > max) {
    throw new TierConfigError(
      `context "${key}" must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`,
    );
  }
  return parsed;
}

function boolean(context: Context, key: string, fallback: boolean): boolean {
  const value = raw(context, key);
  if (value === undefined) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new TierConfigError(`context "${key}" must be true or false (got ${JSON.stringify(value)})`);
}

function oneOf<T extends string>(context: Context, key: string, values: readonly T[], fallback: T): T {
  const value = raw(context, key);
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !values.includes(value as T)) {
    throw new TierConfigError(
      `context "${key}" must be one of ${values.map((v) => `"${v}"`).join(', ')} (got ${JSON.stringify(value)})`,
    );
  }
  return value as T;
}

function optionalString(context: Context, key: string, pattern: RegExp, what: string): string | undefined {
  const value = raw(context, key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new TierConfigError(`context "${key}" must be ${what} (got ${JSON.stringify(value)})`);
  }
  return value;
}

/**
 * An instance type CDK knows, by family and size (CDK accepts `c7g.huge` and fails deep in synth).
 * The fleet must be Graviton (design brief); the AMI of either group follows the architecture.
 */
function instanceType(context: Context, key: string, fallback: string, rule: { graviton: boolean }): string {
  const value = raw(context, key) ?? fallback;
  const [family, size, ...rest] = typeof value === 'string' ? value.split('.') : [];
  const example = rule.graviton ? 'a Graviton (arm64) EC2 type like c7g.large' : 'an EC2 type like c7g.large';
  if (rest.length > 0 || !family || !size || !FAMILIES.has(family) || !SIZES.has(size)) {
    throw new TierConfigError(`context "${key}" must be ${example} (got ${JSON.stringify(value)})`);
  }
  if (rule.graviton && new InstanceType(value as string).architecture !== 'arm64') {
    throw new TierConfigError(
      `context "${key}" must be ${example}: supernodes run on Graviton (got ${JSON.stringify(value)})`,
    );
  }
  return value as string;
}

/** A JSON value from cdk.json, or the same JSON passed as a string with -c. */
function json(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    throw new TierConfigError(`context "${key}" is not valid JSON: ${value.slice(0, 80)}`);
  }
}

function regionList(value: unknown): string[] {
  if (value === undefined || value === '') return [];
  const list =
    typeof value === 'string' && !value.startsWith('[') ? value.split(',') : json('fleetRegions', value);
  if (!Array.isArray(list) || list.length > 20) {
    throw new TierConfigError(
      'context "fleetRegions" must be a list of up to 20 regions, e.g. us-east-1,eu-west-1',
    );
  }
  const regions = list.map((item) => (typeof item === 'string' ? item.trim() : item));
  for (const region of regions) {
    if (typeof region !== 'string' || !REGION.test(region)) {
      throw new TierConfigError(`context "fleetRegions": ${JSON.stringify(region)} is not a region name`);
    }
  }
  if (new Set(regions).size !== regions.length)
    throw new TierConfigError('context "fleetRegions" lists a region twice');
  return regions as string[];
}

function fleetSizes(value: unknown, regions: string[], fallback: FleetSize): Record<string, FleetSize> {
  if (value === undefined || value === '') return {};
  const parsed = json('fleetSizes', value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TierConfigError(
      'context "fleetSizes" must be an object like {"eu-west-1": {"floor": 3, "ceiling": 20}}',
    );
  }
  const sizes: Record<string, FleetSize> = {};
  for (const [region, size] of Object.entries(parsed)) {
    if (!regions.includes(region)) {
      throw new TierConfigError(`context "fleetSizes" names ${region}, which is not in "fleetRegions"`);
    }
    const read = (field: 'floor' | 'ceiling') =>
      integer(
        (key) => (key === field ? (size as Record<string, unknown>)?.[field] : undefined),
        field,
        fallback[field],
        1,
        5000,
      );
    sizes[region] = { floor: read('floor'), ceiling: read('ceiling') };
  }
  return sizes;
}

function certificateArns(value: unknown, homeRegion: string | undefined): Record<string, string> {
  if (value === undefined || value === '') return {};
  const parsed = json('certificateArns', value);
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TierConfigError(
      'context "certificateArns" must be an object mapping a region to an ACM certificate ARN',
    );
  }
  const arns: Record<string, string> = {};
  for (const [region, arn] of Object.entries(parsed)) {
    const match = typeof arn === 'string' ? CERTIFICATE_ARN.exec(arn) : null;
    if (!match)
      throw new TierConfigError(`context "certificateArns.${region}" is not an ACM certificate ARN`);
    // An ACM certificate only works in its own region; "" means the agnostic home stack.
    const key = region === '' || region === 'home' ? (homeRegion ?? '') : region;
    if (key && match[1] !== key) {
      throw new TierConfigError(
        `context "certificateArns.${region}" is a certificate of ${match[1]}, not of ${key}`,
      );
    }
    arns[key] = arn;
  }
  return arns;
}
