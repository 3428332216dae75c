/**
 * Dask's framing over WebSocket (`distributed/comm/ws.py`), both directions. A WebSocket
 * already delimits messages, so there is no length header: one Dask message is
 *
 *     a binary message of 8 bytes: N, the frame count (u64 little-endian)
 *     N binary messages, one per frame, each exactly that frame's bytes
 *
 * Text messages never occur. `WsMessageReader` turns the WebSocket messages of one
 * connection back into Dask messages; `wsMessagesOf` lays one out for sending.
 */
import { MessageTooLargeError, ProtocolError } from '../../errors';
import { allocUnsafe } from '../bytes';
import type { FramePieces } from '../codec';
import { exactUint64, HIGH_WORD_UNSAFE, preludeSize, readUint32, TWO_POW_32, WORD_SIZE, writeUint64 } from './header';

/** The size of the count message. */
export const COUNT_SIZE = WORD_SIZE;

/**
 * The count messages of the common frame counts, made once: a fresh 8-byte buffer per
 * message was a measurable share of a small message's cost. Shared, so never written to
 * (WebSocket senders copy what they mask).
 */
const COMMON_COUNTS: Uint8Array[] = [];
const COMMON_COUNT_LIMIT = 64;

/** The count message of a Dask message of `frameCount` frames. Do not modify it. */
export function countMessage(frameCount: number): Uint8Array {
  if (frameCount < COMMON_COUNT_LIMIT) {
    const common = COMMON_COUNTS[frameCount];
    if (common) return common;
  }
  const count = allocUnsafe(COUNT_SIZE);
  writeUint64(count, 0, frameCount);
  if (frameCount < COMMON_COUNT_LIMIT) COMMON_COUNTS[frameCount] = count;
  return count;
}

/**
 * One frame as one buffer, for senders that cannot send a message in fragments (a
 * browser's WebSocket): pieces are joined.
 */
export function joinPieces(frame: FramePieces): Uint8Array {
  if (frame instanceof Uint8Array) return frame;
  if (frame.length === 1) return frame[0];
  let length = 0;
  for (let i = 0; i < frame.length; i++) length += frame[i].byteLength;
  const joined = allocUnsafe(length);
  let at = 0;
  for (let i = 0; i < frame.length; i++) {
    joined.set(frame[i], at);
    at += frame[i].byteLength;
  }
  return joined;
}

/**
 * The WebSocket messages of one Dask message, in order: the count, then each frame (as
 * pieces where the codec gave pieces: a sender may send them as fragments of one message,
 * or join them). They must be sent back to back, never interleaved with another message's.
 *
 * ## Example
 *
 * ```ts
 * for (const part of wsMessagesOf(codec.encode({ op: 'identity', reply: true }))) socket.send(joinPieces(part));
 * ```
 */
export function wsMessagesOf(frames: readonly FramePieces[]): FramePieces[] {
  const parts = new Array<FramePieces>(frames.length + 1);
  parts[0] = countMessage(frames.length);
  for (let i = 0; i < frames.length; i++) parts[i + 1] = frames[i];
  return parts;
}

/**
 * The size a Dask message of these frames counts against `maxMessageSize`: the same
 * measure as over tcp (N, one length per frame, and the frames), so that one limit means
 * the same on every transport.
 */
export function wsMessageSize(frameCount: number, frameBytes: number): number {
  return preludeSize(frameCount) + frameBytes;
}

export interface WsMessageReaderConfig {
  /** Largest Dask message accepted, measured as `wsMessageSize`. */
  maxMessageSize: number;
  /** The most frames one message may have. Default: 1,048,576, as `FrameParser`. */
  maxFrameCount?: number;
  /**
   * Called synchronously once per complete message. `frames` are the WebSocket messages
   * themselves (no copy); `nbytes` is the count message plus the frames.
   */
  onMessage: (frames: Uint8Array[], nbytes: number) => void;
}

/**
 * Reassembles Dask messages from WebSocket messages: a two-state machine, reading a count
 * or reading frames. Anything out of shape (a text message, a count that is not 8 bytes,
 * a count of 0 or past `maxFrameCount`, frames past `maxMessageSize`) throws
 * `ProtocolError`, and the reader stays dead.
 *
 * ## Example
 *
 * ```ts
 * const reader = new WsMessageReader({ maxMessageSize: 1 << 30, onMessage: (frames) => sink.next(codec.decode(frames)) });
 * socket.on('message', (data, isBinary) => reader.push(data, isBinary));
 * socket.on('close', () => (reader.midMessage ? sink.error(truncated) : sink.complete()));
 * ```
 */
export class WsMessageReader {
  private readonly maxMessageSize: number;
  private readonly maxFrameCount: number;
  private readonly onMessage: (frames: Uint8Array[], nbytes: number) => void;
  /** Frames still expected for the message being read; 0 means a count comes next. */
  private framesExpected = 0;
  private frames: Uint8Array[] = [];
  private size = 0;
  private failure: ProtocolError | undefined;

  constructor(config: WsMessageReaderConfig) {
    const { maxMessageSize, onMessage, maxFrameCount = 1 << 20 } = config;
    if (!(maxMessageSize > 0)) throw new RangeError(`maxMessageSize must be a positive number, got ${maxMessageSize}`);
    this.maxMessageSize = maxMessageSize;
    this.maxFrameCount = maxFrameCount;
    this.onMessage = onMessage;
  }

  /** True while frames of a message are still due: a close now truncates it. */
  get midMessage(): boolean {
    return this.framesExpected > 0;
  }

  /** Feeds one WebSocket message; `binary` is false for a text message. */
  push(data: Uint8Array, binary = true): void {
    if (this.failure) throw this.failure;
    try {
      if (!binary) throw new ProtocolError(`the peer sent a text WebSocket message (${data.byteLength} bytes); Dask's ws framing is binary only`);
      if (this.framesExpected === 0) this.readCount(data);
      else this.readFrame(data);
    } catch (err) {
      this.failure = err as ProtocolError;
      throw err;
    }
  }

  private readCount(data: Uint8Array): void {
    if (data.byteLength !== COUNT_SIZE) {
      throw new ProtocolError(`expected an 8-byte frame count, got a ${data.byteLength}-byte WebSocket message`);
    }
    const low = readUint32(data, 0);
    const high = readUint32(data, 4);
    if (high >= HIGH_WORD_UNSAFE) throw new ProtocolError(`frame count ${exactUint64(low, high)} is out of range`);
    const count = high * TWO_POW_32 + low;
    if (count === 0) throw new ProtocolError('a message announced 0 frames');
    if (count > this.maxFrameCount) throw new ProtocolError(`a message announced ${count} frames, more than ${this.maxFrameCount}`);
    const prelude = preludeSize(count);
    if (prelude > this.maxMessageSize) throw new MessageTooLargeError(prelude, this.maxMessageSize);
    this.framesExpected = count;
    this.size = prelude;
  }

  private readFrame(data: Uint8Array): void {
    this.size += data.byteLength;
    if (this.size > this.maxMessageSize) throw new MessageTooLargeError(this.size, this.maxMessageSize);
    this.frames.push(data);
    if (--this.framesExpected > 0) return;
    const frames = this.frames;
    const nbytes = COUNT_SIZE + this.size - preludeSize(frames.length);
    this.frames = [];
    this.onMessage(frames, nbytes);
  }
}
