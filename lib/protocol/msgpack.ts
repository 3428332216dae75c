/**
 * msgpack the way Python's msgpack reads and writes it for Dask: encode with our own
 * encoder (msgpack-encoder.ts says why), decode with msgpackr behind a pre-scan
 * (msgpack-scan.ts says why).
 *
 * Decoded values:
 * - a map whose keys are all strings: a plain object (a `__proto__` key stays an own
 *   property, so nothing is polluted and it re-encodes as it came);
 * - a map with any other key (int, float, tuple, bytes, bool, nil): a `Map` holding the
 *   keys exactly as decoded, so it re-encodes to the same keys. Tuple keys are arrays and
 *   bytes keys are byte views, so look them up by iterating, not with `get`;
 * - `{"__Set__": true, "as-list": [...]}`: a `Set`, as Dask's msgpack hook does;
 * - ints: numbers up to 2^53 in magnitude, `bigint` beyond (both signs);
 * - bin: a view of the input bytes (no copy): a Buffer on Node, a Uint8Array elsewhere
 *   (bytes.ts `asDecodeSource`);
 * - str: string; arrays (Python lists and tuples alike): arrays; float64 inf/NaN: as is.
 *
 * Known limitations, both from JS having one number type:
 * - a float with an integral value (Python's `3.0`) decodes to 3 and re-encodes as the
 *   int 3; Python code that checks `isinstance(x, float)` would notice.
 * - a float32 from Python (it never writes one for Dask) decodes to its float64 value.
 * And objects order integer-like string keys ("1", "2") first, as JS objects always do;
 * such a map re-encodes with the same keys in another order.
 *
 * Speed, side by side in one run of bench/parser.ts (npm run bench -- --parser) (Node 20, a noisy
 * 2-core VM; compare the ratios): decoding `{op: 'x', i: 1, data: 'abc'}` runs at
 * ~6.1 M/s (~165 ns), 0.8x msgpackr's lossy maps-as-objects (~7.5 M/s) and ~1.6x
 * msgpackr's maps-as-Map plus a conversion walk (~265 ns); encoding it runs at ~6.6 M/s,
 * 1.18x msgpackr's Packr (~5.6 M/s).
 */
import { Unpackr } from 'msgpackr';
import { ProtocolError } from '../errors';
import { allocUnsafeSlow, asDecodeSource } from './bytes';
import { MsgpackEncoder } from './msgpack-encoder';
import { HAS_BIN, HAS_NON_STRING_KEY, HAS_PROTO_KEY, HAS_RESERVED_KEY, scanMsgpack } from './msgpack-scan';

export { MsgpackEncoder } from './msgpack-encoder';
export type { EncodeDefault, MsgpackEncoderConfig } from './msgpack-encoder';

/**
 * Called for each decoded string-keyed map that has a key starting with `__` (Dask's
 * reserved shapes), with the map as an object; returns what replaces it. Like Python's
 * `object_hook`, but only for maps that could matter, so most messages need no walk.
 */
export type ObjectHook = (object: Record<string, unknown>) => unknown;

// 'auto': ints within ±2^53 as numbers, larger as bigint. The default ('bigint') makes
// every uint64/int64 a bigint, and Python writes those for any int beyond 32 bits.
// The option exists in msgpackr 2.1.4 but its typings list only 'bigint' | 'number' | 'string'.
const int64AsType = 'auto' as unknown as 'bigint';
const objectsUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, int64AsType });
const mapsUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: false, int64AsType });

const defaultEncoder = new MsgpackEncoder();

/**
 * The msgpack bytes Python would write for `value` (a view into a shared slab; see
 * MsgpackEncoder). A Buffer on Node, a Uint8Array elsewhere.
 *
 * ## Example
 *
 * ```ts
 * packMessage({ op: 'identity', reply: true }); // Uint8Array [0x82, 0xa2, 0x6f, 0x70, 0xa8, 0x69, 0x64, ...]
 * packMessage(new Map([[['x', 0], 1]]));        // a map with a tuple key, to Python
 * ```
 */
export function packMessage(value: unknown): Uint8Array {
  return defaultEncoder.encode(value);
}

/**
 * Dask's own msgpack hook (`msgpack_decode_default`) for what needs no Python: a
 * `{"__Set__": ..., "as-list": [...]}` map becomes a Set. `__Enum__` maps, which would
 * need Python's modules, stay plain objects.
 */
export const decodeDaskDefaults: ObjectHook = (object) => {
  if ('__Set__' in object) {
    const items = object['as-list'];
    if (!Array.isArray(items)) throw new ProtocolError('a __Set__ map without an "as-list" array');
    return new Set(items);
  }
  return object;
};

/**
 * One value from msgpack bytes, as Python's msgpack wrote them (see the top of this file).
 * `objectHook` (default: `decodeDaskDefaults`) sees maps with reserved keys; `null` for
 * none, as Dask's msgpack *serializer* reads its payloads. Malformed bytes throw
 * `ProtocolError`.
 *
 * ## Example
 *
 * ```ts
 * unpackMessage(Uint8Array.from([0x81, 0xa1, 0x61, 0x0c])); // { a: 12 }
 * unpackMessage(Uint8Array.from([0x81, 0x01, 0x0c]));       // Map { 1 => 12 }: the int key stays an int
 * ```
 */
export function unpackMessage(bytes: Uint8Array, objectHook: ObjectHook | null = decodeDaskDefaults): unknown {
  const flags = scanMsgpack(bytes);
  try {
    // The common case: all keys plain strings, so msgpackr's objects are exact.
    if ((flags & KEY_FLAGS) === 0) return unpackFrom(objectsUnpackr, bytes, flags);
    // A non-string key or a `__proto__` key would be lossy as objects: decode as Maps and
    // convert. Only reserved keys: objects are exact (no `__proto__` among them), walk them.
    if (flags & (HAS_NON_STRING_KEY | HAS_PROTO_KEY)) {
      return reviveMaps(unpackFrom(mapsUnpackr, bytes, flags), objectHook);
    }
    const value: unknown = unpackFrom(objectsUnpackr, bytes, flags);
    return objectHook === null ? value : reviveObjects(value, objectHook);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`malformed msgpack: ${(err as Error).message}`, { cause: err });
  }
}

const KEY_FLAGS = HAS_NON_STRING_KEY | HAS_RESERVED_KEY | HAS_PROTO_KEY;

/**
 * msgpackr builds a DataView for every new source buffer (and caches it on the buffer).
 * Each frame is a new view, so that was ~150 ns of a ~330 ns decode of a small
 * message. A small message without bins (so the decoded value holds no view of its
 * source) is copied into one scratch buffer instead, whose DataView msgpackr keeps.
 * (Decoding from a view of the whole chunk with start/end was slower: msgpackr picks
 * its string strategy by the absolute end offset.)
 */
const SCRATCH_SIZE = 2048;
const scratch = allocUnsafeSlow(SCRATCH_SIZE);

function unpackFrom(unpackr: Unpackr, bytes: Uint8Array, flags: number): unknown {
  const length = bytes.length;
  if ((flags & HAS_BIN) === 0 && length <= SCRATCH_SIZE) {
    scratch.set(bytes);
    return unpackr.unpack(scratch, length);
  }
  // Bins decode as views of this source, so it decides their class: see asDecodeSource.
  return unpackr.unpack(asDecodeSource(bytes));
}

/** Walks a tree decoded with maps as objects, giving maps with `__` keys to the hook. */
function reviveObjects(value: unknown, hook: ObjectHook): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveObjects(value[i], hook);
    return value;
  }
  // Only plain objects, arrays and bins (byte views) come out of this path.
  if (ArrayBuffer.isView(value)) return value;
  const object = value as Record<string, unknown>;
  let reserved = false;
  for (const key of Object.keys(object)) {
    object[key] = reviveObjects(object[key], hook);
    if (key.charCodeAt(0) === 0x5f && key.charCodeAt(1) === 0x5f) reserved = true;
  }
  return reserved ? hook(object) : object;
}

/** Walks a tree decoded with maps as `Map`: string-keyed maps become objects, others stay Maps. */
function reviveMaps(value: unknown, hook: ObjectHook | null): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) value[i] = reviveMaps(value[i], hook);
    return value;
  }
  // Only Maps, arrays and bins (byte views) come out of this path.
  if (ArrayBuffer.isView(value)) return value;
  const map = value as Map<unknown, unknown>;
  let allStrings = true;
  for (const key of map.keys()) {
    if (typeof key !== 'string') {
      allStrings = false;
      break;
    }
  }
  if (!allStrings) {
    // Keys stay exactly as decoded; only the values are revived (Python keys are hashable
    // tuples, bytes or scalars, so they hold no maps to revive).
    for (const [key, entry] of map) map.set(key, reviveMaps(entry, hook));
    return map;
  }
  const object: Record<string, unknown> = {};
  let reserved = false;
  for (const [key, entry] of map as Map<string, unknown>) {
    const revived = reviveMaps(entry, hook);
    if (key === '__proto__') {
      // An own data property: `object.__proto__ = x` would set the prototype instead.
      Object.defineProperty(object, key, { value: revived, writable: true, enumerable: true, configurable: true });
    } else {
      object[key] = revived;
    }
    if (key.charCodeAt(0) === 0x5f && key.charCodeAt(1) === 0x5f) reserved = true;
  }
  return reserved && hook !== null ? hook(object) : object;
}
