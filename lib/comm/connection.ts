/**
 * The contract between a transport and the Comm above it.
 *
 * A transport turns bytes (or, for inproc, object references) into whole messages
 * and back; it knows nothing of handshakes, retries or Observables of messages.
 * The generic `Comm` wraps one `Connection` and gives it the public contract.
 */

/** Where a connection delivers what it reads. Called in order, never after `complete` or `error`. */
export interface ConnectionSink {
  /** One whole message; `nbytes` is its size on the wire (0 where there is no wire). */
  next(message: unknown, nbytes: number): void;
  /** The peer closed cleanly. */
  complete(): void;
  /** The connection failed: reset, aborted by the peer, or a protocol error. */
  error(err: Error): void;
}

export interface Connection {
  /** Full URI of this end, e.g. `tcp://127.0.0.1:50000`. */
  readonly localAddress: string;
  /** Full URI of the other end. */
  readonly peerAddress: string;
  /** Transport details: for tls the peer certificate and cipher. */
  readonly extraInfo: Record<string, unknown>;

  /** Starts delivering messages to `sink`. Called exactly once. */
  open(sink: ConnectionSink): void;

  /**
   * Queues one message. Resolves with its size on the wire once the transport holds it
   * within its high-water mark; rejects with `CommClosedError` if the connection is or
   * becomes aborted first. Never throws synchronously.
   */
  write(message: unknown): Promise<number>;

  /** Stop reading from the wire (the reader above is keeping too many messages). */
  pause(): void;
  /** Resume reading. */
  resume(): void;

  /**
   * Flushes what was written, then ends the connection; the peer's reader completes.
   * Returns nothing when that is done at once (inproc), so that closing stays
   * synchronous under a virtual-time scheduler.
   */
  close(): Promise<void> | void;
  /** Ends the connection now, dropping unsent data; the peer's reader errors. */
  abort(reason?: Error): void;
}
