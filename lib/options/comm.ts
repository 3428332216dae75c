/** Options of a Comm, accepted by `connect()` and `listen()`. */
export interface CommConfig {
  /**
   * How many received messages a comm keeps while nobody reads (no `read$` subscriber, no
   * pending `read()`) before it stops reading from the transport, so that a slow reader
   * bounds memory on both ends.
   * @default 1024
   */
  readHighWaterMark?: number;
  /**
   * The same bound in wire bytes: reading pauses when the unread messages hold this many.
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
   * or tls, TCP keepalive (idle `deadPeerTimeout − 10 s`, then 10 probes 1 s apart)
   * detects an idle comm; a comm with unacknowledged writes to a vanished Dask peer is
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
  readHighWaterMark: 1024,
  readHighWaterMarkBytes: 64 * 1024 * 1024,
  writeBufferLimit: 64 * 1024 * 1024,
  deadPeerTimeout: 30_000,
  closeTimeout: 10_000,
} as const satisfies Required<CommConfig>;
