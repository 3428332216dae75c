/**
 * What Node adds to the pure-JS compression formats (protocol/compression): its own zlib
 * (several times faster than fflate), native lz4 where `lz4-napi` (an optional
 * dependency, prebuilt per platform) installed, and a zstd encoder (`@bokuweb/zstd-wasm`,
 * WebAssembly, loaded when a comm first asks for zstd).
 *
 * Native lz4 decoding is about twice as fast as rxcomm's TypeScript decoder (16 MiB of a
 * float64 column: 21 against 51 ms). It is given a payload only after its declared size
 * has passed the limit (lz4-napi allocates what the prefix says), and its output must be
 * exactly that size: it returns short output, not an error, for a block that holds fewer
 * bytes than declared. It is safe Rust (lz4_flex's checked decoder): 200,000 fuzzed
 * inputs gave errors or short output, nothing else. Snappy stays with rxcomm's decoder.
 */
import * as zlib from 'node:zlib';
import { ProtocolError } from '../errors';
import { defineCompressionSupport } from '../options';
import { canCompress, installCompressionFormat, prepareCompressor, resolveAutoCompression } from '../protocol/compression';
import { lz4Compress, lz4DeclaredSize, lz4Decompress } from '../protocol/compression/lz4';

installCompressionFormat('zlib', {
  compress: (data) => zlib.deflateSync(data, { level: 6 }),
  decompress: (data, limit) => {
    let out: Uint8Array;
    try {
      out = zlib.inflateSync(data, { maxOutputLength: Math.max(1, limit) });
    } catch (err) {
      const tooLarge = (err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE';
      const why = tooLarge ? `inflates past the limit of ${limit} bytes` : `does not inflate: ${(err as Error).message}`;
      throw new ProtocolError(`a zlib payload ${why}`, { cause: err });
    }
    if (out.length > limit) throw new ProtocolError(`a zlib payload inflates past the limit of ${limit} bytes`);
    return out;
  },
});

type Compress = (data: Uint8Array) => Uint8Array;
type Decompress = (data: Uint8Array, limit: number) => Uint8Array;

interface Lz4Napi {
  compressSync(data: Buffer): Buffer;
  uncompressSync(data: Uint8Array): Buffer;
}

const asBuffer = (data: Uint8Array) => (Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));

/** lz4-napi, or rxcomm's own lz4 where it did not install. Resolved on first use. */
let lz4: { compress: Compress; decompress: Decompress } | undefined;
function nativeLz4(): { compress: Compress; decompress: Decompress } {
  let native: Lz4Napi;
  try {
    native = require('lz4-napi') as Lz4Napi;
  } catch {
    return { compress: lz4Compress, decompress: lz4Decompress };
  }
  return {
    // Its output is Python's `lz4.block.compress`: the u32 LE size, then the block.
    compress: (data) => native.compressSync(asBuffer(data)),
    decompress: (data, limit) => {
      const size = lz4DeclaredSize(data);
      if (size > limit) throw new ProtocolError(`an lz4 payload declares ${size} bytes, above the limit of ${limit}`);
      let out: Uint8Array;
      try {
        out = native.uncompressSync(data);
      } catch (err) {
        throw new ProtocolError(`an lz4 payload does not decode: ${(err as Error).message}`, { cause: err });
      }
      if (out.length !== size) throw new ProtocolError(`an lz4 payload declares ${size} bytes but holds ${out.length}`);
      return out;
    },
  };
}
installCompressionFormat('lz4', {
  compress: (data) => (lz4 ??= nativeLz4()).compress(data),
  decompress: (data, limit) => (lz4 ??= nativeLz4()).decompress(data, limit),
});

installCompressionFormat('zstd', {
  loadCompressor: async () => {
    const zstd = require('@bokuweb/zstd-wasm') as { init(): Promise<void>; compress(data: Uint8Array, level: number): Uint8Array };
    await zstd.init();
    // Level 3: Dask's `distributed.comm.zstd.level`. The frame carries its content size.
    return (data) => zstd.compress(data, 3);
  },
});

defineCompressionSupport({ canCompress, prepare: prepareCompressor, auto: resolveAutoCompression });
