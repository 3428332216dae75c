/**
 * LZ4 as Dask writes it: Python's `lz4.block.compress` with its default `store_size`, so a
 * u32 little-endian uncompressed size and then one raw LZ4 block (not the LZ4 frame
 * format). Pure TypeScript, so the browser build reads and writes it too; Node may swap
 * in a native compressor (`platform/node.ts`), never a decoder: this one checks every
 * offset and length against the declared size, which a native decoder given a hostile
 * size prefix would be trusted to do.
 *
 * Block format (lz4's `doc/lz4_Block_format.md`): sequences of a token (high nibble:
 * literal count, low nibble: match length − 4; 15 means more length bytes follow, each
 * added until one is not 255), the literals, a u16 LE offset back into the output and the
 * match. The last sequence is literals only; the last 5 bytes are always literals and the
 * last match starts at least 12 bytes before the end.
 */
import { ProtocolError } from '../../errors';
import { allocUnsafeSlow } from '../bytes';

const MIN_MATCH = 4;
/** The last match must start this far before the end of the input (the format's rule). */
const MF_LIMIT = 12;
/** The last bytes are always literals. */
const LAST_LITERALS = 5;
const HASH_BITS = 16;
const MAX_OFFSET = 65535;

/** The size a payload declares, before anything is allocated for it. */
export function lz4DeclaredSize(data: Uint8Array): number {
  if (data.length < 4) throw new ProtocolError(`an lz4 payload needs its 4-byte size, got ${data.length} bytes`);
  return (data[0] | (data[1] << 8) | (data[2] << 16)) + data[3] * 0x1000000;
}

/** Decompresses a size-prefixed block; the output must be exactly the declared size. */
export function lz4Decompress(data: Uint8Array, limit: number): Uint8Array {
  const size = lz4DeclaredSize(data);
  if (size > limit) throw new ProtocolError(`an lz4 payload declares ${size} bytes, above the limit of ${limit}`);
  const out = allocUnsafeSlow(size); // every byte is written, or the payload is refused
  const end = data.length;
  let ip = 4;
  let op = 0;
  for (;;) {
    if (ip >= end) throw new ProtocolError('an lz4 block ends inside a sequence');
    const token = data[ip++];
    let literals = token >>> 4;
    if (literals === 15) {
      let more: number;
      do {
        if (ip >= end) throw new ProtocolError('an lz4 block ends inside a literal length');
        more = data[ip++];
        literals += more;
      } while (more === 255);
    }
    if (literals > 0) {
      if (ip + literals > end || op + literals > size) throw new ProtocolError('an lz4 literal run overruns its block or the declared size');
      if (literals < 16) {
        for (let i = 0; i < literals; i++) out[op + i] = data[ip + i];
      } else {
        out.set(data.subarray(ip, ip + literals), op);
      }
      ip += literals;
      op += literals;
    }
    if (ip === end) break; // the last sequence: literals only
    if (ip + 2 > end) throw new ProtocolError('an lz4 block ends inside a match offset');
    const offset = data[ip] | (data[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new ProtocolError(`an lz4 match points ${offset} bytes back from position ${op}`);
    let length = (token & 15) + MIN_MATCH;
    if ((token & 15) === 15) {
      let more: number;
      do {
        if (ip >= end) throw new ProtocolError('an lz4 block ends inside a match length');
        more = data[ip++];
        length += more;
      } while (more === 255);
    }
    if (op + length > size) throw new ProtocolError('an lz4 match overruns the declared size');
    copyMatch(out, op, offset, length);
    op += length;
  }
  if (op !== size) throw new ProtocolError(`an lz4 payload declares ${size} bytes but holds ${op}`);
  return out;
}

/**
 * Copies `length` bytes from `offset` back, overlapping allowed (offset 1 repeats a byte).
 * Short matches byte by byte; long ones with `copyWithin`, doubling the span for an
 * overlapping match: the bytes from `from` repeat with period `offset`, and each copy
 * keeps the distance from `from` a multiple of it.
 */
function copyMatch(out: Uint8Array, op: number, offset: number, length: number): void {
  const from = op - offset;
  if (length < 32) {
    for (let i = 0; i < length; i++) out[op + i] = out[from + i];
    return;
  }
  const end = op + length;
  let at = op;
  while (at < end) {
    const n = Math.min(at - from, end - at);
    out.copyWithin(at, from, from + n);
    at += n;
  }
}

/**
 * The size-prefixed block of `head` followed by the bytes `compressed` holds, without
 * joining them first: `head` becomes extra literals of the block's first sequence. For a
 * frame sent as pieces (a msgpack bin's few header bytes, then the caller's large buffer),
 * this saves copying the buffer only to compress it. Offsets are distances back, so the
 * rest of the block stays valid as it is.
 */
export function lz4Prepend(head: Uint8Array, compressed: Uint8Array): Uint8Array {
  const size = lz4DeclaredSize(compressed) + head.length;
  let ip = 4;
  const token = compressed[ip++];
  let literals = token >>> 4;
  if (literals === 15) {
    let more: number;
    do {
      more = compressed[ip++];
      literals += more;
    } while (more === 255);
  }
  const total = literals + head.length;
  const out = new Uint8Array(compressed.length + head.length + Math.ceil(total / 255) + 1);
  out[0] = size & 0xff;
  out[1] = (size >>> 8) & 0xff;
  out[2] = (size >>> 16) & 0xff;
  out[3] = (size >>> 24) & 0xff;
  let op = 4;
  out[op++] = (Math.min(total, 15) << 4) | (token & 15);
  if (total >= 15) op = writeLength(out, op, total - 15);
  out.set(head, op);
  op += head.length;
  out.set(compressed.subarray(ip), op);
  return out.subarray(0, op + compressed.length - ip);
}

/** The largest compressed size of `n` bytes (lz4's `LZ4_compressBound`), plus the size prefix. */
function compressBound(n: number): number {
  return 4 + n + Math.floor(n / 255) + 16;
}

let hashTable: Int32Array | undefined;

/**
 * Greedy LZ4 compression (lz4's fast mode, acceleration 1, skipping ahead faster the
 * longer no match is found): a 64 Ki-entry table of the last position of each hashed
 * 4-byte sequence. One table per process, reset per call.
 */
export function lz4Compress(data: Uint8Array): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(compressBound(n));
  out[0] = n & 0xff;
  out[1] = (n >>> 8) & 0xff;
  out[2] = (n >>> 16) & 0xff;
  out[3] = (n >>> 24) & 0xff;
  let op = 4;
  let anchor = 0;
  if (n >= MF_LIMIT + 1) {
    const table = (hashTable ??= new Int32Array(1 << HASH_BITS));
    table.fill(-1);
    const matchLimit = n - LAST_LITERALS;
    const searchLimit = n - MF_LIMIT;
    let ip = 1;
    let misses = 1 << 6; // lz4's skip trigger: step grows every 64 misses
    while (ip < searchLimit) {
      const sequence = read32(data, ip);
      const hash = Math.imul(sequence, 2654435761) >>> (32 - HASH_BITS);
      const candidate = table[hash];
      table[hash] = ip;
      if (candidate < 0 || ip - candidate > MAX_OFFSET || read32(data, candidate) !== sequence) {
        ip += misses++ >>> 6;
        continue;
      }
      misses = 1 << 6;
      // Extend backwards over literals that match too, then forwards.
      let start = ip;
      let ref = candidate;
      while (start > anchor && ref > 0 && data[start - 1] === data[ref - 1]) {
        start--;
        ref--;
      }
      let matchEnd = ip + MIN_MATCH;
      let refEnd = candidate + MIN_MATCH;
      while (matchEnd < matchLimit && data[matchEnd] === data[refEnd]) {
        matchEnd++;
        refEnd++;
      }
      op = writeSequence(out, op, data, anchor, start, start - ref, matchEnd - start);
      anchor = matchEnd;
      ip = matchEnd;
      if (ip < searchLimit) table[Math.imul(read32(data, ip - 2), 2654435761) >>> (32 - HASH_BITS)] = ip - 2;
    }
  }
  op = writeLastLiterals(out, op, data, anchor);
  return out.subarray(0, op);
}

function read32(data: Uint8Array, at: number): number {
  return data[at] | (data[at + 1] << 8) | (data[at + 2] << 16) | (data[at + 3] << 24);
}

function writeLength(out: Uint8Array, op: number, rest: number): number {
  while (rest >= 255) {
    out[op++] = 255;
    rest -= 255;
  }
  out[op++] = rest;
  return op;
}

function writeSequence(out: Uint8Array, op: number, data: Uint8Array, anchor: number, start: number, offset: number, matchLength: number): number {
  const literals = start - anchor;
  const extra = matchLength - MIN_MATCH;
  out[op++] = (Math.min(literals, 15) << 4) | Math.min(extra, 15);
  if (literals >= 15) op = writeLength(out, op, literals - 15);
  out.set(data.subarray(anchor, start), op);
  op += literals;
  out[op++] = offset & 0xff;
  out[op++] = offset >>> 8;
  if (extra >= 15) op = writeLength(out, op, extra - 15);
  return op;
}

function writeLastLiterals(out: Uint8Array, op: number, data: Uint8Array, anchor: number): number {
  const literals = data.length - anchor;
  out[op++] = Math.min(literals, 15) << 4;
  if (literals >= 15) op = writeLength(out, op, literals - 15);
  out.set(data.subarray(anchor), op);
  return op + literals;
}
