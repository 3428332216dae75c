/**
 * The public options of `connect()` and `listen()`: closed interfaces, so that a
 * misspelled option fails to compile (and, from JavaScript, throws a `ConfigError`).
 */
import type { SchedulerLike } from 'rxjs';
import type { MessageCodec } from '../protocol/codec';
import type { SecurityConfig } from '../registry/security';
import type { CommConfig } from './comm';

/**
 * Options shared by `connect()` and `listen()`: encoding, limits, and transport settings.
 *
 * ## Example
 * ```ts
 * // A relay forwards payloads untouched, both ways, under a smaller message cap.
 * const shared: TransportConfig = { deserialize: false, maxMessageSize: 64 * 1024 * 1024 };
 * const listener = listen('tcp://127.0.0.1:0', shared);
 * const upstream$ = connect('tcp://127.0.0.1:8786', { ...shared, timeout: 5_000 });
 * ```
 *
 * @group Connect and listen
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
  /**
   * Settings for an out-of-tree backend, handed to it untouched as
   * `options.transportOptions`. Built-in transports read nothing from it.
   * @default {}
   */
  transportOptions?: Readonly<Record<string, unknown>>;
}

/**
 * Options of `connect()`: the deadline, what can cancel it, and the policy's sources of
 * time and randomness (for marble tests).
 *
 * ## Example
 * ```ts
 * const controller = new AbortController();
 * connect('tcp://127.0.0.1:8786', { timeout: 10_000, signal: controller.signal }).subscribe({
 *   error: (err) => console.log(err instanceof AbortError), // true once aborted
 * });
 * controller.abort();
 * ```
 *
 * @group Connect and listen
 */
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
  /**
   * Cancels the connect: aborting ends the attempt in flight as unsubscribing does, and
   * the subscriber gets an `AbortError`. No effect once the comm is emitted.
   */
  signal?: AbortSignal;
}

/**
 * Options of `listen()`: the handshake deadline, the advertised host, and for ws the
 * origins whose pages may connect.
 *
 * ## Example
 * ```ts
 * const listener = listen('ws://0.0.0.0:8787', {
 *   contactHost: 'scheduler.example',
 *   allowedOrigins: ['https://app.example'],
 *   handshakeTimeout: 5_000,
 * });
 * ```
 *
 * @group Connect and listen
 */
export interface ListenConfig extends TransportConfig {
  /**
   * How long an accepted connection may take to complete its handshake (and, for tls,
   * the TLS handshake) before it is dropped, in milliseconds.
   * @default 30000
   */
  handshakeTimeout?: number;
  /**
   * The host advertised in `contactAddress` when binding a wildcard (`tcp://0.0.0.0:0`).
   * @default this machine's first external IPv4 address, as Dask's `get_ip()`
   */
  contactHost?: string;
  /**
   * Where the handshake timers run: pass a `TestScheduler` to run them in virtual time.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * `ws://` and `wss://` only: web origins whose pages may open comms, as exact origins
   * (`'https://app.example'`, `'http://127.0.0.1:8080'`) or `'*'` for any. Requests
   * without an `Origin` header (programs, not browsers) and same-origin requests are
   * always accepted, as Tornado (so Dask) does; any other origin is refused with HTTP 403
   * and reported on `status$`, so that a web page a user happens to visit cannot talk to
   * the listener (cross-site WebSocket hijacking).
   * @default []
   */
  allowedOrigins?: readonly string[];
}
