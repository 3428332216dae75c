/**
 * Snappy as Dask writes it (`python-snappy`'s `compress`): one raw Snappy block, a varint
 * uncompressed length and then literal and copy elements (snappy's
 * `format_description.txt`). Both directions are ours, in plain TypeScript: the decoder
 * checks every copy and the final length against the declared size.
 */
import { ProtocolError } from '../../errors';
import { allocUnsafeSlow } from '../bytes';

/** The varint length at the start of a block, and where the elements begin. */
function declaredLength(data: Uint8Array): { size: number; start: number } {
  let size = 0;
  for (let i = 0, shift = 0; i < 5 && i < data.length; i++, shift += 7) {
    size += (data[i] & 0x7f) * 2 ** shift;
    if ((data[i] & 0x80) === 0) return { size, start: i + 1 };
  }
  throw new ProtocolError('a snappy payload does not start with its length');
}

export function snappyDecompress(data: Uint8Array, limit: number): Uint8Array {
  const { size, start } = declaredLength(data);
  if (size > limit) throw new ProtocolError(`a snappy payload declares ${size} bytes, above the limit of ${limit}`);
  const out = allocUnsafeSlow(size); // every byte is written, or the payload is refused
  const end = data.length;
  let ip = start;
  let op = 0;
  while (ip < end) {
    const tag = data[ip++];
    const kind = tag & 3;
    if (kind === 0) {
      let length = (tag >>> 2) + 1;
      if (length > 60) {
        const bytes = length - 60;
        if (ip + bytes > end) throw new ProtocolError('a snappy block ends inside a literal length');
        length = 1;
        for (let i = 0; i < bytes; i++) length += data[ip + i] * 2 ** (8 * i);
        ip += bytes;
      }
      if (ip + length > end || op + length > size) throw new ProtocolError('a snappy literal overruns its block or the declared size');
      out.set(data.subarray(ip, ip + length), op);
      ip += length;
      op += length;
      continue;
    }
    let length: number;
    let offset: number;
    if (kind === 1) {
      if (ip + 1 > end) throw new ProtocolError('a snappy block ends inside a copy');
      length = ((tag >>> 2) & 7) + 4;
      offset = ((tag >>> 5) << 8) | data[ip];
      ip += 1;
    } else if (kind === 2) {
      if (ip + 2 > end) throw new ProtocolError('a snappy block ends inside a copy');
      length = (tag >>> 2) + 1;
      offset = data[ip] | (data[ip + 1] << 8);
      ip += 2;
    } else {
      if (ip + 4 > end) throw new ProtocolError('a snappy block ends inside a copy');
      length = (tag >>> 2) + 1;
      offset = (data[ip] | (data[ip + 1] << 8) | (data[ip + 2] << 16)) + data[ip + 3] * 0x1000000;
      ip += 4;
    }
    if (offset === 0 || offset > op) throw new ProtocolError(`a snappy copy points ${offset} bytes back from position ${op}`);
    if (op + length > size) throw new ProtocolError('a snappy copy overruns the declared size');
    // At most 64 bytes each: byte by byte, overlapping allowed.
    for (let i = 0, from = op - offset; i < length; i++) out[op + i] = out[from + i];
    op += length;
  }
  if (op !== size) throw new ProtocolError(`a snappy payload declares ${size} bytes but holds ${op}`);
  return out;
}

const HASH_BITS = 14;
/** Snappy compresses in independent 64 KiB blocks: copies never reach into an earlier one. */
const BLOCK = 65536;
/** A match must leave this many bytes for the hash at its end (snappy's input margin). */
const MARGIN = 15;

let table: Int32Array | undefined;

/**
 * Greedy Snappy compression as the reference does it: each 64 KiB block on its own, a
 * 16 Ki-entry table of hashed 4-byte sequences, skipping ahead faster the longer no
 * match is found, copies of at most 64 bytes.
 */
export function snappyCompressBlock(data: Uint8Array): Uint8Array {
  const n = data.length;
  const out = new Uint8Array(10 + n + Math.floor(n / 6) + 32);
  let op = 0;
  for (let rest = n; ; ) {
    out[op++] = rest >= 0x80 ? (rest & 0x7f) | 0x80 : rest;
    rest = Math.floor(rest / 128);
    if (rest === 0) break;
  }
  const hashes = (table ??= new Int32Array(1 << HASH_BITS));
  for (let blockStart = 0; blockStart < n; blockStart += BLOCK) {
    const blockEnd = Math.min(n, blockStart + BLOCK);
    hashes.fill(-1);
    let anchor = blockStart;
    let ip = blockStart;
    let misses = 32;
    while (ip + MARGIN < blockEnd) {
      const sequence = read32(data, ip);
      const hash = Math.imul(sequence, 0x1e35a7bd) >>> (32 - HASH_BITS);
      const candidate = hashes[hash];
      hashes[hash] = ip;
      if (candidate < 0 || read32(data, candidate) !== sequence) {
        ip += misses++ >>> 5;
        continue;
      }
      misses = 32;
      op = emitLiteral(out, op, data, anchor, ip);
      let end = ip + 4;
      while (end < blockEnd && data[end] === data[candidate + end - ip]) end++;
      op = emitCopy(out, op, ip - candidate, end - ip);
      anchor = ip = end;
    }
    op = emitLiteral(out, op, data, anchor, blockEnd);
  }
  return out.subarray(0, op);
}

function read32(data: Uint8Array, at: number): number {
  return data[at] | (data[at + 1] << 8) | (data[at + 2] << 16) | (data[at + 3] << 24);
}

function emitLiteral(out: Uint8Array, op: number, data: Uint8Array, from: number, to: number): number {
  const length = to - from;
  if (length === 0) return op;
  const n = length - 1;
  if (n < 60) {
    out[op++] = n << 2;
  } else if (n < 0x100) {
    out[op++] = 60 << 2;
    out[op++] = n;
  } else if (n < 0x10000) {
    out[op++] = 61 << 2;
    out[op++] = n & 0xff;
    out[op++] = n >>> 8;
  } else {
    out[op++] = 62 << 2;
    out[op++] = n & 0xff;
    out[op++] = (n >>> 8) & 0xff;
    out[op++] = n >>> 16; // a literal stays within one 64 KiB block
  }
  out.set(data.subarray(from, to), op);
  return op + length;
}

/** Copies of 4 to 64 bytes; a longer match is several, the last at least 4 bytes long. */
function emitCopy(out: Uint8Array, op: number, offset: number, length: number): number {
  while (length >= 68) {
    op = emitCopyUpTo64(out, op, offset, 64);
    length -= 64;
  }
  if (length > 64) {
    op = emitCopyUpTo64(out, op, offset, 60);
    length -= 60;
  }
  return emitCopyUpTo64(out, op, offset, length);
}

function emitCopyUpTo64(out: Uint8Array, op: number, offset: number, length: number): number {
  if (length < 12 && offset < 2048) {
    out[op++] = 1 | ((length - 4) << 2) | ((offset >>> 8) << 5);
    out[op++] = offset & 0xff;
  } else {
    out[op++] = 2 | ((length - 1) << 2);
    out[op++] = offset & 0xff;
    out[op++] = offset >>> 8;
  }
  return op;
}
