/**
 * The deployment's settings, read from CDK context (`cdk.json` or `-c key=value`) and validated
 * before anything is synthesized, so a typo fails in a second with a message instead of in
 * CloudFormation twenty minutes later. Every key is documented in docs/deploy.md.
 */

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
  /** ACM certificate for TLS on the fleet's NLB in this region; TCP without one. */
  certificateArn: string | undefined;
}

export interface TierConfig {
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
  natGateways: number;
  /** ACM certificate (home region) for HTTPS on the auth ALB; HTTP without one. */
  authCertificateArn: string | undefined;
  domainName: string | undefined;
  alarmEmail: string | undefined;
}

export const DEFAULTS = {
  floor: 3,
  ceiling: 12,
  instanceType: 'c7g.large',
  authInstanceType: 'c7g.large',
  authFloor: 2,
  authCeiling: 6,
  clientsPerNode: 50_000,
  soakSeconds: 300,
  natGateways: 1,
} as const;

const REGION = /^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-\d{1,2}$/;
const INSTANCE_TYPE = /^[a-z][a-z0-9-]*\.[a-z0-9]+$/;
const CERTIFICATE_ARN = /^arn:aws[a-z-]*:acm:([a-z0-9-]+):\d{12}:certificate\/[0-9a-f-]{36}$/;
const DOMAIN = /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$/;
const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,255}\.[^\s@]{2,}$/;

/** The context keys this app reads; anything else that looks like ours is a typo. */
export const CONTEXT_KEYS = [
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
  'natGateways',
  'domainName',
  'certificateArns',
  'alarmEmail',
] as const;

type Context = (key: string) => unknown;

/** Reads and validates the settings; throws TierConfigError naming the first bad key. */
export function readTierConfig(context: Context): TierConfig {
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
  for (const fleet of fleets) checkSize(fleet, fleet.region ? `fleetSizes.${fleet.region}` : 'floor/ceiling');

  const authFloor = integer(context, 'authFloor', DEFAULTS.authFloor, 2, 100);
  const authCeiling = integer(context, 'authCeiling', DEFAULTS.authCeiling, 2, 500);
  if (authCeiling < authFloor) {
    throw new TierConfigError(
      `context "authCeiling" (${authCeiling}) must be at least "authFloor" (${authFloor})`,
    );
  }
  return {
    homeRegion,
    fleets,
    instanceType: string(
      context,
      'instanceType',
      DEFAULTS.instanceType,
      INSTANCE_TYPE,
      'an EC2 type like c7g.large',
    ),
    authInstanceType: string(
      context,
      'authInstanceType',
      DEFAULTS.authInstanceType,
      INSTANCE_TYPE,
      'an EC2 type like c7g.large',
    ),
    authFloor,
    authCeiling,
    clientsPerNode: integer(context, 'clientsPerNode', DEFAULTS.clientsPerNode, 100, 1_000_000),
    soakSeconds: integer(context, 'soakSeconds', DEFAULTS.soakSeconds, 30, 1800),
    natGateways: integer(context, 'natGateways', DEFAULTS.natGateways, 1, 3),
    authCertificateArn: certificates[homeRegion ?? ''],
    domainName: optionalString(context, 'domainName', DOMAIN, 'a lower-case DNS name such as example.com'),
    alarmEmail: optionalString(context, 'alarmEmail', EMAIL, 'an e-mail address'),
  };
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

function string(context: Context, key: string, fallback: string, pattern: RegExp, what: string): string {
  return optionalString(context, key, pattern, what) ?? fallback;
}

function optionalString(context: Context, key: string, pattern: RegExp, what: string): string | undefined {
  const value = raw(context, key);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new TierConfigError(`context "${key}" must be ${what} (got ${JSON.stringify(value)})`);
  }
  return value;
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
