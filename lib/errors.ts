/**
 * The errors rxcomm raises. Every class has a stable string `code` so callers can
 * branch without parsing messages, and wraps the low-level error as `cause`.
 */

/** The options every rxcomm error takes: the low-level error it wraps. */
export interface ErrorOptionsWithCause {
  cause?: unknown;
}

/**
 * The comm is closed, or could not be opened. Like Dask's `CommClosedError` (an
 * `OSError`), it is what `connect()` retries.
 */
export class CommClosedError extends Error {
  override name = 'CommClosedError';
  readonly code: string = 'ERR_COMM_CLOSED';
  constructor(message = 'comm closed', options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * A comm failure that retrying cannot mend (a TLS certificate problem, say):
 * `connect()` fails at once with it.
 */
export class FatalCommClosedError extends CommClosedError {
  override name = 'FatalCommClosedError';
  override readonly code: string = 'ERR_COMM_FATAL';
}

/**
 * The peer broke the wire protocol: garbage bytes, a truncated message, a prelude
 * that does not add up. The comm is aborted.
 */
export class ProtocolError extends CommClosedError {
  override name = 'ProtocolError';
  override readonly code: string = 'ERR_COMM_PROTOCOL';
}

/** A message announced or written that is larger than `maxMessageSize`. */
export class MessageTooLargeError extends ProtocolError {
  override name = 'MessageTooLargeError';
  override readonly code: string = 'ERR_MESSAGE_TOO_LARGE';
  constructor(
    readonly size: number | bigint,
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
 */
export class WriteBufferOverflowError extends CommClosedError {
  override name = 'WriteBufferOverflowError';
  override readonly code: string = 'ERR_WRITE_BUFFER_OVERFLOW';
  constructor(
    readonly buffered: number,
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
 */
export class DeadPeerError extends CommClosedError {
  override name = 'DeadPeerError';
  override readonly code: string = 'ERR_DEAD_PEER';
  constructor(
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
 */
export class BufferOverflowError extends Error {
  override name = 'BufferOverflowError';
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

/** The peer's handshake was missing, malformed, or did not arrive in time. */
export class HandshakeError extends CommClosedError {
  override name = 'HandshakeError';
  override readonly code: string = 'ERR_COMM_HANDSHAKE';
}

/**
 * `connect()` ran out of time. The message is Dask's, in seconds; `timeout` is in
 * milliseconds like every duration in the API; `cause` is the last attempt's error.
 */
export class ConnectTimeoutError extends CommClosedError {
  override name = 'ConnectTimeoutError';
  override readonly code: string = 'ERR_CONNECT_TIMEOUT';
  constructor(
    readonly address: string,
    readonly timeout: number,
    options?: ErrorOptionsWithCause,
  ) {
    super(`Timed out trying to connect to ${address} after ${timeout / 1000} s`, options);
  }
}

/** A malformed address (Dask's `ValueError`). Never retried. */
export class AddressError extends Error {
  override name = 'AddressError';
  readonly code: string = 'ERR_INVALID_ADDRESS';
  constructor(message: string, options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * No backend is registered, nor installed, for an address scheme; or the scheme is one
 * this platform cannot serve (`tcp://` in a browser), and `unavailable` says why.
 */
export class UnknownSchemeError extends AddressError {
  override name = 'UnknownSchemeError';
  override readonly code: string = 'ERR_UNKNOWN_SCHEME';
  constructor(
    readonly scheme: string,
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

/** Invalid or missing configuration, such as `tls://` without certificates. Never retried. */
export class ConfigError extends Error {
  override name = 'ConfigError';
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

/** A listener could not bind its address (in use, not permitted, no such interface). */
export class ListenError extends Error {
  override name = 'ListenError';
  readonly code: string = 'ERR_LISTEN';
  constructor(message: string, options?: ErrorOptionsWithCause) {
    super(message, options);
  }
}

/**
 * `connect()` was cancelled through its `signal`: the attempt in flight is aborted, as on
 * unsubscribe. Named and coded as Node's own (`AbortError`, `ABORT_ERR`); `cause` is the
 * signal's `reason`.
 */
export class AbortError extends Error {
  override name = 'AbortError';
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
 */
export class RemoteError extends Error {
  override name = 'RemoteError';
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
