import type { SchedulerLike } from 'rxjs';
import type { CommConfig } from '../comm/config';
import type { MessageCodec } from '../protocol/codec';
import type { SecurityConfig } from '../security';

/**
 * Options shared by `connect()` and `listen()`: how messages are encoded, how big they
 * may be, and transport settings (tls `security`).
 */
export interface TransportConfig extends CommConfig {
  /**
   * Decode `__Serialized__` payloads where rxcomm can (msgpack ones); `false` keeps every
   * payload opaque, so it is forwarded byte-identical (Dask's `deserialize=False`).
   * Pickled payloads are always opaque: nothing is ever executed.
   * @default true
   */
  deserialize?: boolean;
  /**
   * A codec of your own instead of Dask's msgpack framing, for peers that are not Dask.
   * @default Dask's codec
   */
  codec?: MessageCodec;
  /**
   * Largest message, in bytes, accepted from the wire (checked against the header before
   * anything is allocated) or written to it.
   * @default 1073741824 (1 GiB)
   */
  maxMessageSize?: number;
  /**
   * Bytes the transport may hold unsent before `write()` waits for the peer to read.
   * @default 1048576 (1 MiB)
   */
  writeHighWaterMark?: number;
  /** TLS settings: certificates for `tls://`, and `requireEncryption` for every scheme. */
  security?: SecurityConfig;
  /** Transport-specific settings. */
  [option: string]: unknown;
}

/** Options of `connect()`. */
export interface ConnectConfig extends TransportConfig {
  /**
   * The whole time `connect()` may take, attempts, backoff and handshakes included, in
   * milliseconds. The first attempt may take at most a fifth of it.
   * @default 30000
   */
  timeout?: number;
  /**
   * Where timers run: pass a `TestScheduler` to run the policy in virtual time.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * Source of the jitter in the backoff, returning a number in [0, 1).
   * @default Math.random
   */
  random?: () => number;
}

export const TRANSPORT_DEFAULTS = {
  deserialize: true,
  maxMessageSize: 1024 * 1024 * 1024,
  writeHighWaterMark: 1024 * 1024,
} as const;

export const CONNECT_DEFAULTS = {
  timeout: 30_000,
} as const;
