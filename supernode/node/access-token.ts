import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import { USER_ID_REGEX } from '../protocol/messages';

export type TokenCheck =
  | { ok: true; userId: string; expiresAt: number; issuedAtSec: number; family?: string }
  | { ok: false; code: 'token_invalid' | 'token_expired'; reason: string };

export interface TokenPolicy {
  audience: string;
  issuer?: string;
  /** Tolerated clock difference between the auth service and this node. */
  clockToleranceSec: number;
}

/** An Ed25519 public JWK as the key set carries it (validated by keys.ts). */
export interface PublicJwk {
  kty: string;
  crv: string;
  x: string;
  kid: string;
}

/**
 * The trusted public keys as node:crypto KeyObjects, by `kid`, built once per key set. Verifying with
 * `crypto.verify` on a cached KeyObject costs one Ed25519 verification; jose's WebCrypto path cost
 * three times as much per token in the set-up profile (key import per token, a thread-pool hop, promises).
 */
export class TrustedKeys {
  private readonly byKid = new Map<string, KeyObject[]>();

  constructor(keys: readonly PublicJwk[]) {
    for (const jwk of keys) {
      const key = createPublicKey({ key: { kty: jwk.kty, crv: jwk.crv, x: jwk.x }, format: 'jwk' });
      const list = this.byKid.get(jwk.kid);
      if (list) list.push(key);
      else this.byKid.set(jwk.kid, [key]);
    }
  }

  get kids(): string[] {
    return [...this.byKid.keys()];
  }

  keysFor(kid: string): readonly KeyObject[] | undefined {
    return this.byKid.get(kid);
  }
}

/** What the auth service signs with; the key set's JWKs say `alg: EdDSA`, so jose took nothing else either. */
const ALGORITHMS = new Set(['EdDSA']);
/** A hello is at most 8 KiB, so a longer token cannot reach this; a bound of our own all the same. */
const MAX_TOKEN_CHARS = 4096;
const BASE64URL = /^[A-Za-z0-9_-]+$/;
const ED25519_SIGNATURE_BYTES = 64;

const invalid = (reason: string): TokenCheck => ({ ok: false, code: 'token_invalid', reason });
const MALFORMED = invalid('token is malformed');

function decodeJson(part: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const claimFailed = (claim: string): TokenCheck => invalid(`token claim ${claim} is not acceptable`);

/**
 * Offline verification of a compact JWS (RFC 7515/8037, EdDSA over Ed25519): the header's `alg` and
 * `kid`, the signature against the cached keys, then the claims as RFC 7519 and jose check them:
 * `aud`, `iss`, `sub`, `exp`, `nbf`, `iat`, with the clock tolerance. Synchronous: nothing waits.
 */
export function verifyAccessToken(
  token: string,
  keys: TrustedKeys,
  policy: TokenPolicy,
  nowMs = Date.now(),
): TokenCheck {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_CHARS) return MALFORMED;
  const firstDot = token.indexOf('.');
  const secondDot = token.indexOf('.', firstDot + 1);
  if (firstDot < 0 || secondDot < 0 || token.indexOf('.', secondDot + 1) >= 0) return MALFORMED;
  const headerPart = token.slice(0, firstDot);
  const payloadPart = token.slice(firstDot + 1, secondDot);
  const signaturePart = token.slice(secondDot + 1);
  // Buffer's base64url decoder skips characters outside the alphabet; a token must not carry any.
  if (!BASE64URL.test(headerPart) || !BASE64URL.test(payloadPart) || !BASE64URL.test(signaturePart))
    return MALFORMED;

  const header = decodeJson(headerPart);
  if (!header || typeof header.alg !== 'string') return MALFORMED;
  // Critical extensions we do not implement (b64: false among them) make the token unusable.
  if (header.crit !== undefined) return MALFORMED;
  if (!ALGORITHMS.has(header.alg)) return invalid('token algorithm is not allowed');
  const candidates = typeof header.kid === 'string' ? keys.keysFor(header.kid) : undefined;
  if (!candidates) return invalid('token key id is not in the trusted key set');

  const signature = Buffer.from(signaturePart, 'base64url');
  if (signature.length !== ED25519_SIGNATURE_BYTES) return invalid('token signature does not verify');
  const signed = Buffer.from(token.slice(0, secondDot), 'latin1');
  if (!candidates.some((key) => verify(null, signed, key, signature)))
    return invalid('token signature does not verify');

  const payload = decodeJson(payloadPart);
  if (!payload) return MALFORMED;
  return checkClaims(payload, policy, Math.floor(nowMs / 1000));
}

function checkClaims(payload: Record<string, unknown>, policy: TokenPolicy, now: number): TokenCheck {
  const { audience, issuer, clockToleranceSec: tolerance } = policy;
  for (const claim of ['sub', 'exp', 'aud', ...(issuer === undefined ? [] : ['iss'])])
    if (payload[claim] === undefined) return claimFailed(claim);
  if (issuer !== undefined && payload.iss !== issuer) return claimFailed('iss');
  const aud = payload.aud;
  if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) return claimFailed('aud');
  if (payload.iat !== undefined && typeof payload.iat !== 'number') return claimFailed('iat');
  if (payload.nbf !== undefined) {
    if (typeof payload.nbf !== 'number' || payload.nbf > now + tolerance) return claimFailed('nbf');
  }
  if (typeof payload.exp !== 'number') return claimFailed('exp');
  if (payload.exp <= now - tolerance)
    return { ok: false, code: 'token_expired', reason: 'token has expired' };
  if (typeof payload.sub !== 'string' || !USER_ID_REGEX.test(payload.sub))
    return invalid('token subject is not a valid user id');
  return {
    ok: true,
    userId: payload.sub,
    expiresAt: payload.exp * 1000,
    issuedAtSec: typeof payload.iat === 'number' ? payload.iat : 0,
    family: typeof payload.sid === 'string' ? payload.sid : undefined,
  };
}
