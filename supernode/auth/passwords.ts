import { randomBytes, type ScryptOptions, scrypt, timingSafeEqual } from 'node:crypto';

/** The three scrypt calls, as the auth service makes them (on its worker thread: auth/worker.ts). */
export interface PasswordHasher {
  hashPassword(password: string, params: ScryptParams): Promise<string>;
  verifyPassword(password: string, encoded: string): Promise<boolean>;
  dummyVerify(password: string, params: ScryptParams): Promise<false>;
}

/** scrypt cost parameters plus the sizes of the derived key and the salt, both in bytes. */
export interface ScryptParams {
  N: number;
  r: number;
  p: number;
  keyLength: number;
  saltLength: number;
}

/** OWASP's scrypt recommendation: ~400 ms of one core and 128 MiB (128 * N * r bytes) per hash. */
export const OWASP_SCRYPT: ScryptParams = Object.freeze({
  N: 2 ** 17,
  r: 8,
  p: 1,
  keyLength: 32,
  saltLength: 16,
});

/** A stored hash that is not exactly in the format `hashPassword` writes, with sane parameters. */
export class PasswordHashFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PasswordHashFormatError';
  }
}

// Bounds for both new and stored hashes. A stored hash is data: without bounds a corrupt or planted
// record could make one verify allocate gigabytes or run for minutes.
const MIN_LOG2_N = 10;
const MAX_LOG2_N = 20;
const MAX_R = 32;
const MAX_P = 16;
const MIN_KEY_BYTES = 16;
const MAX_KEY_BYTES = 64;
const MIN_SALT_BYTES = 16;
const MAX_SALT_BYTES = 64;
/** scrypt's working memory is 128 * N * r bytes; allow up to N = 2^20 at r = 8. */
const MAX_MEMORY_BYTES = 2 ** 30;
/** Longest well-formed encoding (64-byte salt and key) is ~210 characters; refuse anything longer unread. */
const MAX_ENCODED_LENGTH = 256;
const MAX_PASSWORD_BYTES = 1024;

const PREFIX = 'scrypt$1$';
// One exact shape: fixed parameter order, no leading zeros, unpadded base64url (22..86 chars = 16..64
// bytes). JS `$` without the m flag matches only at the very end, so a trailing newline fails too.
const ENCODED_RE =
  /^scrypt\$1\$N=([1-9][0-9]{0,7}),r=([1-9][0-9]?),p=([1-9][0-9]?)\$([A-Za-z0-9_-]{22,86})\$([A-Za-z0-9_-]{22,86})$/;

function checkParams(params: ScryptParams): void {
  const { N, r, p, keyLength, saltLength } = params;
  // Range first, so the bit test below only ever sees small integers.
  if (!Number.isInteger(N) || N < 2 ** MIN_LOG2_N || N > 2 ** MAX_LOG2_N || (N & (N - 1)) !== 0) {
    throw new RangeError(`scrypt N must be a power of two from 2^${MIN_LOG2_N} to 2^${MAX_LOG2_N}; got ${N}`);
  }
  if (!Number.isInteger(r) || r < 1 || r > MAX_R)
    throw new RangeError(`scrypt r must be 1..${MAX_R}; got ${r}`);
  if (!Number.isInteger(p) || p < 1 || p > MAX_P)
    throw new RangeError(`scrypt p must be 1..${MAX_P}; got ${p}`);
  if (128 * N * r > MAX_MEMORY_BYTES) {
    throw new RangeError(
      `scrypt N=${N}, r=${r} needs ${128 * N * r} bytes; the limit is ${MAX_MEMORY_BYTES}`,
    );
  }
  if (!Number.isInteger(keyLength) || keyLength < MIN_KEY_BYTES || keyLength > MAX_KEY_BYTES) {
    throw new RangeError(`keyLength must be ${MIN_KEY_BYTES}..${MAX_KEY_BYTES} bytes; got ${keyLength}`);
  }
  if (!Number.isInteger(saltLength) || saltLength < MIN_SALT_BYTES || saltLength > MAX_SALT_BYTES) {
    throw new RangeError(`saltLength must be ${MIN_SALT_BYTES}..${MAX_SALT_BYTES} bytes; got ${saltLength}`);
  }
}

/**
 * NFKC, then UTF-8. The same password typed on another keyboard, OS or input method can arrive as
 * different code points (precomposed vs combining "é", full-width letters, the "ﬁ" ligature); NFKC
 * maps these to one form so the user is not locked out on their next device (NIST SP 800-63B §5.1.1.2).
 * The byte limit applies after normalization, since NFKC can expand a string (U+FDFA becomes 18 chars).
 */
function normalizePassword(password: string): Buffer {
  if (typeof password !== 'string') throw new TypeError('password must be a string');
  const normalized = password.normalize('NFKC');
  // A lone surrogate would be encoded as U+FFFD, so distinct inputs would hash alike.
  if (/\p{Cs}/u.test(normalized)) throw new RangeError('password must be well-formed Unicode');
  const bytes = Buffer.from(normalized, 'utf8');
  if (bytes.length < 1 || bytes.length > MAX_PASSWORD_BYTES) {
    throw new RangeError(`password must be 1..${MAX_PASSWORD_BYTES} bytes of UTF-8 after NFKC normalization`);
  }
  return bytes;
}

/** Async scrypt: runs on libuv's thread pool, so the event loop stays free while a hash runs. */
function deriveKey(password: Buffer, salt: Buffer, params: ScryptParams, keyLength: number): Promise<Buffer> {
  const { N, r, p } = params;
  // OpenSSL needs 128 * r * (N + 2) bytes for V plus 128 * r * p for B; Node's default maxmem
  // (32 MiB) is below the 128 MiB that N = 2^17, r = 8 needs. The margin covers rounding.
  const options: ScryptOptions = { N, r, p, maxmem: 128 * r * (N + p + 2) + 2 ** 20 };
  return new Promise((resolve, reject) => {
    scrypt(password, salt, keyLength, options, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

function decodeBase64url(text: string, what: string, min: number, max: number): Buffer {
  const bytes = Buffer.from(text, 'base64url');
  // Node's decoder ignores stray trailing bits; insist on the canonical encoding so one hash has one text.
  if (bytes.toString('base64url') !== text)
    throw new PasswordHashFormatError(`${what} is not canonical base64url`);
  if (bytes.length < min || bytes.length > max) {
    throw new PasswordHashFormatError(`${what} must be ${min}..${max} bytes; got ${bytes.length}`);
  }
  return bytes;
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  hash: Buffer;
}

function parseEncoded(encoded: string): ParsedHash {
  if (typeof encoded !== 'string' || encoded.length > MAX_ENCODED_LENGTH) {
    throw new PasswordHashFormatError('stored password hash is not a string of sane length');
  }
  const m = ENCODED_RE.exec(encoded);
  if (!m) {
    const hint = encoded.startsWith(PREFIX) ? 'malformed' : 'not an scrypt$1 hash';
    throw new PasswordHashFormatError(`stored password hash is ${hint}`);
  }
  const salt = decodeBase64url(m[4], 'salt', MIN_SALT_BYTES, MAX_SALT_BYTES);
  const hash = decodeBase64url(m[5], 'hash', MIN_KEY_BYTES, MAX_KEY_BYTES);
  const params: ScryptParams = {
    N: Number(m[1]),
    r: Number(m[2]),
    p: Number(m[3]),
    keyLength: hash.length,
    saltLength: salt.length,
  };
  try {
    checkParams(params);
  } catch (err) {
    throw new PasswordHashFormatError(`stored password hash: ${(err as Error).message}`);
  }
  return { params, salt, hash };
}

/**
 * Hashes a password with a fresh random salt. The result stores N, r and p with the salt and hash
 * (`scrypt$1$N=131072,r=8,p=1$<salt>$<hash>`, base64url), so parameters can be raised later.
 */
export async function hashPassword(password: string, params: ScryptParams): Promise<string> {
  checkParams(params);
  const pw = normalizePassword(password);
  const salt = randomBytes(params.saltLength);
  try {
    const hash = await deriveKey(pw, salt, params, params.keyLength);
    const { N, r, p } = params;
    return `${PREFIX}N=${N},r=${r},p=${p}$${salt.toString('base64url')}$${hash.toString('base64url')}`;
  } finally {
    pw.fill(0);
  }
}

/**
 * True when `password` matches; compares in constant time. Throws PasswordHashFormatError for a stored
 * hash that does not parse (never a silent false: that would hide corrupt records) and RangeError for
 * a password outside 1..1024 bytes.
 */
export async function verifyPassword(password: string, encoded: string): Promise<boolean> {
  const { params, salt, hash } = parseEncoded(encoded);
  const pw = normalizePassword(password);
  try {
    return timingSafeEqual(await deriveKey(pw, salt, params, hash.length), hash);
  } finally {
    pw.fill(0);
  }
}

/** True when the stored hash was made with parameters other than `params` (re-hash after a good login). */
export function needsRehash(encoded: string, params: ScryptParams): boolean {
  checkParams(params);
  const stored = parseEncoded(encoded).params;
  return (
    stored.N !== params.N ||
    stored.r !== params.r ||
    stored.p !== params.p ||
    stored.keyLength !== params.keyLength ||
    stored.saltLength !== params.saltLength
  );
}

/**
 * Does the work of a real verify (normalize, scrypt at `params`, constant-time compare) and returns
 * false. Use it for unknown accounts so response time does not reveal whether an account exists.
 */
export async function dummyVerify(password: string, params: ScryptParams): Promise<false> {
  checkParams(params);
  const pw = normalizePassword(password);
  try {
    const key = await deriveKey(pw, randomBytes(params.saltLength), params, params.keyLength);
    timingSafeEqual(key, randomBytes(params.keyLength));
    return false;
  } finally {
    pw.fill(0);
  }
}

/** The hasher on the calling thread: what the auth worker serves, and what core tests use directly. */
export const inThreadPasswords: PasswordHasher = { hashPassword, verifyPassword, dummyVerify };
