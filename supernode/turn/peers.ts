import { formatIpAddress, ipAddressBytes } from '../stun/codec';

/**
 * Which peers a relay may reach. A TURN server relays from its own network position, so a relay to
 * loopback, a private network or the cloud metadata service (169.254.169.254) would hand a stranger a
 * foothold inside it: those are refused (403) unless `allowPeers` lists them.
 */

interface Cidr {
  bytes: Buffer;
  prefix: number;
}

/** Refused by default. 240.0.0.0/4 covers reserved space and the broadcast address 255.255.255.255. */
export const DENIED_PEER_RANGES: readonly string[] = [
  '0.0.0.0/8',
  '10.0.0.0/8',
  '100.64.0.0/10',
  '127.0.0.0/8',
  '169.254.0.0/16',
  '172.16.0.0/12',
  '192.168.0.0/16',
  '224.0.0.0/4',
  '240.0.0.0/4',
  '::/128',
  '::1/128',
  'fc00::/7',
  'fe80::/10',
  'fec0::/10',
  'ff00::/8',
];

/** IPv6 forms that carry an IPv4 address (checked as that address): mapped, compatible, NAT64, 6to4. */
const EMBEDDING_V4: ReadonlyArray<{ prefix: Cidr; at: number }> = [
  { prefix: parseCidr('::ffff:0:0/96'), at: 12 },
  { prefix: parseCidr('::/96'), at: 12 },
  { prefix: parseCidr('64:ff9b::/96'), at: 12 },
  { prefix: parseCidr('2002::/16'), at: 2 },
];

/** `a.b.c.d/n` or `v6/n` (a bare address is a /32 or /128); throws a RangeError for anything else. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const bytes = ipAddressBytes(slash === -1 ? text : text.slice(0, slash));
  if (!bytes) throw new RangeError(`invalid CIDR ${text}`);
  const max = bytes.length * 8;
  const prefixText = slash === -1 ? String(max) : text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : -1;
  if (prefix < 0 || prefix > max) throw new RangeError(`invalid CIDR ${text}`);
  return { bytes, prefix };
}

function contains(cidr: Cidr, bytes: Buffer): boolean {
  if (cidr.bytes.length !== bytes.length) return false;
  const whole = cidr.prefix >> 3;
  for (let i = 0; i < whole; i++) if (cidr.bytes[i] !== bytes[i]) return false;
  const bits = cidr.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (cidr.bytes[whole] & mask) === (bytes[whole] & mask);
}

export class PeerPolicy {
  private readonly allowed: Cidr[];
  private readonly denied = DENIED_PEER_RANGES.map(parseCidr);

  constructor(allowPeers: readonly string[] = []) {
    this.allowed = allowPeers.map(parseCidr);
  }

  /** Whether a relay to `address` is permitted; a string that is no address never is. */
  allows(address: string): boolean {
    const bytes = ipAddressBytes(address);
    if (!bytes) return false;
    const forms = [bytes];
    if (bytes.length === 16) {
      const embedded = EMBEDDING_V4.find(({ prefix }) => contains(prefix, bytes));
      if (embedded) forms.push(bytes.subarray(embedded.at, embedded.at + 4));
    }
    if (forms.some((form) => this.allowed.some((cidr) => contains(cidr, form)))) return true;
    return !forms.some((form) => this.denied.some((cidr) => contains(cidr, form)));
  }
}

/** The canonical text of an address (as XOR-PEER-ADDRESS decoding gives it), or null. */
export function canonicalAddress(address: string): string | null {
  const bytes = ipAddressBytes(address);
  return bytes ? formatIpAddress(bytes) : null;
}
