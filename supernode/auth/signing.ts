import { randomBytes } from 'node:crypto';
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from 'jose';

type ImportedKey = Awaited<ReturnType<typeof importJWK>>;

/** An Ed25519 signing key with its id; the private half never leaves the auth side. */
export interface SigningKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export async function generateSigningKey(kid = `k-${randomBytes(6).toString('hex')}`): Promise<SigningKey> {
  const { privateKey, publicKey } = await generateKeyPair('EdDSA', { crv: 'Ed25519', extractable: true });
  const privateJwk = { ...(await exportJWK(privateKey)), kid, alg: 'EdDSA', use: 'sig' };
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: 'EdDSA', use: 'sig' };
  return { kid, privateJwk, publicJwk };
}

export function publicJwks(keys: readonly SigningKey[]): { keys: JWK[] } {
  return { keys: keys.map((k) => k.publicJwk) };
}

export interface AccessClaims {
  sub: string;
  aud: string;
  iss?: string;
  /** The refresh-token family the token came from, so revoking the family reaches its access tokens. */
  sid?: string;
  ttlSec: number;
}

const importedKeys = new WeakMap<JWK, Promise<ImportedKey>>();

/** Signs an access token: EdDSA, `kid` in the header, `sub`, `aud`, `iat`, `exp` (and `iss` if given). */
export async function signAccessToken(key: SigningKey, claims: AccessClaims): Promise<string> {
  let imported = importedKeys.get(key.privateJwk);
  if (!imported) {
    imported = importJWK(key.privateJwk, 'EdDSA');
    importedKeys.set(key.privateJwk, imported);
  }
  const jwt = new SignJWT(claims.sid ? { sid: claims.sid } : {})
    .setProtectedHeader({ alg: 'EdDSA', kid: key.kid, typ: 'JWT' })
    .setSubject(claims.sub)
    .setAudience(claims.aud)
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + claims.ttlSec);
  if (claims.iss) jwt.setIssuer(claims.iss);
  return jwt.sign(await imported);
}
