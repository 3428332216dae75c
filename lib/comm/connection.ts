/**
 * The contract between a transport and the Comm above it.
 *
 * A transport turns bytes (or, for inproc, object references) into whole messages
 * and back; it knows nothing of handshakes, retries or Observables of messages.
 * The generic `Comm` wraps one `Connection` and gives it the public contract.
 */

/**
 * Where a connection delivers what it reads. Called in order, never after `complete` or
 * `error`. A `Comm` is the usual sink; a test may open a connection on one of its own.
 *
 * ## Example
 * ```ts
 * const [a, b] = createConnectionPair();
 * const sink: ConnectionSink = {
 *   next: (message, nbytes) => console.log(message, nbytes),
 *   complete: () => console.log('the peer closed'),
 *   error: (err) => console.error(err.message),
 * };
 * b.open(sink);
 * a.open({ next() {}, complete() {}, error() {} });
 * await a.write({ op: 'ping' });
 * ```
 *
 * @group Transports
 */
export interface ConnectionSink {
  /** One whole message; `nbytes` is its size on the wire (0 where there is no wire). */
  next(message: unknown, nbytes: number): void;
  /** The peer closed cleanly. */
  complete(): void;
  /** The connection failed: reset, aborted by the peer, or a protocol error. */
  error(err: Error): void;
}

/**
 * One transport end carrying whole messages: what a backend's `connect` and `listen`
 * emit, and what a `Comm` wraps. Implement it to add a transport (see `registerBackend`);
 * `rxcomm/testing` makes pairs of them for fake backends.
 *
 * ## Example
 * ```ts
 * // A fake backend's connection: its `connect` emits `client`; the far end answers the
 * // handshake as a listener would, and becomes a comm.
 * const [client, server] = createConnectionPair();
 * console.log(client.localAddress, client.peerAddress); // test://a test://b
 * acceptHandshake(server).subscribe((comm) => comm.read$.subscribe(comm));
 * ```
 *
 * @group Transports
 */
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

  /**
   * Bytes written and not yet handed to the network, which `writeBufferLimit` bounds.
   * inproc, which passes references, counts each undelivered message as 1 KiB.
   */
  readonly bufferedBytes: number;
  /** Whether the transport is at its write high-water mark: a `write()` now would wait. */
  readonly needsDrain: boolean;

  /**
   * Dead-peer detection, where the transport can make a live peer answer: called once,
   * after the handshake, with whether the peer said it understands rxcomm heartbeats.
   * Returns nothing where a silent peer cannot be told from a dead one (tcp to a Dask
   * peer, which is left to TCP keepalive, set here; inproc; a browser's WebSocket).
   */
  peerProbe?(peerUnderstandsHeartbeats: boolean): PeerProbe | undefined;

  /**
   * Called once, after the handshake, with the compression it negotiated (`null`: none).
   * Transports that encode messages compress what this side writes with it (Dask
   * compresses only out-of-band payload frames); what arrives is decompressed by its
   * own labels whatever this says. Absent where nothing is encoded (inproc).
   */
  useCompression?(compression: string | null): void;
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

/**
 * What the comm's dead-peer watch needs of a transport: counters that grow whenever
 * something arrives from or goes to the peer (no clock: the watch keeps time on its
 * scheduler), and a way to make a live peer send something back.
 *
 * ## Example
 * ```ts
 * // In a transport's Connection: counters its socket handlers bump, and a ping.
 * declare function writeHeartbeat(): void; // a frame that the peer answers
 * let received = 0;
 * let sent = 0;
 * const probe: PeerProbe = {
 *   get received() { return received; },
 *   get sent() { return sent; },
 *   ping: writeHeartbeat,
 * };
 * ```
 *
 * @group Transports
 */
export interface PeerProbe {
  /** Grows whenever anything arrives from the peer: bytes, a heartbeat, a pong. */
  readonly received: number;
  /**
   * Grows whenever bytes leave for the peer: taken by the network, not merely queued,
   * so that it stops growing when writes to a vanished peer are stuck.
   */
  readonly sent: number;
  /**
   * Sends what the peer answers or skips: an rxcomm heartbeat (a message of no frames,
   * which only a peer that advertised heartbeats receives), a WebSocket ping.
   */
  ping(): void;
}
