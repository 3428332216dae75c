/**
 * The messages the browser specs send, and a plain-JSON description of any message, the
 * same in the page (bundled with page.ts) and in Node (browser-spec.ts): a description
 * crosses puppeteer's page.evaluate intact, where Maps, bigints and bytes would not, and
 * two descriptions compare with `toEqual`. Nothing here imports anything.
 */

/** The binary payload: 1 MiB. */
export const BINARY_LENGTH = 1024 * 1024;

/** A bigint beyond 2^53, so that it travels as a msgpack uint64 and comes back a bigint. */
export const BIG = 2n ** 60n + 12345n;

/** `length` bytes of a fixed xorshift32 sequence: no period a shifted or repeated chunk could hide in. */
export function binaryPattern(length = BINARY_LENGTH): Uint8Array {
  const bytes = new Uint8Array(length);
  let x = 0x9e3779b9;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** The first index where `bytes` differs from `binaryPattern()` (its length if shorter or longer), or -1. */
export function firstMismatch(bytes: Uint8Array): number {
  const expected = binaryPattern();
  const length = Math.min(bytes.length, expected.length);
  for (let i = 0; i < length; i++) if (bytes[i] !== expected[i]) return i;
  return bytes.length === expected.length ? -1 : length;
}

/** 1 MiB that every compression shrinks more than tenfold: the pseudo-random pattern, one byte in 64. */
export function compressiblePattern(): Uint8Array {
  const random = binaryPattern();
  return new Uint8Array(BINARY_LENGTH).map((_, i) => (i % 64 === 0 ? random[i] : 0));
}

/** The first index where `bytes` differs from `compressiblePattern()` (its length if shorter or longer), or -1. */
export function firstCompressibleMismatch(bytes: Uint8Array): number {
  const expected = compressiblePattern();
  const length = Math.min(bytes.length, expected.length);
  for (let i = 0; i < length; i++) if (bytes[i] !== expected[i]) return i;
  return bytes.length === expected.length ? -1 : length;
}

/** The message set: one message per kind of value a Dask peer sends. */
export function messageSet(): unknown[] {
  return [
    'hello from the page',
    'non-ASCII: ünïcødé, 日本語, שלום, emoji 🚀🧪 (astral)',
    {
      op: 'int-keys',
      keys: new Map<number, string>([
        [1, 'one'],
        [2, 'two'],
        [-7, 'minus seven'],
        [2 ** 40, 'two to the 40'],
      ]),
    },
    { op: 'nested', tree: { list: [1, [2, [3, { deep: ['x', { deeper: true }] }]]], empty: {}, none: [] } },
    { op: 'binary', data: binaryPattern() },
    { op: 'bigint', big: BIG, negative: -BIG, safe: Number.MAX_SAFE_INTEGER },
    { op: 'floats', values: [0.5, -1.25, Math.PI, 0.1, 1e300, -2.5e-300] },
    { op: 'constants', nil: null, yes: true, no: false, list: [null, true, false] },
  ];
}

/** A value as plain JSON, tagged by kind: bytes by length and FNV-1a hash, numbers exactly. */
export type Described =
  | null
  | boolean
  | string
  | { number: string }
  | { bigint: string }
  | { bytes: number; fnv1a: number }
  | { map: [Described, Described][] }
  | { array: Described[] }
  | { object: { [key: string]: Described } }
  | { unexpected: string };

/** The 32-bit FNV-1a hash of `bytes`. */
export function fnv1a(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) {
    hash ^= bytes[i];
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** `[object Uint8Array]`: works across realms (and for Node's Buffer), unlike instanceof. */
const tag = (value: unknown) => Object.prototype.toString.call(value);

export function describeValue(value: unknown): Described {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return { number: Object.is(value, -0) ? '-0' : String(value) };
  if (typeof value === 'bigint') return { bigint: String(value) };
  if (tag(value) === '[object Uint8Array]') return { bytes: (value as Uint8Array).length, fnv1a: fnv1a(value as Uint8Array) };
  if (tag(value) === '[object Map]') {
    return { map: [...(value as Map<unknown, unknown>).entries()].map(([k, v]) => [describeValue(k), describeValue(v)]) };
  }
  if (Array.isArray(value)) return { array: value.map(describeValue) };
  if (typeof value === 'object' && tag(value) === '[object Object]') {
    const object: { [key: string]: Described } = {};
    for (const [k, v] of Object.entries(value as object)) object[k] = describeValue(v);
    return { object };
  }
  return { unexpected: `${typeof value} ${tag(value)}` };
}
