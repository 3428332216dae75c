/**
 * How messages become frames and back. The default codec is Dask's (msgpack in
 * frame 0, `__Serialized__`/`__Pickled__` payloads in the frames after it); users who
 * do not need Dask compatibility can plug in their own per comm.
 */
export interface MessageCodec {
  /**
   * Frames for one message; frame 0 first. The codec may return views into its own
   * buffers. `context` is the comm's: Dask's codec compresses `toSerialize` payloads with
   * its negotiated compression.
   */
  encode(message: unknown, context?: CodecContext): Uint8Array[];
  /**
   * Optional, for transports that write bytes: the same frames, where a frame may be
   * given as pieces to send back to back, so that large buffers are not copied into it.
   */
  encodePieces?(message: unknown, context?: CodecContext): FramePieces[];
  /**
   * One message from its frames. Throws on malformed input; the comm is then aborted.
   * Dask's codec decompresses payload frames up to `context.maxMessageSize` in all.
   */
  decode(frames: Uint8Array[], context?: CodecContext): unknown;
}

/**
 * What a codec may need of the comm it codes for. Transports pass themselves: one object
 * per connection, no allocation per message.
 */
export interface CodecContext {
  /** The compression the handshake negotiated (`null`: none), used for what this side writes. */
  readonly compression: string | null;
  /** The most a message may hold, decompressed payloads included. */
  readonly maxMessageSize: number;
}

/** One frame, whole or as pieces that are sent back to back. */
export type FramePieces = Uint8Array | readonly Uint8Array[];
