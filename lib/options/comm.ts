/**
 * A value of the `compression` option: a format, `'auto'` (Dask's: the best available,
 * which is lz4 here), or `null` for none.
 *
 * ## Example
 * ```ts
 * const compression: CompressionOption = 'auto';
 * const listener = listen('tcp://127.0.0.1:0', { compression }); // lz4 with peers that agree
 * ```
 *
 * @group Comms
 */
export type CompressionOption = 'lz4' | 'zstd' | 'snappy' | 'zlib' | 'auto' | null;

/**
 * Options of a Comm, accepted by `connect()` and `listen()`: compression, how much may
 * wait unread or unsent, dead-peer detection and the close timeout.
 *
 * ## Example
 * ```ts
 * const config: CommConfig = { compression: 'lz4', readHighWaterMark: 100, deadPeerTimeout: 10_000 };
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', config));
 * ```
 *
 * @group Comms
 */
export interface CommConfig {
  /**
   * The compression this side advertises in the handshake (Dask's
   * `distributed.comm.compression`). When both sides advertise the same one, this side
   * compresses the out-of-band payloads it writes (`toSerialize` values) with it, under
   * Dask's rule: frames of 10,000 bytes to 2 GiB, kept compressed only if they shrink to
   * 70 % or less, judged on a sample first. Frame 0 is never compressed. Whatever this
   * says, payloads that arrive compressed (lz4, zstd, snappy, zlib) are decompressed by
   * their labels. `'zstd'` compresses only on Node (a WebAssembly encoder, loaded before
   * the first connect or listen that names it); a browser reads zstd but cannot choose it.
   * @default null
   */
  compression?: CompressionOption;
  /**
   * How many received messages a comm keeps while nobody reads (no `read$` subscriber, no
   * pending `read()`) before it stops reading from the transport, so that a slow reader
   * bounds memory on both ends.
   * @default 1024
   */
  readHighWaterMark?: number;
  /**
   * The same bound in bytes: reading pauses when the unread messages hold this many, each
   * counted as its wire size plus what decompressing its payloads added (a small
   * compressed frame may hold far more once read).
   * @default 67108864 (64 MiB)
   */
  readHighWaterMarkBytes?: number;
  /**
   * Bytes a comm may hold unsent before one more write aborts it with
   * `WriteBufferOverflowError`, so that a peer that never reads cannot grow this process
   * without bound. Writers that await `write()` (or use `writeTo`) never meet it: they
   * wait at `writeHighWaterMark`. Only writes that do not wait (`next()`, a
   * `source$.subscribe(comm)`, a `write()` not awaited) can pile up to it, and those fed
   * by another comm's `read$` pause that comm's reading first. A single message larger
   * than the limit still goes through when little is buffered. inproc, which passes
   * references, counts each undelivered message as 1 KiB.
   * @default 67108864 (64 MiB)
   */
  writeBufferLimit?: number;
  /**
   * Dead-peer detection, in milliseconds (Dask's `distributed.comm.timeouts.tcp`): a
   * peer that vanished without closing (a cut cable, a frozen machine) fails the comm
   * with `DeadPeerError` after about this long, idle or busy. Between two rxcomm peers
   * over tcp and tls, each sends a heartbeat (a message of no frames, agreed in the
   * handshake) when it has been quiet for a third of the other's timeout; over ws, the
   * Node side sends WebSocket pings, which every peer answers. With a Dask peer over tcp
   * or tls, TCP keepalive (idle `deadPeerTimeout − 10 s`, then 10 probes 1 s apart, set
   * once the handshake shows a peer without heartbeats) detects an idle comm; a comm with unacknowledged writes to a vanished Dask peer is
   * left to the kernel's retransmission timeout. A peer whose event loop is blocked for
   * longer than this is taken for dead. `0` turns the watch off (keepalive stays on,
   * with the kernel's default idle time).
   * @default 30000
   */
  deadPeerTimeout?: number;
  /**
   * How long `close()` may take to flush before it aborts the comm, in milliseconds.
   * @default 10000
   */
  closeTimeout?: number;
}

export const COMM_DEFAULTS = {
  compression: null,
  readHighWaterMark: 1024,
  readHighWaterMarkBytes: 64 * 1024 * 1024,
  writeBufferLimit: 64 * 1024 * 1024,
  deadPeerTimeout: 30_000,
  closeTimeout: 10_000,
} as const satisfies Required<CommConfig>;
