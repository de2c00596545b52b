import crypto from 'node:crypto';
import {
  dummyVerify,
  hashPassword,
  needsRehash,
  OWASP_SCRYPT,
  PasswordHashFormatError,
  type ScryptParams,
  verifyPassword,
} from '../../supernode/auth/passwords';

// Cheap parameters (1 MiB, a few ms) for everything but the one OWASP test.
const FAST: ScryptParams = { N: 2 ** 10, r: 8, p: 1, keyLength: 32, saltLength: 16 };

const SALT = 'AAAAAAAAAAAAAAAAAAAAAA'; // 16 zero bytes
const KEY = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'; // 32 zero bytes

describe('hashPassword / verifyPassword', () => {
  it('round-trips and rejects a wrong password', async () => {
    const encoded = await hashPassword('correct horse battery staple', FAST);
    await expect(verifyPassword('correct horse battery staple', encoded)).resolves.toBe(true);
    await expect(verifyPassword('correct horse battery stapler', encoded)).resolves.toBe(false);
    await expect(verifyPassword('Correct horse battery staple', encoded)).resolves.toBe(false);
  });

  it('stores the parameters and a fresh salt with the hash', async () => {
    const params = { N: 2 ** 11, r: 4, p: 2, keyLength: 48, saltLength: 24 };
    const a = await hashPassword('pw', params);
    const b = await hashPassword('pw', params);
    const m = /^scrypt\$1\$N=2048,r=4,p=2\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/.exec(a);
    expect(m).not.toBeNull();
    expect(Buffer.from(m?.[1] ?? '', 'base64url')).toHaveLength(24);
    expect(Buffer.from(m?.[2] ?? '', 'base64url')).toHaveLength(48);
    expect(a).not.toBe(b);
    // Verification takes N, r, p and the key length from the stored text.
    await expect(verifyPassword('pw', a)).resolves.toBe(true);
    await expect(verifyPassword('pw', b)).resolves.toBe(true);
  });

  it('treats NFKC-equivalent passwords as the same password', async () => {
    const encoded = await hashPassword('ﬁsh café', FAST); // U+FB01 ligature, precomposed é
    await expect(verifyPassword('fish cafe\u0301', encoded)).resolves.toBe(true); // f + i, e + combining acute
    await expect(verifyPassword('ｆｉｓｈ café', encoded)).resolves.toBe(true); // full-width letters
    await expect(verifyPassword('fish cafe', encoded)).resolves.toBe(false);
  });

  it('limits passwords to 1..1024 bytes of UTF-8 after normalization', async () => {
    await expect(hashPassword('', FAST)).rejects.toThrow(RangeError);
    await expect(hashPassword('a'.repeat(1025), FAST)).rejects.toThrow(RangeError);
    await expect(hashPassword('é'.repeat(513), FAST)).rejects.toThrow(RangeError); // 1026 bytes
    // 300 bytes as typed, but each U+FDFA expands to 18 characters (33 bytes) under NFKC.
    await expect(hashPassword('\uFDFA'.repeat(100), FAST)).rejects.toThrow(RangeError);
    await expect(hashPassword('a\uD800b', FAST)).rejects.toThrow(RangeError); // lone surrogate
    const longest = await hashPassword('é'.repeat(512), FAST);
    await expect(verifyPassword('é'.repeat(512), longest)).resolves.toBe(true);
    await expect(verifyPassword('a'.repeat(1025), longest)).rejects.toThrow(RangeError);
    await expect(verifyPassword('', longest)).rejects.toThrow(RangeError);
  });

  it.each<[string, Partial<ScryptParams>]>([
    ['N not a power of two', { N: 1000 }],
    ['N too small', { N: 2 ** 9 }],
    ['N too large', { N: 2 ** 21 }],
    ['r = 0', { r: 0 }],
    ['r too large', { r: 33 }],
    ['p too large', { p: 17 }],
    ['fractional p', { p: 1.5 }],
    ['too much memory', { N: 2 ** 20, r: 16 }],
    ['short key', { keyLength: 8 }],
    ['long key', { keyLength: 65 }],
    ['short salt', { saltLength: 8 }],
  ])('refuses to hash with bad parameters: %s', async (_name, override) => {
    await expect(hashPassword('pw', { ...FAST, ...override })).rejects.toThrow(RangeError);
  });
});

describe('stored hash parsing', () => {
  it('accepts a well-formed hand-made record', async () => {
    // Parses, and the wrong key simply fails to match.
    await expect(verifyPassword('pw', `scrypt$1$N=1024,r=8,p=1$${SALT}$${KEY}`)).resolves.toBe(false);
  });

  it.each<[string, unknown]>([
    ['empty', ''],
    ['not a string', 42],
    ['other algorithm', `argon2id$1$N=1024,r=8,p=1$${SALT}$${KEY}`],
    ['other version', `scrypt$2$N=1024,r=8,p=1$${SALT}$${KEY}`],
    ['truncated', `scrypt$1$N=1024,r=8,p=1$${SALT}$${KEY}`.slice(0, 40)],
    ['missing hash', `scrypt$1$N=1024,r=8,p=1$${SALT}`],
    ['extra field', `scrypt$1$N=1024,r=8,p=1$${SALT}$${KEY}$extra`],
    ['trailing newline', `scrypt$1$N=1024,r=8,p=1$${SALT}$${KEY}\n`],
    ['bad base64 salt', `scrypt$1$N=1024,r=8,p=1$${SALT.slice(0, -1)}!$${KEY}`],
    ['standard base64 in hash', `scrypt$1$N=1024,r=8,p=1$${SALT}$${KEY.slice(0, -1)}+`],
    ['padded base64', `scrypt$1$N=1024,r=8,p=1$${SALT}==$${KEY}`],
    ['non-canonical base64', `scrypt$1$N=1024,r=8,p=1$${SALT.slice(0, -1)}B$${KEY}`],
    ['short key', `scrypt$1$N=1024,r=8,p=1$${SALT}$${'A'.repeat(11)}`],
    ['short salt', `scrypt$1$N=1024,r=8,p=1$${'A'.repeat(11)}$${KEY}`],
    ['N not a power of two', `scrypt$1$N=1000,r=8,p=1$${SALT}$${KEY}`],
    ['N too small', `scrypt$1$N=512,r=8,p=1$${SALT}$${KEY}`],
    ['huge N', `scrypt$1$N=1073741824,r=8,p=1$${SALT}$${KEY}`],
    ['N beyond the limit', `scrypt$1$N=2097152,r=8,p=1$${SALT}$${KEY}`],
    ['too much memory', `scrypt$1$N=1048576,r=32,p=1$${SALT}$${KEY}`],
    ['leading zero', `scrypt$1$N=01024,r=8,p=1$${SALT}$${KEY}`],
    ['r = 0', `scrypt$1$N=1024,r=0,p=1$${SALT}$${KEY}`],
    ['p too large', `scrypt$1$N=1024,r=8,p=17$${SALT}$${KEY}`],
    ['parameters reordered', `scrypt$1$r=8,N=1024,p=1$${SALT}$${KEY}`],
    ['missing parameter', `scrypt$1$N=1024,r=8$${SALT}$${KEY}`],
    ['extra parameter', `scrypt$1$N=1024,r=8,p=1,x=1$${SALT}$${KEY}`],
    ['space', `scrypt$1$N=1024, r=8,p=1$${SALT}$${KEY}`],
    ['oversized', `scrypt$1$N=1024,r=8,p=1$${SALT}$${'A'.repeat(300)}`],
  ])('throws PasswordHashFormatError: %s', async (_name, encoded) => {
    await expect(verifyPassword('pw', encoded as string)).rejects.toThrow(PasswordHashFormatError);
    expect(() => needsRehash(encoded as string, FAST)).toThrow(PasswordHashFormatError);
  });
});

describe('needsRehash', () => {
  it('is false for the current parameters and true when any of them changes', async () => {
    const encoded = await hashPassword('pw', FAST);
    expect(needsRehash(encoded, FAST)).toBe(false);
    expect(needsRehash(encoded, { ...FAST, N: 2 ** 11 })).toBe(true);
    expect(needsRehash(encoded, { ...FAST, r: 16 })).toBe(true);
    expect(needsRehash(encoded, { ...FAST, p: 2 })).toBe(true);
    expect(needsRehash(encoded, { ...FAST, keyLength: 64 })).toBe(true);
    expect(needsRehash(encoded, { ...FAST, saltLength: 32 })).toBe(true);
    expect(needsRehash(encoded, OWASP_SCRYPT)).toBe(true);
    expect(() => needsRehash(encoded, { ...FAST, N: 3 })).toThrow(RangeError);
  });
});

describe('dummyVerify', () => {
  afterEach(() => jest.restoreAllMocks());

  it('returns false after one scrypt at the given parameters', async () => {
    const spy = jest.spyOn(crypto, 'scrypt');
    await expect(dummyVerify('whatever', FAST)).resolves.toBe(false);
    expect(spy).toHaveBeenCalledTimes(1);
    expect(spy.mock.calls[0][2]).toBe(FAST.keyLength);
    expect(spy.mock.calls[0][3]).toMatchObject({ N: FAST.N, r: FAST.r, p: FAST.p });
  });

  it('validates like a real verify', async () => {
    await expect(dummyVerify('', FAST)).rejects.toThrow(RangeError);
    await expect(dummyVerify('pw', { ...FAST, N: 1000 })).rejects.toThrow(RangeError);
  });
});

describe('OWASP parameters', () => {
  it('hash and verify once at N = 2^17 (needs maxmem above the 32 MiB default)', async () => {
    expect(OWASP_SCRYPT).toEqual({ N: 2 ** 17, r: 8, p: 1, keyLength: 32, saltLength: 16 });
    const encoded = await hashPassword('correct horse battery staple', OWASP_SCRYPT);
    expect(encoded.startsWith('scrypt$1$N=131072,r=8,p=1$')).toBe(true);
    expect(needsRehash(encoded, OWASP_SCRYPT)).toBe(false);
    await expect(verifyPassword('correct horse battery staple', encoded)).resolves.toBe(true);
  });
});
