/**
 * Zstandard as Dask writes it (`zstandard.ZstdCompressor().compress`): one zstd frame
 * that carries its content size, which Python's decompressor requires (RFC 8878).
 *
 * Reading is `fzstd` (pure JS) through its streaming decoder, so that the output is
 * counted as it is made: the frame's declared content size is checked against the limit
 * before anything is allocated, and a frame that yields more or fewer bytes than it
 * declared is refused. Writing needs a zstd encoder, which no pure-JS package provides:
 * Node installs one (`platform/node.ts`, WebAssembly); a browser reads zstd but cannot
 * choose it.
 */
import { Decompress } from 'fzstd';
import { ProtocolError } from '../../errors';
import { allocUnsafeSlow } from '../bytes';

const MAGIC = 0xfd2fb528;

/** The frame header's content size (RFC 8878 §3.1.1.1), or a `ProtocolError`. */
export function zstdDeclaredSize(data: Uint8Array): number {
  if (data.length < 6) throw new ProtocolError(`a zstd payload of ${data.length} bytes is too short for a frame header`);
  const magic = (data[0] | (data[1] << 8) | (data[2] << 16)) + data[3] * 0x1000000;
  if (magic !== MAGIC) throw new ProtocolError(`a zstd payload starts with 0x${magic.toString(16)}, not the zstd magic number`);
  const descriptor = data[4];
  const sizeFlag = descriptor >>> 6;
  const singleSegment = (descriptor >>> 5) & 1;
  const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
  const sizeBytes = sizeFlag === 0 ? singleSegment : 1 << sizeFlag;
  if (sizeBytes === 0) throw new ProtocolError('a zstd frame without its content size (Dask requires it)');
  let at = 5 + (singleSegment ? 0 : 1) + dictionaryBytes;
  if (at + sizeBytes > data.length) throw new ProtocolError('a zstd payload ends inside its frame header');
  let size = 0;
  for (let i = 0; i < sizeBytes; i++) size += data[at++] * 2 ** (8 * i);
  return sizeBytes === 2 ? size + 256 : size;
}

/** The window a frame that is not single-segment declares (RFC 8878 §3.1.1.1.2); 0 when single-segment. */
function declaredWindow(data: Uint8Array): number {
  if ((data[4] >>> 5) & 1) return 0;
  const exponent = data[5] >>> 3;
  const base = 2 ** (10 + exponent);
  return base + (base / 8) * (data[5] & 7);
}

/**
 * fzstd allocates a frame's whole window before decoding, whatever its content size: 13
 * bytes declaring a 2 GiB window would claim 2 GiB. A zstd encoder that knows the content
 * size (as Dask's does: the frame carries it) picks a window of at most twice it, rounded
 * to a power of two; anything larger than that, or than 8 MiB for small content, is refused.
 */
const SMALL_CONTENT_WINDOW = 8 * 1024 * 1024;

export function zstdDecompress(data: Uint8Array, limit: number): Uint8Array {
  const size = zstdDeclaredSize(data);
  if (size > limit) throw new ProtocolError(`a zstd payload declares ${size} bytes, above the limit of ${limit}`);
  const window = declaredWindow(data);
  if (window > Math.max(2 * size, SMALL_CONTENT_WINDOW)) {
    throw new ProtocolError(`a zstd payload declares ${size} bytes but a window of ${window} bytes`);
  }
  const out = allocUnsafeSlow(size); // every byte is written, or the payload is refused
  let made = 0;
  const decoder = new Decompress((chunk) => {
    if (made + chunk.length > size) throw new ProtocolError(`a zstd payload yields more than the ${size} bytes it declares`);
    out.set(chunk, made);
    made += chunk.length;
  });
  try {
    decoder.push(data, true);
  } catch (err) {
    if (err instanceof ProtocolError) throw err;
    throw new ProtocolError(`a zstd payload does not decode: ${(err as Error).message}`, { cause: err });
  }
  if (made !== size) throw new ProtocolError(`a zstd payload declares ${size} bytes but holds ${made}`);
  return out;
}
