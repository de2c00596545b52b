import { isIP } from 'node:net';
import fc from 'fast-check';

/**
 * Shared generators for the fuzz tests: hostile JSON (prototype keys, unicode, huge strings, deep
 * nesting) that parsers of untrusted input must survive.
 */

/** How many cases each property runs: small in `npm test`, large in `npm run fuzz`. */
export const runs = Number(process.env.FUZZ_RUNS ?? 200);

/** Keys that break naive parsers (prototype members), plus the discriminants our messages use. */
export const hostileKey = fc.constantFrom(
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'valueOf',
  'hasOwnProperty',
  'toJSON',
  '__defineGetter__',
  'type',
  't',
  'id',
  '',
);

/** Any Unicode (lone surrogates included), short on the whole, sometimes long. */
export const anyText: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  {
    weight: 1,
    arbitrary: fc
      .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), fc.integer({ min: 1, max: 6000 }))
      .map(([unit, n]) => unit.repeat(n)),
  },
);

const edgeNumbers = fc.constantFrom(
  0,
  -0,
  -1,
  1.5,
  2 ** 31,
  2 ** 32 - 1,
  2 ** 32,
  2 ** 53,
  Number.MAX_SAFE_INTEGER + 2,
  1e300,
  -1e300,
  Number.MIN_VALUE,
);

export const jsonLeaf: fc.Arbitrary<unknown> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  edgeNumbers,
  anyText,
);

/** JSON values whose objects use hostile keys as often as ordinary ones. */
export const hostileJson: fc.Arbitrary<unknown> = fc.letrec<{
  value: unknown;
  array: unknown;
  object: unknown;
}>((tie) => ({
  value: fc.oneof({ depthSize: 'small' }, jsonLeaf, tie('array'), tie('object')),
  array: fc.array(tie('value'), { maxLength: 5 }),
  object: fc.dictionary(fc.oneof(hostileKey, fc.string({ maxLength: 10 })), tie('value'), {
    maxKeys: 5,
    noNullPrototype: true,
  }),
})).value;

/** Text that is JSON nested far deeper than any message: `[[[...]]]` or `{"a":{"a":...}}`. */
export const deeplyNested: fc.Arbitrary<string> = fc
  .tuple(fc.integer({ min: 1, max: 5000 }), fc.boolean())
  .map(([depth, arrays]) =>
    arrays ? `${'['.repeat(depth)}${']'.repeat(depth)}` : `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`,
  );

/** Sets `key` as an own property, even `__proto__` (plain assignment would change the prototype). */
export function withKey(object: object, key: string, value: unknown): Record<string, unknown> {
  const copy = { ...object } as Record<string, unknown>;
  Object.defineProperty(copy, key, { value, enumerable: true, writable: true, configurable: true });
  return copy;
}

/** Printable ASCII (0x21-0x7e), the alphabet of user ids. */
export const userId = fc.string({
  unit: fc.integer({ min: 0x21, max: 0x7e }).map((c) => String.fromCharCode(c)),
  minLength: 1,
  maxLength: 128,
});

/** Node ids, as `--node-id` allows them. */
export const nodeId = fc.string({
  unit: fc.constantFrom(...'ABCXYZabcxyz0189._:-'.split('')),
  minLength: 1,
  maxLength: 64,
});

export const USER_ID = /^[\x21-\x7e]{1,128}$/;

/** An endpoint as docs/protocol.md#endpoint allows it (`strict`: no other keys either). */
export function isEndpoint(value: unknown, strict: boolean): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const e = value as Record<string, unknown>;
  if (strict && Object.keys(e).some((k) => !['address', 'port', 'kind'].includes(k))) return false;
  if (typeof e.address !== 'string' || e.address.length < 2 || e.address.length > 45) return false;
  if (isIP(e.address) === 0) return false;
  if (!Number.isInteger(e.port) || (e.port as number) < 1 || (e.port as number) > 65535) return false;
  return !('kind' in e) || ['host', 'srflx', 'relay'].includes(e.kind as string);
}

export const endpoint = fc.record(
  {
    address: fc.oneof(fc.ipV4(), fc.ipV6()),
    port: fc.integer({ min: 1, max: 65535 }),
    kind: fc.constantFrom('host', 'srflx', 'relay'),
  },
  { requiredKeys: ['address', 'port'] },
);

/** `bytes` with a few bytes overwritten (within the first `head`), maybe extended, maybe cut short. */
export function mutate(bytes: Buffer, head = 16): fc.Arbitrary<Buffer> {
  return fc
    .tuple(
      fc.array(fc.tuple(fc.nat(Math.min(bytes.length, head)), fc.integer({ min: 0, max: 255 })), {
        maxLength: 3,
      }),
      fc.option(fc.nat(bytes.length), { nil: undefined }),
      fc.uint8Array({ maxLength: 4 }),
    )
    .map(([edits, cut, extra]) => {
      const out = Buffer.concat([bytes, extra]);
      for (const [at, value] of edits) if (at < out.length) out[at] = value;
      return cut === undefined ? out : out.subarray(0, cut);
    });
}
