/**
 * Dask's TCP framing: how one message (a list of frames) travels on a byte stream. This
 * module is the one place that knows the layout; the parser and the writer both use it.
 *
 * All integers are unsigned 64-bit little-endian:
 *
 *     T            bytes that follow T (Dask 2022.12.1: the prelude and all frames)
 *     N            number of frames          \
 *     len[0..N-1]  length of each frame       } the prelude, 8 * (1 + N) bytes
 *     frame[0] ... frame[N-1]                 / back to back, no padding
 *
 * T and the prelude make the header, `headerSize(N)` = 8 * (2 + N) bytes before frame 0.
 * Dask 2022.12.1 writes T = 8 * (1 + N) + sum(len), so that a message takes 8 + T bytes.
 *
 * Dask since late 2023 may send a smaller T that covers only the prelude and the first
 * frames (it reads the rest of the frames by their lengths, into separate buffers). The
 * parser reads every frame by its length, so it accepts both; T is only checked.
 */
import type { FramePieces } from '../codec';

/** Every integer of the header is a u64: 8 bytes. */
export const WORD_SIZE = 8;
export const TWO_POW_32 = 0x1_0000_0000;
/** A high 32-bit word at or above this makes a u64 larger than 2^53: no JS number holds it exactly. */
export const HIGH_WORD_UNSAFE = 0x20_0000;

/** Bytes before frame 0: T, N and the N lengths. */
export function headerSize(frameCount: number): number {
  return WORD_SIZE * (2 + frameCount);
}

/** The prelude's share of T: N and the N lengths, without T itself. */
export function preludeSize(frameCount: number): number {
  return WORD_SIZE * (1 + frameCount);
}

/** The length of one frame, whole or in pieces. */
export function frameLength(frame: FramePieces): number {
  if (frame instanceof Uint8Array) return frame.byteLength;
  let length = 0;
  for (let i = 0; i < frame.length; i++) length += frame[i].byteLength;
  return length;
}

/** The size on the wire of a message of these frames: the header (T included) and the frames. */
export function wireSize(frames: readonly FramePieces[]): number {
  let size = headerSize(frames.length);
  for (let i = 0; i < frames.length; i++) size += frameLength(frames[i]);
  return size;
}

/** The bytes after T (the prelude and the frames): what `maxMessageSize` limits, both ways. */
export function messageSize(frames: readonly FramePieces[]): number {
  return wireSize(frames) - WORD_SIZE;
}

/**
 * Writes the header of a message of these frames at `at` (T = 8 * (1 + N) + sum(len), as
 * Dask 2022.12.1 does); `target` must hold `headerSize(frames.length)` bytes from there.
 * Returns the message's size on the wire, T included. The frames themselves follow, from
 * `at + headerSize(frames.length)`, and are the caller's to write.
 */
export function writeHeader(target: Uint8Array, at: number, frames: readonly FramePieces[]): number {
  const count = frames.length;
  let size = headerSize(count);
  for (let i = 0; i < count; i++) {
    const length = frameLength(frames[i]);
    writeUint64(target, at + WORD_SIZE * (2 + i), length);
    size += length;
  }
  writeUint64(target, at, size - WORD_SIZE);
  writeUint64(target, at + WORD_SIZE, count);
  return size;
}

/**
 * A little-endian u64 by plain byte stores: cheaper than Buffer's checked writers, and
 * inlined by V8. Any integer up to 2^53 (every length) is written exactly.
 */
export function writeUint64(target: Uint8Array, at: number, value: number): void {
  // A store keeps the low 8 bits; `>>>` first keeps the low 32 bits of the integer.
  target[at] = value;
  target[at + 1] = value >>> 8;
  target[at + 2] = value >>> 16;
  target[at + 3] = value >>> 24;
  const high = value < TWO_POW_32 ? 0 : Math.floor(value / TWO_POW_32);
  target[at + 4] = high;
  target[at + 5] = high >>> 8;
  target[at + 6] = high >>> 16;
  target[at + 7] = high >>> 24;
}

/** One 32-bit half of a little-endian u64 (the low one at `at`, the high one at `at + 4`). */
export function readUint32(source: Uint8Array, at: number): number {
  // Plain arithmetic: no bounds check (callers checked), and inlined by V8 in the hot loop.
  return (source[at] | (source[at + 1] << 8) | (source[at + 2] << 16)) + source[at + 3] * 0x100_0000;
}

/** The exact value of a u64 that does not fit in a JS number, for error messages. */
export function exactUint64(low: number, high: number): bigint {
  return (BigInt(high) << 32n) | BigInt(low);
}
