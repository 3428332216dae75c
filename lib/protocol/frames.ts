/**
 * Dask's TCP framing: how one message (a list of frames) travels on a byte stream.
 *
 * All integers are unsigned 64-bit little-endian:
 *
 *     T            bytes that follow T (Dask 2022.12.1: the prelude and all frames)
 *     N            number of frames          \
 *     len[0..N-1]  length of each frame       } the prelude, 8 * (1 + N) bytes
 *     frame[0] ... frame[N-1]                 / back to back, no padding
 *
 * Dask since late 2023 may send a smaller T that covers only the prelude and the first
 * frames (it reads the rest of the frames by their lengths, into separate buffers). The
 * parser here reads every frame by its length, so it accepts both; T is only checked.
 */
import { constants as bufferConstants } from 'buffer';
import { MessageTooLargeError, ProtocolError } from '../errors';

const TWO_POW_32 = 0x1_0000_0000;
/** A high 32-bit word at or above this makes a u64 larger than 2^53: no JS number holds it exactly. */
const HIGH_WORD_UNSAFE = 0x20_0000;

/**
 * The prelude Dask 2022.12.1 writes before the frames: T, N and the N lengths, with
 * T = 8 * (1 + N) + sum(lengths). Write it, then the frames, with no copy in between.
 *
 * ## Example
 *
 * ```ts
 * const frames = codec.encode({ op: 'identity', reply: true });
 * socket.cork();
 * socket.write(encodePrelude(frames));
 * for (const frame of frames) socket.write(frame);
 * socket.uncork();
 * ```
 */
export function encodePrelude(frames: readonly Uint8Array[]): Buffer {
  const count = frames.length;
  // allocUnsafe: every byte is written below, and small sizes come from Node's pool.
  const prelude = Buffer.allocUnsafe(8 * (2 + count));
  let total = 8 * (1 + count);
  for (let i = 0; i < count; i++) {
    const length = frames[i].byteLength;
    writeUint64(prelude, 16 + 8 * i, length);
    total += length;
  }
  writeUint64(prelude, 0, total);
  writeUint64(prelude, 8, count);
  return prelude;
}

/** The number of bytes a message of these frames takes on the wire, T included. */
export function framedSize(frames: readonly Uint8Array[]): number {
  let total = 8 * (2 + frames.length);
  for (let i = 0; i < frames.length; i++) total += frames[i].byteLength;
  return total;
}

function writeUint64(target: Buffer, offset: number, value: number): void {
  // `>>> 0` keeps the low 32 bits of any integer up to 2^53, which covers every length.
  target.writeUInt32LE(value >>> 0, offset);
  target.writeUInt32LE(Math.floor(value / TWO_POW_32), offset + 4);
}

function readUint32(source: Uint8Array, offset: number): number {
  // Plain arithmetic: no bounds check (callers checked), and inlined by V8 in the hot loop.
  return (source[offset] | (source[offset + 1] << 8) | (source[offset + 2] << 16)) + source[offset + 3] * 0x100_0000;
}

/** The exact value of a u64 that does not fit in a JS number, for error messages. */
function exactUint64(low: number, high: number): bigint {
  return (BigInt(high) << 32n) | BigInt(low);
}

export interface FrameParserConfig {
  /**
   * The largest message accepted, counted as the bytes after T (the prelude and all
   * frames). Both the announced T and the sum the prelude adds up to are checked against
   * it before anything is allocated for the message. Use `Infinity` for no limit.
   */
  maxMessageSize: number;
  /**
   * Called synchronously, in order, once per complete message. `frames` may be views into
   * the chunks given to `push()` (zero copy), so chunks must not be reused afterwards.
   * `nbytes` is the size of the message on the wire, T included. If it throws, the error
   * leaves `push()` and the parser is dead.
   */
  onMessage: (frames: Uint8Array[], nbytes: number) => void;
  /**
   * The most frames one message may have; more is a `ProtocolError`. Dask uses one frame
   * for the message plus, per serialized object, a header and its payload frames.
   * Default: 1,048,576 (a prelude of 8 MiB).
   */
  maxFrameCount?: number;
}

// The parser's states. Plain numbers: a `const enum` would not survive isolated transpilers.
const READ_ANNOUNCED_SIZE = 0; // T
const READ_FRAME_COUNT = 1; // N
const READ_FRAME_LENGTHS = 2; // len[0..N-1]
const READ_FRAMES = 3;

/**
 * Turns a byte stream, in chunks of any size, into Dask messages (lists of frames).
 *
 * An explicit state machine, so that no byte is ever copied twice: a frame that lies
 * wholly inside a chunk is handed out as a view of that chunk; a frame spanning chunks is
 * copied into one buffer allocated once, at its final size, and filled as chunks arrive.
 * Only an integer of the prelude that is split between chunks goes through an 8-byte
 * scratch buffer. Cost is linear in the bytes pushed, whatever the chunk sizes: 10,000
 * small messages per chunk parse at 4.7-7.5 M messages/s on a noisy 2-core VM
 * (spec/protocol/bench-protocol.ts); a large frame costs one copy of its bytes.
 *
 * Malformed input throws `ProtocolError` (or `MessageTooLargeError`); after any throw the
 * parser is dead and every further `push()` throws the same error.
 *
 * ## Example
 *
 * ```ts
 * const parser = new FrameParser({
 *   maxMessageSize: 1 << 30,
 *   onMessage: (frames, nbytes) => sink.next(codec.decode(frames), nbytes),
 * });
 * socket.on('data', (chunk) => parser.push(chunk));
 * socket.on('end', () => (parser.midMessage ? sink.error(truncated) : sink.complete()));
 * ```
 */
export class FrameParser {
  private readonly maxMessageSize: number;
  private readonly maxFrameCount: number;
  /** No single Buffer can be larger than this, whatever maxMessageSize says. */
  private readonly maxFrameLength: number;
  private readonly onMessage: (frames: Uint8Array[], nbytes: number) => void;

  private state = READ_ANNOUNCED_SIZE;
  private failure: Error | undefined;

  // The message being read.
  private announcedSize = 0; // T
  private frameCount = 0; // N
  /** Reused between messages: no allocation per message for the usual single frame. */
  private readonly frameLengths: number[] = [];
  /** 8 * (1 + N) + the lengths read so far: the size after T that the prelude adds up to. */
  private sizeAfterAnnounced = 0;
  private frames: Uint8Array[] = [];
  /** A frame that spans chunks: allocated once at its final size, filled as chunks arrive. */
  private partialFrame: Buffer | null = null;
  private partialFrameFill = 0;

  /** One prelude integer split between chunks. */
  private readonly intScratch = Buffer.alloc(8);
  private intScratchFill = 0;

  constructor(config: FrameParserConfig) {
    const { maxMessageSize, onMessage, maxFrameCount = 1 << 20 } = config;
    if (!(maxMessageSize > 0)) throw new RangeError(`maxMessageSize must be a positive number, got ${maxMessageSize}`);
    if (!(maxFrameCount >= 1)) throw new RangeError(`maxFrameCount must be at least 1, got ${maxFrameCount}`);
    this.maxMessageSize = maxMessageSize;
    this.maxFrameCount = maxFrameCount;
    this.maxFrameLength = Math.min(maxMessageSize, bufferConstants.MAX_LENGTH);
    this.onMessage = onMessage;
  }

  /**
   * True while part of a message is held: an end of stream now means a truncated message,
   * not a clean close.
   */
  get midMessage(): boolean {
    return this.state !== READ_ANNOUNCED_SIZE || this.intScratchFill !== 0;
  }

  /** Feeds the next chunk of the stream; calls `onMessage` for every message it completes. */
  push(chunk: Buffer): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.consume(chunk);
    } catch (err) {
      this.failure = err instanceof Error ? err : new ProtocolError(String(err), { cause: err });
      throw this.failure;
    }
  }

  private consume(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    while (pos < end) {
      if (this.state === READ_ANNOUNCED_SIZE && this.intScratchFill === 0) {
        pos = this.readWholeSingleFrames(chunk, pos, end);
        if (pos >= end) return;
      }
      if (this.state === READ_FRAMES) {
        pos = this.readFrames(chunk, pos, end);
        continue;
      }
      // Every other state reads one u64: straight from the chunk when it is all there.
      let low: number;
      let high: number;
      if (this.intScratchFill === 0 && end - pos >= 8) {
        low = readUint32(chunk, pos);
        high = readUint32(chunk, pos + 4);
        pos += 8;
      } else {
        const take = Math.min(8 - this.intScratchFill, end - pos);
        chunk.copy(this.intScratch, this.intScratchFill, pos, pos + take);
        pos += take;
        this.intScratchFill += take;
        if (this.intScratchFill < 8) return;
        this.intScratchFill = 0;
        low = readUint32(this.intScratch, 0);
        high = readUint32(this.intScratch, 4);
      }
      if (this.state === READ_ANNOUNCED_SIZE) this.onAnnouncedSize(low, high);
      else if (this.state === READ_FRAME_COUNT) this.onFrameCount(low, high);
      else this.onFrameLength(low, high);
    }
  }

  /**
   * The fast path for the common message: one frame, full `T`, all of it in this chunk.
   * Hands each out as a view and returns where it stopped; anything else (several
   * frames, a short `T`, a message cut by the chunk's end, a size over the limit) is left
   * to the general state machine, which also reports the errors.
   */
  private readWholeSingleFrames(chunk: Buffer, pos: number, end: number): number {
    while (end - pos >= 24) {
      const announced = readUint32(chunk, pos);
      const length = readUint32(chunk, pos + 16);
      if (
        readUint32(chunk, pos + 4) !== 0 ||
        readUint32(chunk, pos + 8) !== 1 ||
        readUint32(chunk, pos + 12) !== 0 ||
        readUint32(chunk, pos + 20) !== 0 ||
        announced !== 16 + length ||
        announced > this.maxMessageSize ||
        end - pos - 24 < length
      ) {
        return pos;
      }
      const frame = chunk.subarray(pos + 24, pos + 24 + length);
      pos += 24 + length;
      this.onMessage([frame], 8 + announced);
    }
    return pos;
  }

  /** T, checked at once: a peer announcing 2^63 bytes is refused before we wait for them. */
  private onAnnouncedSize(low: number, high: number): void {
    if (high >= HIGH_WORD_UNSAFE) throw new MessageTooLargeError(exactUint64(low, high), this.maxMessageSize);
    const size = high * TWO_POW_32 + low;
    if (size > this.maxMessageSize) throw new MessageTooLargeError(size, this.maxMessageSize);
    if (size < 8) throw new ProtocolError(`message announces ${size} bytes, too few to hold its frame count`);
    this.announcedSize = size;
    this.state = READ_FRAME_COUNT;
  }

  private onFrameCount(low: number, high: number): void {
    const announced = this.announcedSize;
    // T covers at least the prelude. This also bounds N by maxMessageSize / 8.
    if (high !== 0 || 8 * (1 + low) > announced) {
      const count = high === 0 ? low : exactUint64(low, high);
      throw new ProtocolError(`message announces ${announced} bytes, too few for the prelude of ${count} frames`);
    }
    if (low > this.maxFrameCount) {
      throw new ProtocolError(`message of ${low} frames exceeds the limit of ${this.maxFrameCount} frames`);
    }
    this.frameCount = low;
    this.sizeAfterAnnounced = 8 * (1 + low);
    if (low === 0) {
      this.checkAnnouncedCovered();
      this.finishMessage();
    } else {
      this.state = READ_FRAME_LENGTHS;
    }
  }

  private onFrameLength(low: number, high: number): void {
    // Checked length by length, so a huge one fails before the frames are awaited or allocated.
    if (high >= HIGH_WORD_UNSAFE) {
      const size = BigInt(this.sizeAfterAnnounced) + exactUint64(low, high);
      throw new MessageTooLargeError(size, this.maxMessageSize);
    }
    const length = high * TWO_POW_32 + low;
    const size = this.sizeAfterAnnounced + length;
    if (size > this.maxMessageSize) throw new MessageTooLargeError(size, this.maxMessageSize);
    if (length > this.maxFrameLength) throw new MessageTooLargeError(length, this.maxFrameLength);
    this.sizeAfterAnnounced = size;
    const lengths = this.frameLengths;
    lengths.push(length);
    if (lengths.length === this.frameCount) {
      this.checkAnnouncedCovered();
      this.state = READ_FRAMES;
      this.takeEmptyFrames();
    }
  }

  /** Newer Dask's T may stop short of the frames; a T beyond them is garbage. */
  private checkAnnouncedCovered(): void {
    if (this.announcedSize > this.sizeAfterAnnounced) {
      throw new ProtocolError(
        `message announces ${this.announcedSize} bytes, but its prelude and frames add up to ${this.sizeAfterAnnounced}`,
      );
    }
  }

  /** Frames of length 0 need no bytes: take them now, and finish the message if that was all. */
  private takeEmptyFrames(): void {
    const lengths = this.frameLengths;
    const frames = this.frames;
    while (frames.length < lengths.length && lengths[frames.length] === 0) frames.push(Buffer.alloc(0));
    if (frames.length === lengths.length) this.finishMessage();
  }

  private readFrames(chunk: Buffer, pos: number, end: number): number {
    const lengths = this.frameLengths;
    const frames = this.frames;
    while (pos < end) {
      const length = lengths[frames.length];
      let partial = this.partialFrame;
      if (partial === null) {
        if (end - pos >= length) {
          // The whole frame is in this chunk: a view, no copy.
          frames.push(chunk.subarray(pos, pos + length));
          pos += length;
          this.takeEmptyFrames();
          if (this.state !== READ_FRAMES) return pos;
          continue;
        }
        // Spans chunks: one buffer at its final size, never re-allocated.
        partial = this.partialFrame = Buffer.allocUnsafe(length);
        this.partialFrameFill = 0;
      }
      const take = Math.min(length - this.partialFrameFill, end - pos);
      chunk.copy(partial, this.partialFrameFill, pos, pos + take);
      pos += take;
      this.partialFrameFill += take;
      if (this.partialFrameFill < length) return pos;
      this.partialFrame = null;
      frames.push(partial);
      this.takeEmptyFrames();
      if (this.state !== READ_FRAMES) return pos;
    }
    return pos;
  }

  private finishMessage(): void {
    const frames = this.frames;
    const nbytes = 8 + this.sizeAfterAnnounced;
    // Reset before the callback, so the parser is consistent whatever the callback does.
    this.frames = [];
    this.frameLengths.length = 0;
    this.state = READ_ANNOUNCED_SIZE;
    this.onMessage(frames, nbytes);
  }
}
