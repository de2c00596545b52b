/**
 * The node's own JWS verifier (node:crypto) judged against jose, which the node used before and which
 * is an independent implementation of RFC 7515/7519: for every token shape both must agree on accept,
 * token_expired or token_invalid, and on the claims of an accepted token.
 */
import { createPrivateKey, sign } from 'node:crypto';
import fc from 'fast-check';
import { createLocalJWKSet, errors, jwtVerify } from 'jose';
import { generateSigningKey, publicJwks, type SigningKey } from '../../supernode/auth/signing';
import { type PublicJwk, TrustedKeys, verifyAccessToken } from '../../supernode/node/access-token';
import { USER_ID_REGEX } from '../../supernode/protocol/messages';

const POLICY = { audience: 'supernode', issuer: 'supernode-auth', clockToleranceSec: 30 };
let key: SigningKey;
let other: SigningKey;
let trusted: TrustedKeys;
let getKey: ReturnType<typeof createLocalJWKSet>;

beforeAll(async () => {
  key = await generateSigningKey('k-main');
  other = await generateSigningKey('k-other');
  const jwks = publicJwks([key]);
  trusted = new TrustedKeys(jwks.keys as PublicJwk[]);
  getKey = createLocalJWKSet(jwks);
});

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');

/** A compact JWS signed with Ed25519 over whatever header and payload it is given. */
function forge(header: unknown, payload: unknown, signer: SigningKey = key): string {
  const input = `${b64(header)}.${b64(payload)}`;
  const privateKey = createPrivateKey({ key: signer.privateJwk as never, format: 'jwk' });
  return `${input}.${sign(null, Buffer.from(input), privateKey).toString('base64url')}`;
}

/** jose's verdict, with the user-id rule the node adds on top. */
async function joseVerdict(token: string): Promise<string> {
  try {
    const { payload } = await jwtVerify(token, getKey, {
      algorithms: ['EdDSA', 'Ed25519'],
      audience: POLICY.audience,
      issuer: POLICY.issuer,
      clockTolerance: POLICY.clockToleranceSec,
      requiredClaims: ['sub', 'exp'],
    });
    if (typeof payload.sub !== 'string' || !USER_ID_REGEX.test(payload.sub)) return 'token_invalid';
    return `ok ${payload.sub} ${payload.exp}`;
  } catch (err) {
    return err instanceof errors.JWTExpired ? 'token_expired' : 'token_invalid';
  }
}

function ourVerdict(token: string): string {
  const check = verifyAccessToken(token, trusted, POLICY);
  return check.ok ? `ok ${check.userId} ${check.expiresAt / 1000}` : check.code;
}

const now = () => Math.floor(Date.now() / 1000);
const good = () => ({ sub: 'alice', aud: 'supernode', iss: 'supernode-auth', iat: now(), exp: now() + 600 });
const HEADER = { alg: 'EdDSA', kid: 'k-main', typ: 'JWT' };

const cases: Array<[string, () => string]> = [
  ['a good token', () => forge(HEADER, good())],
  ['alg Ed25519', () => forge({ ...HEADER, alg: 'Ed25519' }, good())],
  ['alg none', () => `${b64({ alg: 'none', kid: 'k-main' })}.${b64(good())}.`],
  ['alg HS256', () => forge({ ...HEADER, alg: 'HS256' }, good())],
  ['no alg', () => forge({ kid: 'k-main' }, good())],
  ['an unknown kid', () => forge({ ...HEADER, kid: 'k-nope' }, good())],
  ['the kid of another key', () => forge(HEADER, good(), other)],
  ['a crit header', () => forge({ ...HEADER, crit: ['b64'], b64: false }, good())],
  [
    'a tampered payload',
    () => {
      const [h, , s] = forge(HEADER, good()).split('.');
      return `${h}.${b64({ ...good(), sub: 'mallory' })}.${s}`;
    },
  ],
  ['a short signature', () => `${forge(HEADER, good()).split('.').slice(0, 2).join('.')}.AAAA`],
  ['expired', () => forge(HEADER, { ...good(), exp: now() - 31 })],
  ['expired within the tolerance', () => forge(HEADER, { ...good(), exp: now() - 5 })],
  ['nbf in the future', () => forge(HEADER, { ...good(), nbf: now() + 60 })],
  ['nbf within the tolerance', () => forge(HEADER, { ...good(), nbf: now() + 10 })],
  ['aud as an array', () => forge(HEADER, { ...good(), aud: ['x', 'supernode'] })],
  ['another aud', () => forge(HEADER, { ...good(), aud: 'other' })],
  ['no aud', () => forge(HEADER, { ...good(), aud: undefined })],
  ['another iss', () => forge(HEADER, { ...good(), iss: 'evil' })],
  ['no iss', () => forge(HEADER, { ...good(), iss: undefined })],
  ['no sub', () => forge(HEADER, { ...good(), sub: undefined })],
  ['a sub that is no user id', () => forge(HEADER, { ...good(), sub: 'Not A User' })],
  ['exp as a string', () => forge(HEADER, { ...good(), exp: String(now() + 600) })],
  ['iat as a string', () => forge(HEADER, { ...good(), iat: 'yesterday' })],
  ['a payload array', () => forge(HEADER, [good()])],
  ['a payload that is not JSON', () => forge(HEADER, 'not json')],
  ['four parts', () => `${forge(HEADER, good())}.x`],
  ['a character outside base64url', () => forge(HEADER, good()).replace('.', '.=')],
  ['garbage', () => 'not.a.token'],
  ['empty', () => ''],
];

test.each(cases)('%s: the same verdict as jose', async (_name, make) => {
  const token = make();
  expect(ourVerdict(token)).toBe(await joseVerdict(token));
});

test('random claims and headers: always the same verdict as jose', async () => {
  const claim = fc.oneof(
    fc.constant(undefined),
    fc.integer({ min: -100, max: 1000 }).map((d) => now() + d),
    fc.string({ maxLength: 12 }),
    fc.constantFrom('alice', 'supernode', 'supernode-auth', ['supernode'], null),
  );
  await fc.assert(
    fc.asyncProperty(
      fc.record({
        alg: fc.constantFrom('EdDSA', 'Ed25519', 'ES256', 'none', undefined),
        kid: fc.constantFrom('k-main', 'k-x', undefined),
      }),
      fc.record({ sub: claim, aud: claim, iss: claim, exp: claim, nbf: claim, iat: claim }),
      fc.boolean(),
      async (header, payload, signedByOther) => {
        const token = forge(header, payload, signedByOther ? other : key);
        expect(ourVerdict(token)).toBe(await joseVerdict(token));
      },
    ),
    { numRuns: Number(process.env.FUZZ_RUNS ?? 300) },
  );
});
