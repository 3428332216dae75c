/**
 * Dask's frame compression (`distributed/protocol/compression.py`): the formats, the
 * labels that name them in a payload's sub-header, and Dask's rule for when to compress.
 *
 * Only out-of-band payload frames are ever compressed, never frame 0 nor sub-headers.
 * Reading follows each frame's label whatever the handshake negotiated: a scheduler
 * forwards stored payloads untouched, so a peer that asked for none still receives them.
 *
 * Every format reads in pure JS (the browser build included). Writing: lz4, snappy and
 * zlib in pure JS; zstd only once Node has installed an encoder. `platform/node.ts`
 * swaps in faster Node implementations where they exist (Node's zlib, a native lz4
 * compressor), keeping the checked decoders of lz4 and snappy.
 */
import { ProtocolError } from '../../errors';
import { allocUnsafeSlow, concatBytes } from '../bytes';
import { lz4Compress, lz4Decompress, lz4Prepend } from './lz4';
import { snappyCompressBlock, snappyDecompress } from './snappy';
import { zlibCompress, zlibDecompress } from './zlib';
import { zstdDecompress } from './zstd';

/** The labels Dask writes in a sub-header's `compression` list. */
export type CompressionName = 'lz4' | 'zstd' | 'snappy' | 'zlib';
export const COMPRESSION_NAMES: readonly CompressionName[] = ['lz4', 'zstd', 'snappy', 'zlib'];

/**
 * One format. `decompress` must return exactly the bytes the payload holds, refuse more
 * than `limit` before allocating them, and throw `ProtocolError` on anything malformed.
 */
export interface CompressionFormat {
  compress?: (data: Uint8Array) => Uint8Array;
  decompress: (data: Uint8Array, limit: number) => Uint8Array;
  /** Makes `compress` available (an encoder that loads asynchronously, such as WebAssembly). */
  loadCompressor?: () => Promise<(data: Uint8Array) => Uint8Array>;
}

const formats: Record<CompressionName, CompressionFormat> = {
  lz4: { compress: lz4Compress, decompress: lz4Decompress },
  zstd: { decompress: zstdDecompress },
  snappy: { compress: snappyCompressBlock, decompress: snappyDecompress },
  zlib: { compress: zlibCompress, decompress: zlibDecompress },
};

/** For the platform: a faster or newly available part of a format. */
export function installCompressionFormat(name: CompressionName, parts: Partial<CompressionFormat>): void {
  formats[name] = { ...formats[name], ...parts };
}

export function isCompressionName(value: unknown): value is CompressionName {
  return typeof value === 'string' && (COMPRESSION_NAMES as readonly string[]).includes(value);
}

/** Whether this platform can write `name` now or after `prepareCompressor`. */
export function canCompress(name: CompressionName): boolean {
  return formats[name].compress !== undefined || formats[name].loadCompressor !== undefined;
}

/** Compressors being loaded, so that concurrent callers share one load. */
const loading = new Map<CompressionName, Promise<void>>();

/**
 * Makes `name`'s compressor ready: `undefined` when it already is (or cannot be), else a
 * promise that settles when it is, rejecting if it cannot load.
 */
export function prepareCompressor(name: CompressionName): Promise<void> | undefined {
  const format = formats[name];
  if (format.compress !== undefined || format.loadCompressor === undefined) return undefined;
  let promise = loading.get(name);
  if (promise === undefined) {
    promise = format.loadCompressor().then(
      (compress) => {
        formats[name] = { ...formats[name], compress, loadCompressor: undefined };
        loading.delete(name);
      },
      (err: unknown) => {
        loading.delete(name); // a later call tries again
        throw err;
      },
    );
    loading.set(name, promise);
  }
  return promise;
}

/**
 * Dask's `auto`: the best format available, in Dask's order of preference (lz4, then
 * snappy). Both are always available here, so `auto` is lz4.
 */
export function resolveAutoCompression(): CompressionName {
  return canCompress('lz4') ? 'lz4' : 'snappy';
}

/** One frame as its label says (null: as it is). */
export function decompressFrame(label: unknown, frame: Uint8Array, limit: number): Uint8Array {
  if (label === null || label === undefined) return frame;
  if (!isCompressionName(label)) {
    throw new ProtocolError(`a payload frame is compressed with ${typeof label === 'string' ? `'${label}'` : String(label)}, which rxcomm does not know`);
  }
  return formats[label].decompress(frame, limit);
}

/** Dask's bounds: smaller frames are not worth it, larger ones break compressors. */
export const MIN_COMPRESS_SIZE = 10_000;
export const MAX_COMPRESS_SIZE = 2 ** 31;
/** Compressed data is kept only at or below this share of the original (current Dask's; 2022.12.1 kept 0.9). */
export const MIN_COMPRESSION_RATIO = 0.7;
const SAMPLE_SIZE = 10_000;
const SAMPLES = 5;

/**
 * Dask's `maybe_compress`, for a frame given as pieces sent back to back (a msgpack
 * head and a large bin uncopied): a frame of 10,000 bytes to 2 GiB is compressed only if
 * a sample of it (5 slices of 10,000 bytes, evenly spread over its largest piece; Dask
 * picks them at random) shrinks to 70 % or less, and kept only if the whole frame does
 * too. Returns the compressed frame, or `undefined` when compression does not pay or the
 * compressor is not ready: an incompressible frame costs the sample, nothing more.
 */
export function maybeCompress(pieces: readonly Uint8Array[], name: CompressionName): Uint8Array | undefined {
  const compress = formats[name].compress;
  let size = 0;
  let largest = pieces[0];
  for (const piece of pieces) {
    size += piece.length;
    if (piece.length > largest.length) largest = piece;
  }
  if (compress === undefined || size < MIN_COMPRESS_SIZE || size > MAX_COMPRESS_SIZE) return undefined;
  const sample = byteSample(largest);
  if (compress(sample).length > MIN_COMPRESSION_RATIO * sample.length) return undefined;
  const compressed =
    pieces.length === 1
      ? compress(pieces[0])
      : name === 'lz4' && pieces.length === 2 && pieces[0].length < 64
        ? lz4Prepend(pieces[0], compress(pieces[1])) // a bin's header, then the caller's buffer: no join
        : compress(concatBytes(pieces));
  return compressed.length <= MIN_COMPRESSION_RATIO * size ? compressed : undefined;
}

function byteSample(bytes: Uint8Array): Uint8Array {
  if (bytes.length <= SAMPLE_SIZE * SAMPLES) return bytes;
  const sample = allocUnsafeSlow(SAMPLE_SIZE * SAMPLES);
  const step = Math.floor((bytes.length - SAMPLE_SIZE) / (SAMPLES - 1));
  for (let i = 0; i < SAMPLES; i++) sample.set(bytes.subarray(i * step, i * step + SAMPLE_SIZE), i * SAMPLE_SIZE);
  return sample;
}
