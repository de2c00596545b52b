import { errors, type JWTVerifyGetKey, jwtVerify } from 'jose';
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

const ALGORITHMS = ['EdDSA', 'Ed25519'];

/** Offline verification: signature against the cached keys, then `aud`, `exp`, `iss`, and a usable `sub`. */
export async function verifyAccessToken(
  token: string,
  getKey: JWTVerifyGetKey,
  policy: TokenPolicy,
): Promise<TokenCheck> {
  try {
    const { payload } = await jwtVerify(token, getKey, {
      algorithms: ALGORITHMS,
      audience: policy.audience,
      issuer: policy.issuer,
      clockTolerance: policy.clockToleranceSec,
      requiredClaims: ['sub', 'exp'],
    });
    if (typeof payload.sub !== 'string' || !USER_ID_REGEX.test(payload.sub)) {
      return { ok: false, code: 'token_invalid', reason: 'token subject is not a valid user id' };
    }
    return {
      ok: true,
      userId: payload.sub,
      expiresAt: (payload.exp as number) * 1000,
      issuedAtSec: typeof payload.iat === 'number' ? payload.iat : 0,
      family: typeof payload.sid === 'string' ? payload.sid : undefined,
    };
  } catch (err) {
    if (err instanceof errors.JWTExpired)
      return { ok: false, code: 'token_expired', reason: 'token has expired' };
    return { ok: false, code: 'token_invalid', reason: describe(err) };
  }
}

function describe(err: unknown): string {
  if (err instanceof errors.JWKSNoMatchingKey) return 'token key id is not in the trusted key set';
  if (err instanceof errors.JOSEAlgNotAllowed) return 'token algorithm is not allowed';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'token signature does not verify';
  if (err instanceof errors.JWTClaimValidationFailed) return `token claim ${err.claim} is not acceptable`;
  return 'token is malformed';
}
