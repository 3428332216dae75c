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
   * How long `close()` may take to flush before it aborts the comm, in milliseconds.
   * @default 10000
   */
  closeTimeout?: number;
}

export const COMM_DEFAULTS = {
  readHighWaterMark: 1024,
  readHighWaterMarkBytes: 64 * 1024 * 1024,
  closeTimeout: 10_000,
} as const satisfies Required<CommConfig>;
