/**
 * The errors rxcomm raises. Every class has a stable string `code` so callers can
 * branch without parsing messages, and wraps the low-level error as `cause`.
 */

/** The options every rxcomm error takes: the low-level error it wraps. *
 * ## Example
 * ```ts
 * const low = new Error('ECONNRESET');
 * const err = new CommClosedError('connection reset by the peer', { cause: low });
 * err.cause === low; // true
 * ```
 *
 * @group Errors
 */
export interface ErrorOptionsWithCause {
  /** The error this one wraps, kept as the standard `Error.cause`. */
  cause?: unknown;
}

/**
 * The comm is closed, or could not be opened. Like Dask's `CommClosedError` (an
 * `OSError`), it is what `connect()` retries.
 *
 * ## Example
 * ```ts
 * try {
 *   await comm.write({ op: 'ping' });
 * } catch (err) {
 *   // Every comm failure is one; subclasses and `code` say which.
 *   if (err instanceof CommClosedError) console.log(err.code, err.message);
 * }
 * ```
 *
 * @group Errors
 */
export class CommClosedError extends Error {
  /** The class's name, which subclasses set to theirs: `'CommClosedError'` here. */
  override name = 'CommClosedError';
  /** A stable string to branch on, which subclasses set to theirs: `'ERR_COMM_CLOSED'` here. */
  readonly code: string = 'ERR_COMM_CLOSED';
  constructor(message = 'comm closed', options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * A comm failure that retrying cannot mend (a TLS certificate problem, say):
 * `connect()` fails at once with it.
 *
 * ## Example
 * ```ts
 * declare const security: SecurityConfig; // a client certificate the listener does not trust, say
 * connect('tls://127.0.0.1:8786', { security }).subscribe({
 *   error: (err) => {
 *     if (err instanceof FatalCommClosedError) console.log('not retried:', err.message); // a certificate problem
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class FatalCommClosedError extends CommClosedError {
  override name = 'FatalCommClosedError';
  override readonly code: string = 'ERR_COMM_FATAL';
}

/**
 * The peer broke the wire protocol: garbage bytes, a truncated message, a prelude
 * that does not add up. The comm is aborted.
 *
 * ## Example
 * ```ts
 * comm.read$.subscribe({
 *   error: (err) => {
 *     if (err instanceof ProtocolError) console.log('the peer broke the framing:', err.message);
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class ProtocolError extends CommClosedError {
  override name = 'ProtocolError';
  override readonly code: string = 'ERR_COMM_PROTOCOL';
}

/** A message announced or written that is larger than `maxMessageSize`. *
 * ## Example
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { maxMessageSize: 1024 }));
 * await comm.write({ data: new Uint8Array(4096) }).catch((err) => {
 *   if (err instanceof MessageTooLargeError) console.log(err.size, err.limit); // more than 4096, 1024
 * });
 * ```
 *
 * @group Errors
 */
export class MessageTooLargeError extends ProtocolError {
  override name = 'MessageTooLargeError';
  override readonly code: string = 'ERR_MESSAGE_TOO_LARGE';
  constructor(
    /** The message's size in bytes, as announced or encoded (a bigint past 2^53). */
    readonly size: number | bigint,
    /** The `maxMessageSize` it exceeds, in bytes. */
    readonly limit: number,
    options?: ErrorOptionsWithCause,
  ) {
    super(`message of ${size} bytes exceeds maxMessageSize (${limit} bytes)`, options);
  }
}

/**
 * A write was made while the comm already held more than `writeBufferLimit` bytes
 * unsent: the peer is not reading (or not as fast as this side writes without waiting).
 * The comm is aborted rather than grow without bound; writers that await `write()`
 * never meet this, as they wait at `writeHighWaterMark`.
 *
 * ## Example
 * ```ts
 * // Writes that do not wait, to a peer that does not read.
 * for (let i = 0; i < 1000; i++) {
 *   comm.write(new Uint8Array(1024 * 1024)).catch((err) => {
 *     if (err instanceof WriteBufferOverflowError) console.log(err.buffered, err.limit);
 *   });
 * }
 * ```
 *
 * @group Errors
 */
export class WriteBufferOverflowError extends CommClosedError {
  override name = 'WriteBufferOverflowError';
  override readonly code: string = 'ERR_WRITE_BUFFER_OVERFLOW';
  constructor(
    /** Bytes that were waiting unsent when the write was made. */
    readonly buffered: number,
    /** The comm's `writeBufferLimit`, in bytes. */
    readonly limit: number,
    peerAddress: string,
  ) {
    super(
      `${peerAddress} is not reading: ${buffered} bytes were already waiting to be sent ` +
        `(writeBufferLimit is ${limit}); the comm was aborted. Await write(), or use writeTo(), to wait for the peer`,
    );
  }
}

/**
 * Nothing arrived from the peer for `deadPeerTimeout` milliseconds although it was
 * asked to answer (rxcomm heartbeats, WebSocket pings), or the kernel's TCP keepalive
 * gave up: the peer vanished without closing (a cut cable, a frozen machine).
 *
 * ## Example
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { deadPeerTimeout: 10_000 }));
 * comm.read$.subscribe({
 *   error: (err) => {
 *     if (err instanceof DeadPeerError) console.log(`${err.peerAddress} silent for ${err.silentFor} ms`);
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class DeadPeerError extends CommClosedError {
  override name = 'DeadPeerError';
  override readonly code: string = 'ERR_DEAD_PEER';
  constructor(
    /** The address of the vanished peer. */
    readonly peerAddress: string,
    /** Milliseconds without a sign of life, or `undefined` when the kernel decided. */
    readonly silentFor: number | undefined,
    options?: ErrorOptionsWithCause,
  ) {
    super(
      silentFor === undefined
        ? `${peerAddress} stopped answering (TCP keepalive gave up): the peer is unreachable`
        : `nothing from ${peerAddress} for ${silentFor} ms (deadPeerTimeout): the peer is unreachable`,
      options,
    );
  }
}

/**
 * A bounded buffer in front of a comm (`writeTo`, `batched`) was full and its overflow
 * policy is `'error'`. The comm itself is untouched.
 *
 * ## Example
 * ```ts
 * interval(0).pipe(writeTo(comm, { bufferSize: 100 })).subscribe({
 *   error: (err) => {
 *     if (err instanceof BufferOverflowError) console.log(err.where, err.limit); // writeTo 100
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class BufferOverflowError extends Error {
  /** `'BufferOverflowError'`. */
  override name = 'BufferOverflowError';
  /** `'ERR_BUFFER_OVERFLOW'`. */
  readonly code: string = 'ERR_BUFFER_OVERFLOW';
  constructor(
    /** Who overflowed: `writeTo` or `batched`. */
    readonly where: string,
    /** Its `bufferSize`, in messages. */
    readonly limit: number,
  ) {
    super(
      `${where}: the source emitted faster than the comm sends and ${limit} messages were already waiting ` +
        `(bufferSize); pick an overflow policy, a larger bufferSize, or slow the source`,
    );
  }
}

/** The peer's handshake was missing, malformed, or did not arrive in time. *
 * ## Example
 * ```ts
 * // A listener drops such a peer and reports it; the listener itself goes on.
 * status$.subscribe((event) => {
 *   if (event.type === 'listen:rejected' && event.error instanceof HandshakeError) {
 *     console.log(`${event.peerAddress}: ${event.error.message}`);
 *   }
 * });
 * ```
 *
 * @group Errors
 */
export class HandshakeError extends CommClosedError {
  override name = 'HandshakeError';
  override readonly code: string = 'ERR_COMM_HANDSHAKE';
}

/**
 * `connect()` ran out of time. The message is Dask's, in seconds; `timeout` is in
 * milliseconds like every duration in the API; `cause` is the last attempt's error.
 *
 * ## Example
 * ```ts
 * connect('tcp://127.0.0.1:8786', { timeout: 5_000 }).subscribe({
 *   error: (err) => {
 *     if (err instanceof ConnectTimeoutError) console.log(err.address, err.timeout, err.cause);
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class ConnectTimeoutError extends CommClosedError {
  override name = 'ConnectTimeoutError';
  override readonly code: string = 'ERR_CONNECT_TIMEOUT';
  constructor(
    /** The address `connect()` was given. */
    readonly address: string,
    /** Its `timeout`, in milliseconds. */
    readonly timeout: number,
    options?: ErrorOptionsWithCause,
  ) {
    super(`Timed out trying to connect to ${address} after ${timeout / 1000} s`, options);
  }
}

/** A malformed address (Dask's `ValueError`). Never retried. *
 * ## Example
 * ```ts
 * try {
 *   parseHostPort('tcp://::1:8786');
 * } catch (err) {
 *   console.log(err instanceof AddressError); // true: ipv6 needs brackets like [::1]
 * }
 * ```
 *
 * @group Errors
 */
export class AddressError extends Error {
  /** The class's name, which subclasses set to theirs: `'AddressError'` here. */
  override name = 'AddressError';
  /** A stable string to branch on, which subclasses set to theirs: `'ERR_INVALID_ADDRESS'` here. */
  readonly code: string = 'ERR_INVALID_ADDRESS';
  constructor(message: string, options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * No backend is registered, nor installed, for an address scheme; or the scheme is one
 * this platform cannot serve (`tcp://` in a browser), and `unavailable` says why.
 *
 * ## Example
 * ```ts
 * try {
 *   getBackend('ucx');
 * } catch (err) {
 *   if (err instanceof UnknownSchemeError) console.log(err.scheme, err.knownSchemes); // ucx [ 'inproc', 'tcp', … ]
 * }
 * ```
 *
 * @group Errors
 */
export class UnknownSchemeError extends AddressError {
  override name = 'UnknownSchemeError';
  override readonly code: string = 'ERR_UNKNOWN_SCHEME';
  constructor(
    /** The scheme asked for, without `://`. */
    readonly scheme: string,
    /** The schemes this process has backends for. */
    readonly knownSchemes: readonly string[],
    /** Why this platform cannot serve a scheme it knows of; absent for a truly unknown scheme. */
    readonly unavailable?: string,
  ) {
    super(
      unavailable === undefined
        ? `unknown address scheme '${scheme}' (known schemes: [${knownSchemes.map((s) => `'${s}'`).join(', ')}])`
        : `address scheme '${scheme}' ${unavailable}`,
    );
  }
}

/** Invalid or missing configuration, such as `tls://` without certificates. Never retried. *
 * ## Example
 * ```ts
 * try {
 *   connect('tcp://127.0.0.1:8786', { timeout: -1 });
 * } catch (err) {
 *   console.log(err instanceof ConfigError); // true: thrown at once, before any connect
 * }
 * ```
 *
 * @group Errors
 */
export class ConfigError extends Error {
  /** `'ConfigError'`. */
  override name = 'ConfigError';
  /** `'ERR_COMM_CONFIG'`. */
  readonly code: string = 'ERR_COMM_CONFIG';
  constructor(message: string, options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/** Wraps anything thrown into a `CommClosedError`, keeping comm errors as they are. */
export function toCommClosedError(err: unknown, message: string): CommClosedError {
  if (err instanceof CommClosedError) return err;
  // Duck-typed: errors made by Node internals may come from another realm (vm, jest).
  const { code, message: text } = (typeof err === 'object' && err !== null ? err : {}) as { code?: unknown; message?: unknown };
  const detail = typeof code === 'string' ? code : typeof text === 'string' && text !== '' ? text : undefined;
  return new CommClosedError(detail ? `${message}: ${detail}` : message, { cause: err });
}

/** A listener could not bind its address (in use, not permitted, no such interface). *
 * ## Example
 * ```ts
 * await listen('tcp://127.0.0.1:8786').start().catch((err) => {
 *   if (err instanceof ListenError) console.log(err.message, err.cause); // e.g. EADDRINUSE
 * });
 * ```
 *
 * @group Errors
 */
export class ListenError extends Error {
  /** `'ListenError'`. */
  override name = 'ListenError';
  /** `'ERR_LISTEN'`. */
  readonly code: string = 'ERR_LISTEN';
  constructor(message: string, options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * `connect()` was cancelled through its `signal`: the attempt in flight is aborted, as on
 * unsubscribe. Named and coded as Node's own (`AbortError`, `ABORT_ERR`); `cause` is the
 * signal's `reason`.
 *
 * ## Example
 * ```ts
 * const controller = new AbortController();
 * connect('tcp://127.0.0.1:8786', { signal: controller.signal }).subscribe({
 *   error: (err) => console.log(err instanceof AbortError, err.cause), // true 'user gave up'
 * });
 * controller.abort('user gave up');
 * ```
 *
 * @group Errors
 */
export class AbortError extends Error {
  /** `'AbortError'`, as Node's. */
  override name = 'AbortError';
  /** `'ABORT_ERR'`, as Node's. */
  readonly code: string = 'ABORT_ERR';
  constructor(message = 'The operation was aborted', options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * The peer ran the request and its handler failed: Dask's error reply
 * `{status: 'uncaught-error', exception_text, traceback_text, ...}`. Only the texts are
 * kept; the pickled `exception` and `traceback` fields are never unpickled. The comm is
 * fine and goes on serving.
 *
 * ## Example
 * ```ts
 * rpc('tcp://127.0.0.1:8786').call('compute', { x: 1 }).subscribe({
 *   error: (err) => {
 *     // The peer's handler raised; other errors are the comm's (CommClosedError).
 *     if (err instanceof RemoteError) console.log(err.op, err.exceptionText, err.tracebackText);
 *   },
 * });
 * ```
 *
 * @group Errors
 */
export class RemoteError extends Error {
  /** `'RemoteError'`. */
  override name = 'RemoteError';
  /** `'ERR_REMOTE'`. */
  readonly code: string = 'ERR_REMOTE';
  constructor(
    /** The op of the failed request. */
    readonly op: string,
    /** Where it was sent. */
    readonly address: string,
    /** The peer's text of the exception, e.g. `KeyError('x')`. */
    readonly exceptionText: string,
    /** The peer's traceback, as text ('' when it sent none). */
    readonly tracebackText: string,
  ) {
    super(`${op} on ${address} failed: ${exceptionText}`);
  }
}
