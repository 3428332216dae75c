/**
 * What a transport provides, keyed by its URI scheme in the registry. The shape is
 * Dask's `Backend` (`distributed/comm/registry.py`), with connect and listen as
 * Observable factories so that retry and timeout policy can be composed from RxJS
 * operators above it.
 */
import type { Observable } from 'rxjs';
import type { Connection } from '../comm/connection';
import type { MessageCodec } from '../protocol/codec';

/** Options every backend receives; transports ignore what does not apply to them. */
export interface BackendOptions {
  /** The codec for this comm (Dask's msgpack framing by default). */
  codec: MessageCodec;
  /** Largest message accepted from or sent to the wire, in bytes. */
  maxMessageSize: number;
  /** Bytes a transport may hold unsent before `write()` waits. */
  writeHighWaterMark: number;
  /** Transport-specific settings, such as `security` for tls. */
  [key: string]: unknown;
}

/** What a listening backend emits: first `bound`, then one `connection` per accepted peer. */
export type ListenEvent =
  | { type: 'bound'; listenAddress: string; contactAddress: string }
  | { type: 'connection'; connection: Connection }
  /** One incoming connection failed before it became a Connection (a bad TLS client, say). */
  | { type: 'rejected'; peerAddress: string; error: Error };

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
  listen(location: string, options: BackendOptions): Observable<ListenEvent>;

  /** The host of a location (`getAddressHost`). */
  getAddressHost(location: string): string;
  /** `[host, port]` of a location; absent where the scheme has no ports. */
  getAddressHostPort?(location: string): [string, number];
  /** The location with its host name resolved to an IP. */
  resolveAddress(location: string): Promise<string>;
  /** The local location a connection to `location` would leave from. */
  getLocalAddressFor(location: string): Promise<string>;
}
