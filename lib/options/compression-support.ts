/**
 * What the platform can do with each compression format, as the options need to know it:
 * whether it can write a format, which one `'auto'` means, and how to load an encoder
 * that loads asynchronously. The platform tells (platform/node.ts, platform/browser.ts,
 * from protocol/compression), as it tells the registry which transports exist, so that
 * options depend on the protocol layer's types only.
 */
import type { CompressionName } from '../protocol/compression';

export interface CompressionSupport {
  /** Whether this platform can write `name`, now or once `prepare` has loaded it. */
  canCompress(name: CompressionName): boolean;
  /** Makes `name`'s encoder ready: `undefined` when it already is, else when it is. */
  prepare(name: CompressionName): Promise<void> | undefined;
  /** Dask's `'auto'`: the best format this platform writes. */
  auto(): CompressionName;
}

let support: CompressionSupport | undefined;

/** For the platform, once at startup. */
export function defineCompressionSupport(platform: CompressionSupport): void {
  support = platform;
}

/** The platform's support; `undefined` before a platform set it up (then every name is taken as is, and `'auto'` is lz4). */
export function compressionSupport(): CompressionSupport | undefined {
  return support;
}

/** The labels Dask writes, which the `compression` option may name. */
export const COMPRESSION_LABELS: readonly CompressionName[] = ['lz4', 'zstd', 'snappy', 'zlib'];
