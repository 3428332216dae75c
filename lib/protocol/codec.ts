/**
 * How messages become frames and back. The default codec is Dask's (msgpack in
 * frame 0, `__Serialized__`/`__Pickled__` payloads in the frames after it); users who
 * do not need Dask compatibility can plug in their own per comm.
 */
export interface MessageCodec {
  /** Frames for one message; frame 0 first. The codec may return views into its own buffers. */
  encode(message: unknown): Uint8Array[];
  /**
   * Optional, for transports that write bytes: the same frames, where a frame may be
   * given as pieces to send back to back, so that large buffers are not copied into it.
   */
  encodePieces?(message: unknown): FramePieces[];
  /** One message from its frames. Throws on malformed input; the comm is then aborted. */
  decode(frames: Uint8Array[]): unknown;
}

/** One frame, whole or as pieces that are sent back to back. */
export type FramePieces = Uint8Array | readonly Uint8Array[];
