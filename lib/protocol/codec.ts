/**
 * How messages become frames and back. The default codec is Dask's (msgpack in
 * frame 0, `__Serialized__`/`__Pickled__` payloads in the frames after it); users who
 * do not need Dask compatibility can plug in their own per comm (the `codec` option).
 *
 * ## Example
 * ```ts
 * // JSON in one frame, for peers that are not Dask: both ends need the same codec.
 * const json: MessageCodec = {
 *   encode: (message) => [new TextEncoder().encode(JSON.stringify(message))],
 *   decode: (frames) => JSON.parse(new TextDecoder().decode(frames[0])),
 * };
 * const listener = listen('tcp://127.0.0.1:0', { codec: json });
 * ```
 *
 * @group Transports
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
 *
 * ## Example
 * ```ts
 * const context: CodecContext = { compression: 'lz4', maxMessageSize: 64 * 1024 * 1024 };
 * const codec = daskCodec({ deserialize: true });
 * const frames = codec.encode({ op: 'put', data: toSerialize(new Uint8Array(100_000)) }, context);
 * codec.decode(frames, context); // { op: 'put', data: Uint8Array(100000) }
 * ```
 *
 * @group Transports
 */
export interface CodecContext {
  /** The compression the handshake negotiated (`null`: none), used for what this side writes. */
  readonly compression: string | null;
  /** The most a message may hold, decompressed payloads included. */
  readonly maxMessageSize: number;
  /**
   * Told, while a message is decoded, how many bytes decompressing its payloads added to
   * its wire size: what a message holds in memory, not only what it took on the wire,
   * then counts against the reader's `readHighWaterMarkBytes` (a small frame may inflate
   * to `maxMessageSize`).
   */
  inflated?(bytes: number): void;
}

/**
 * One frame, whole or as pieces that are sent back to back.
 *
 * ## Example
 * ```ts
 * const pieces: FramePieces[] = daskCodec({ deserialize: true }).encodePieces?.({ op: 'ping' }) ?? [];
 * const frameSizes = pieces.map((frame) =>
 *   frame instanceof Uint8Array ? frame.byteLength : frame.reduce((n, piece) => n + piece.byteLength, 0),
 * );
 * ```
 *
 * @group Transports
 */
export type FramePieces = Uint8Array | readonly Uint8Array[];
