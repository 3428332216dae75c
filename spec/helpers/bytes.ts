/** Bytes for specs that play a peer by hand or check payloads byte for byte. */
import { pack } from 'msgpackr';

/** `n` bytes that differ from any shifted copy of themselves, so a misplaced byte shows. */
export function pattern(n: number, seed: number): Buffer {
  const bytes = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

/** One Dask-framed message of one msgpack frame (T, N = 1, the length, the frame), as a raw peer writes it. */
export function daskFramed(message: unknown): Buffer {
  const frame = pack(message);
  const header = Buffer.alloc(24);
  header.writeBigUInt64LE(BigInt(16 + frame.length), 0);
  header.writeBigUInt64LE(1n, 8);
  header.writeBigUInt64LE(BigInt(frame.length), 16);
  return Buffer.concat([header, frame]);
}
