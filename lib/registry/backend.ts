/**
 * What a transport provides, keyed by its URI scheme in the registry. The shape is
 * Dask's `Backend` (`distributed/comm/registry.py`), with connect and listen as
 * Observable factories so that retry and timeout policy can be composed from RxJS
 * operators above it.
 */
import type { Observable } from 'rxjs';
import type { Connection } from '../comm/connection';
import type { MessageCodec } from '../protocol/codec';
import type { SecurityConfig } from './security';

export type { SecurityConfig } from './security';

/**
 * What every backend receives, resolved from the user's options (defaults filled in).
 *
 * ## Example
 * ```ts
 * // A backend's connect, reading the options it was given.
 * function connectTraced(location: string, options: BackendOptions): Observable<Connection> {
 *   console.log(`connect ${location}, messages up to ${options.maxMessageSize} bytes`, options.transportOptions);
 *   return getBackend('tcp').connect(location, options);
 * }
 * ```
 *
 * @group Transports
 */
export interface BackendOptions {
  /** The user's codec; `undefined` means Dask's, made with `deserialize`. */
  codec: MessageCodec | undefined;
  /** Whether Dask's codec decodes `__Serialized__` payloads. */
  deserialize: boolean;
  /** Largest message accepted from or sent to the wire, in bytes. */
  maxMessageSize: number;
  /** Bytes a transport may hold unsent before `write()` waits. */
  writeHighWaterMark: number;
  /**
   * The comm's dead-peer timeout in ms (0: off): socket transports derive their TCP
   * keepalive from it, which is what detects a vanished peer that speaks no heartbeats.
   */
  deadPeerTimeout: number;
  /** TLS settings, for transports that encrypt. */
  security: SecurityConfig | undefined;
  /** The user's `transportOptions`, untouched: settings for out-of-tree backends. */
  transportOptions: Readonly<Record<string, unknown>>;
}

/**
 * What a backend's `listen` receives.
 *
 * ## Example
 * ```ts
 * function listenTraced(location: string, options: BackendListenOptions): Observable<ListenEvent> {
 *   console.log(`listen ${location}, transport handshakes within ${options.handshakeTimeout} ms`);
 *   return getBackend('tcp').listen(location, options);
 * }
 * ```
 *
 * @group Transports
 */
export interface BackendListenOptions extends BackendOptions {
  /** Time an accepted connection has for its transport handshake (TLS), in ms. */
  handshakeTimeout: number;
  /** The host to advertise for a wildcard bind; `undefined` means the first external IPv4. */
  contactHost: string | undefined;
  /** Web origins a ws listener accepts besides same-origin and no-origin requests; `'*'` is any. */
  allowedOrigins: readonly string[];
}

/**
 * What a listening backend emits: first `bound`, then one event per incoming peer.
 *
 * ## Example
 * ```ts
 * declare const options: BackendListenOptions;
 * getBackend('tcp').listen('127.0.0.1:0', options).subscribe((event: ListenEvent) => {
 *   if (event.type === 'bound') console.log('reach me at', event.contactAddress);
 *   else if (event.type === 'connection') console.log('from', event.connection.peerAddress);
 * });
 * ```
 *
 * @group Transports
 */
export type ListenEvent =
  | { type: 'bound'; listenAddress: string; contactAddress: string }
  | { type: 'connection'; connection: Connection }
  /** One incoming connection failed before it became a Connection (a bad TLS client, say). */
  | { type: 'rejected'; peerAddress: string; error: Error }
  /**
   * A peer the transport authenticated and will not serve (a TLS client certificate it
   * does not trust). The listener answers its handshake with the reason, then closes.
   */
  | { type: 'refused'; connection: Connection; reason: string };

/**
 * @internal A backend's `connect` as plain callbacks, found on its `connect` function:
 * `connect()` calls it instead of subscribing, so a connect attempt to a built-in
 * socket transport makes no Observable and subscriber of its own. Same contract as the
 * Observable: `ready` or `failed` is called once; the returned function ends an attempt
 * still in flight (and is a no-op after `ready`). Kept on the function, not the backend:
 * a backend that wraps `connect` (as a user's tracing backend does) loses it, and is
 * subscribed to as before. A registered symbol (`Symbol.for`), since transports import
 * nothing but types from here: each side spells its key, checked against this type.
 */
export type ConnectByCallbacksKey = 'rxcomm.connectByCallbacks';

/** @internal */
export type ConnectByCallbacks = (location: string, options: BackendOptions, ready: (connection: Connection) => void, failed: (error: unknown) => void) => () => void;

const CONNECT_BY_CALLBACKS = Symbol.for('rxcomm.connectByCallbacks' satisfies ConnectByCallbacksKey);

/** @internal The callback form of `backend.connect`, where it has one. */
export function callbackConnect(backend: Backend): ConnectByCallbacks | undefined {
  return (backend.connect as { [CONNECT_BY_CALLBACKS]?: ConnectByCallbacks })[CONNECT_BY_CALLBACKS];
}

/**
 * A transport, registered for a URI scheme with `registerBackend`: Observable factories
 * for connect and listen that deal in `Connection`s, and the scheme's address functions.
 * Handshakes, retries and timeouts are not its business: `connect()` and `listen()` add
 * them above every backend alike.
 *
 * ## Example
 * ```ts
 * // A scheme that logs each connect and is tcp otherwise.
 * const tcp = getBackend('tcp');
 * const traced: Backend = {
 *   encrypted: false,
 *   connect: (location, options) => {
 *     console.log('connecting to', location);
 *     return tcp.connect(location, options);
 *   },
 *   listen: (location, options) => tcp.listen(location, options),
 *   getAddressHost: (location) => tcp.getAddressHost(location),
 *   resolveAddress: (location) => tcp.resolveAddress(location),
 *   getLocalAddressFor: (location) => tcp.getLocalAddressFor(location),
 * };
 * registerBackend('traced', traced);
 * const comm = await firstValueFrom(connect('traced://127.0.0.1:8786'));
 * ```
 *
 * @group Transports
 */
export interface Backend {
  /**
   * Whether the transport encrypts. `false` makes `security.requireEncryption` refuse it;
   * leave it out for transports that never leave the process (inproc).
   */
  encrypted?: boolean;

  /**
   * Connects to `location` (the part after `scheme://`). Cold: each subscription makes
   * one attempt, emits one Connection and completes. Unsubscribing before the emission
   * aborts the attempt. Transient failures error with `CommClosedError`; failures that
   * retrying cannot mend with `FatalCommClosedError` or a non-comm error.
   */
  connect(location: string, options: BackendOptions): Observable<Connection>;

  /**
   * Listens on `location`. Subscribing binds; unsubscribing stops accepting and
   * leaves the connections already emitted open. A bind failure errors the Observable.
   */
  listen(location: string, options: BackendListenOptions): Observable<ListenEvent>;

  /** The host of a location (`getAddressHost`). */
  getAddressHost(location: string): string;
  /** `[host, port]` of a location; absent where the scheme has no ports. */
  getAddressHostPort?(location: string): [string, number];
  /** The location with its host name resolved to an IP. */
  resolveAddress(location: string): Promise<string>;
  /** The local location a connection to `location` would leave from. */
  getLocalAddressFor(location: string): Promise<string>;
}
