/**
 * What Node adds to the pure-JS compression formats (protocol/compression): its own zlib
 * (several times faster than fflate), a native lz4 compressor where `lz4-napi` (an
 * optional dependency, prebuilt per platform) installed, and a zstd encoder
 * (`@bokuweb/zstd-wasm`, WebAssembly, loaded when a comm first asks for zstd). Reading
 * lz4 and snappy stays with rxcomm's own decoders, which check every length against the
 * declared size; the native one would trust a hostile size prefix with the allocation.
 */
import * as zlib from 'node:zlib';
import { ProtocolError } from '../errors';
import { installCompressionFormat } from '../protocol/compression';
import { lz4Compress } from '../protocol/compression/lz4';

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

/** lz4-napi's compressor, or rxcomm's own where it did not install. Resolved on first use. */
let lz4: Compress | undefined;
function nativeLz4(): Compress {
  try {
    const { compressSync } = require('lz4-napi') as { compressSync(data: Buffer): Buffer };
    // Its output is Python's `lz4.block.compress`: the u32 LE size, then the block.
    return (data) => compressSync(Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  } catch {
    return lz4Compress;
  }
}
installCompressionFormat('lz4', { compress: (data) => (lz4 ??= nativeLz4())(data) });

installCompressionFormat('zstd', {
  loadCompressor: async () => {
    const zstd = require('@bokuweb/zstd-wasm') as { init(): Promise<void>; compress(data: Uint8Array, level: number): Uint8Array };
    await zstd.init();
    // Level 3: Dask's `distributed.comm.zstd.level`. The frame carries its content size.
    return (data) => zstd.compress(data, 3);
  },
});
