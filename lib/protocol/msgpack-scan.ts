/**
 * A structural pre-scan of msgpack bytes, so the decoder can take msgpackr's fastest
 * path (maps as plain objects) whenever that is lossless, which is nearly always.
 *
 * msgpackr with `mapsAsObjects: true` turns the int key 1 into "1" without a word, throws
 * on tuple (array) keys, and renames a `__proto__` key to `__proto_`. With
 * `mapsAsObjects: false` every map becomes a `Map`, which then needs a walk to turn the
 * usual string-keyed maps back into objects. The scan costs less than either: it skips
 * strings and bins by their lengths and looks only at the first bytes of each map key.
 *
 * It also validates what msgpackr would trust: truncated data, trailing bytes, nesting
 * deeper than Python allows, the never-used byte 0xc1, and extension types (msgpackr
 * would give them meanings of its own, such as record definitions; Dask never sends any).
 *
 * Recursive descent: measured faster here than an explicit stack (V8 keeps the state in
 * registers), and the depth limit keeps the JS stack safe.
 */
import { ProtocolError } from '../errors';

/** Some map has a key that is not a string: decode maps as `Map`. */
export const HAS_NON_STRING_KEY = 1;
/** Some string key starts with `__` (`__Set__`, `__Serialized__`...): the hook must see it. */
export const HAS_RESERVED_KEY = 2;
/** Some key is the string `__proto__`, which msgpackr's objects would rename: decode maps as `Map`. */
export const HAS_PROTO_KEY = 4;
/** Some value is a bin: msgpackr decodes it as a view of the source bytes. */
export const HAS_BIN = 8;

/** Python's msgpack unpacker refuses deeper nesting (its stack holds 1024 containers). */
const MAX_DEPTH = 1024;

// The scan's state. Module-level: a scan runs to completion and calls nothing outside.
let src: Uint8Array = new Uint8Array(0);
let pos = 0;
let end = 0;
let flags = 0;

/**
 * Checks that `bytes` hold exactly one well-formed msgpack value and reports, as the
 * flags above, what the decoder needs to know about its map keys.
 */
export function scanMsgpack(bytes: Uint8Array): number {
  src = bytes;
  pos = 0;
  end = bytes.length;
  flags = 0;
  skipValue(0);
  src = EMPTY; // do not keep the message alive
  if (pos > end) throw truncated();
  if (pos < end) throw new ProtocolError(`msgpack data has ${end - pos} bytes after the end of the value`);
  return flags;
}

const EMPTY = new Uint8Array(0);

function truncated(): ProtocolError {
  src = EMPTY;
  return new ProtocolError('msgpack data ends in the middle of a value');
}

function skipValue(depth: number): void {
  if (pos >= end) throw truncated();
  const token = src[pos++];
  if (token < 0x80 || token >= 0xe0) return; // fixint
  if (token < 0x90) return skipMap(token & 0x0f, depth);
  if (token < 0xa0) return skipArray(token & 0x0f, depth);
  if (token < 0xc0) {
    pos += token & 0x1f; // fixstr
    return;
  }
  switch (token) {
    case 0xc0: // nil
    case 0xc2: // false
    case 0xc3: // true
      return;
    case 0xcc: // uint8
    case 0xd0: // int8
      pos += 1;
      return;
    case 0xcd:
    case 0xd1:
      pos += 2;
      return;
    case 0xca: // float32
    case 0xce:
    case 0xd2:
      pos += 4;
      return;
    case 0xcb: // float64
    case 0xcf:
    case 0xd3:
      pos += 8;
      return;
    case 0xd9: // str8
      pos += 1 + readLength(1);
      return;
    case 0xda:
      pos += 2 + readLength(2);
      return;
    case 0xdb:
      pos += 4 + readLength(4);
      return;
    case 0xc4: // bin8
      flags |= HAS_BIN;
      pos += 1 + readLength(1);
      return;
    case 0xc5:
      flags |= HAS_BIN;
      pos += 2 + readLength(2);
      return;
    case 0xc6:
      flags |= HAS_BIN;
      pos += 4 + readLength(4);
      return;
    case 0xdc: {
      const count = readLength(2);
      pos += 2;
      return skipArray(count, depth);
    }
    case 0xdd: {
      const count = readLength(4);
      pos += 4;
      return skipArray(count, depth);
    }
    case 0xde: {
      const count = readLength(2);
      pos += 2;
      return skipMap(count, depth);
    }
    case 0xdf: {
      const count = readLength(4);
      pos += 4;
      return skipMap(count, depth);
    }
    case 0xc1:
      src = EMPTY;
      throw new ProtocolError('msgpack data holds the never-used byte 0xc1');
    default:
      // 0xc7-0xc9, 0xd4-0xd8: extension types.
      src = EMPTY;
      throw new ProtocolError(`msgpack extension types are not part of Dask's protocol (byte 0x${token.toString(16)})`);
  }
}

/** A big-endian length of `size` bytes at `pos` (not consumed). */
function readLength(size: number): number {
  if (pos + size > end) throw truncated();
  if (size === 1) return src[pos];
  if (size === 2) return (src[pos] << 8) | src[pos + 1];
  return src[pos] * 0x100_0000 + ((src[pos + 1] << 16) | (src[pos + 2] << 8) | src[pos + 3]);
}

function enter(items: number, depth: number): void {
  // Every item takes a byte at least: a count beyond the bytes left is garbage, refused
  // before anyone could allocate for it.
  if (items > end - pos) throw truncated();
  if (depth >= MAX_DEPTH) {
    src = EMPTY;
    throw new ProtocolError(`msgpack data nests deeper than ${MAX_DEPTH} levels`);
  }
}

function skipArray(count: number, depth: number): void {
  if (count === 0) return;
  enter(count, depth);
  for (let i = 0; i < count; i++) skipValue(depth + 1);
}

function skipMap(count: number, depth: number): void {
  if (count === 0) return;
  enter(2 * count, depth);
  for (let i = 0; i < count; i++) {
    if (pos >= end) throw truncated();
    const key = src[pos];
    if ((key & 0xe0) === 0xa0) {
      // fixstr, nearly every key: inline.
      const length = key & 0x1f;
      if (length >= 2 && src[pos + 1] === 0x5f && src[pos + 2] === 0x5f) flagReservedKey(pos + 1, length);
      pos += 1 + length;
    } else {
      if (key === 0xd9 || key === 0xda || key === 0xdb) {
        const header = key === 0xd9 ? 2 : key === 0xda ? 3 : 5;
        if (src[pos + header] === 0x5f && src[pos + header + 1] === 0x5f) flags |= HAS_RESERVED_KEY;
      } else {
        flags |= HAS_NON_STRING_KEY;
      }
      skipValue(depth + 1);
    }
    // The value: scalars and short strings inline, the rest through skipValue.
    const value = src[pos];
    if (value < 0x80 || value >= 0xe0 || value === 0xc0 || value === 0xc2 || value === 0xc3) pos += 1;
    else if ((value & 0xe0) === 0xa0) pos += 1 + (value & 0x1f);
    else skipValue(depth + 1);
  }
}

/** "__proto__" is 9 bytes: the two underscores at `at` already matched. */
const PROTO_TAIL = [0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f]; // "proto__"
function flagReservedKey(at: number, length: number): void {
  flags |= HAS_RESERVED_KEY;
  if (length !== 9) return;
  for (let i = 0; i < 7; i++) if (src[at + 2 + i] !== PROTO_TAIL[i]) return;
  flags |= HAS_PROTO_KEY;
}
