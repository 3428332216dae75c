/**
 * Reading Dask's framing (layout in header.ts): `FrameParser` turns a byte stream into
 * messages, each a list of frames.
 */
import { MessageTooLargeError, ProtocolError } from '../../errors';
import { allocUnsafe, MAX_BYTE_LENGTH } from '../bytes';
import { exactUint64, HIGH_WORD_UNSAFE, headerSize, preludeSize, readUint32, TWO_POW_32, WORD_SIZE } from './header';

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
  /**
   * A lower limit for the first message only: in Dask's protocol that is the handshake, a
   * map of a few dozen bytes, so a peer that has not yet said who it is cannot make the
   * parser reserve more than this (a declared 1 GiB frame would otherwise be allocated up
   * front). Default: no lower limit.
   */
  firstMessageLimit?: number;
}

/** What the transports pass as `firstMessageLimit`: Dask's handshake is about 70 bytes. */
export const HANDSHAKE_LIMIT = 64 * 1024;

// The parser's states. Plain numbers: a `const enum` would not survive isolated transpilers.
const READ_ANNOUNCED_SIZE = 0; // T
const READ_FRAME_COUNT = 1; // N
const READ_FRAME_LENGTHS = 2; // len[0..N-1]
const READ_FRAMES = 3;

/** The common message, one frame: its header size, and its T less the frame's length. */
const SINGLE_HEADER = headerSize(1);
const SINGLE_PRELUDE = preludeSize(1);
/** How much of a foreign peer's first bytes a `ProtocolError` quotes. */
const QUOTE_LIMIT = 40;

/**
 * Turns a byte stream, in chunks of any size, into Dask messages (lists of frames).
 *
 * An explicit state machine, so that no byte is ever copied twice: a frame that lies
 * wholly inside a chunk is handed out as a view of that chunk; a frame spanning chunks is
 * copied into one buffer allocated once, at its final size, and filled as chunks arrive.
 * Only an integer of the prelude that is split between chunks goes through an 8-byte
 * scratch buffer. A reader that can choose where its bytes land (a socket's `onread`) asks
 * `receiveWindow()` for the rest of a large frame's buffer, reads into it and reports
 * `received(n)`: such bytes are never copied at all. Cost is linear in the bytes pushed,
 * whatever the chunk sizes: 10,000
 * small messages per chunk parse at 4.7-7.5 M messages/s on a noisy 2-core VM (the
 * protocol benchmark); a large frame costs one copy of its bytes.
 *
 * Malformed input throws `ProtocolError` (or `MessageTooLargeError`); after any throw the
 * parser is dead and every further `push()` throws the same error. A peer that speaks
 * some text protocol instead (an HTTP server, say) is told apart from one announcing a
 * huge message: its first 8 bytes, read as T, are printable ASCII, and the
 * `ProtocolError` quotes them.
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
  /** The limit now: the first message's until it is read, then the configured one. */
  private maxMessageSize: number;
  private readonly configuredMaxMessageSize: number;
  /** True until the first message is complete, while `firstMessageLimit` applies. */
  private firstMessagePending: boolean;
  private readonly maxFrameCount: number;
  /** No single byte array can be larger than this here, whatever maxMessageSize says (bytes.ts). */
  private maxFrameLength: number;
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
  private partialFrame: Uint8Array | null = null;
  private partialFrameFill = 0;

  /** One prelude integer split between chunks. */
  private readonly intScratch = new Uint8Array(WORD_SIZE);
  private intScratchFill = 0;
  /** No T read yet: an implausible first T may be a peer that speaks another protocol. */
  private atStreamStart = true;

  constructor(config: FrameParserConfig) {
    const { maxMessageSize, onMessage, maxFrameCount = 1 << 20, firstMessageLimit = Infinity } = config;
    if (!(maxMessageSize > 0)) throw new RangeError(`maxMessageSize must be a positive number, got ${maxMessageSize}`);
    if (!(maxFrameCount >= 1)) throw new RangeError(`maxFrameCount must be at least 1, got ${maxFrameCount}`);
    this.configuredMaxMessageSize = maxMessageSize;
    this.firstMessagePending = firstMessageLimit < maxMessageSize;
    this.maxMessageSize = Math.min(maxMessageSize, firstMessageLimit);
    this.maxFrameCount = maxFrameCount;
    this.maxFrameLength = Math.min(this.maxMessageSize, MAX_BYTE_LENGTH);
    this.onMessage = onMessage;
  }

  /**
   * True while part of a message is held: an end of stream now means a truncated message,
   * not a clean close.
   */
  get midMessage(): boolean {
    return this.state !== READ_ANNOUNCED_SIZE || this.intScratchFill !== 0;
  }

  /**
   * Feeds the next chunk of the stream; calls `onMessage` for every message it completes.
   * Frames that lie within the chunk are views of it, of its class (Buffers for a Buffer).
   */
  push(chunk: Uint8Array): void {
    if (this.failure !== undefined) throw this.failure;
    try {
      this.consume(chunk);
    } catch (err) {
      throw this.die(err);
    }
  }

  /**
   * Where the next bytes of the stream may be read straight to, with no copy: the part of
   * the current frame still to be filled, when it is at least `minimum` bytes long. The
   * frame's buffer is allocated here if it was not yet, at its final size (its length and
   * the message's were checked against the limits when its prelude was read). Otherwise
   * undefined: read into a buffer of your own and `push()` it.
   *
   * After reading `n` bytes into the window (its first `n`), call `received(n)` before
   * anything else is pushed. The window stays valid until then.
   *
   * ## Example
   *
   * ```ts
   * const window = parser.receiveWindow(256 * 1024);
   * const n = window ? readInto(window) : 0;
   * if (window) parser.received(n);
   * ```
   */
  receiveWindow(minimum: number): Uint8Array | undefined {
    if (this.failure !== undefined || this.state !== READ_FRAMES) return undefined;
    let partial = this.partialFrame;
    if (partial === null) {
      const length = this.frameLengths[this.frames.length];
      if (length < minimum) return undefined;
      partial = this.partialFrame = allocUnsafe(length);
      this.partialFrameFill = 0;
    }
    if (partial.length - this.partialFrameFill < minimum) return undefined;
    return partial.subarray(this.partialFrameFill);
  }

  /**
   * `n` bytes were written into the window `receiveWindow()` returned, at its start; the
   * message is handed to `onMessage` if they complete it.
   */
  received(n: number): void {
    if (this.failure !== undefined) throw this.failure;
    const partial = this.partialFrame;
    if (this.state !== READ_FRAMES || partial === null || !(n >= 0 && n <= partial.length - this.partialFrameFill)) {
      throw new RangeError(`received(${n}) does not match the window handed out`);
    }
    this.partialFrameFill += n;
    if (this.partialFrameFill < partial.length) return;
    this.partialFrame = null;
    this.frames.push(partial);
    try {
      this.takeEmptyFrames(); // may finish the message and call onMessage
    } catch (err) {
      throw this.die(err);
    }
  }

  /** Any throw kills the parser (see the class's doc): every later call throws `failure`. */
  private die(err: unknown): Error {
    this.failure =
      this.firstMessagePending && err instanceof MessageTooLargeError
        ? new ProtocolError(
            `the first message (the handshake) announced ${err.size} bytes, more than the ${this.maxMessageSize} accepted before a handshake`,
            { cause: err },
          )
        : err instanceof Error
          ? err
          : new ProtocolError(String(err), { cause: err });
    return this.failure;
  }

  private consume(chunk: Uint8Array): void {
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
      let word: Uint8Array; // where the u64 was read: this chunk or the scratch buffer
      if (this.intScratchFill === 0 && end - pos >= WORD_SIZE) {
        word = chunk;
        low = readUint32(chunk, pos);
        high = readUint32(chunk, pos + 4);
        pos += WORD_SIZE;
      } else {
        // At most 8 bytes: a loop is cheaper than a view and a native copy.
        const take = Math.min(WORD_SIZE - this.intScratchFill, end - pos);
        const scratch = this.intScratch;
        for (let i = 0; i < take; i++) scratch[this.intScratchFill + i] = chunk[pos + i];
        pos += take;
        this.intScratchFill += take;
        if (this.intScratchFill < WORD_SIZE) return;
        this.intScratchFill = 0;
        word = this.intScratch;
        low = readUint32(this.intScratch, 0);
        high = readUint32(this.intScratch, 4);
      }
      if (this.state === READ_ANNOUNCED_SIZE) {
        if (this.atStreamStart && (high !== 0 || low > this.maxMessageSize)) {
          const first = word === chunk ? chunk.subarray(pos - WORD_SIZE, pos) : this.intScratch;
          checkForeignPeer(first, chunk.subarray(pos, pos + QUOTE_LIMIT));
        }
        this.onAnnouncedSize(low, high);
      } else if (this.state === READ_FRAME_COUNT) this.onFrameCount(low, high);
      else this.onFrameLength(low, high);
    }
  }

  /**
   * The fast path for the common message: one frame, full `T`, all of it in this chunk.
   * Hands each out as a view and returns where it stopped; anything else (several
   * frames, a short `T`, a message cut by the chunk's end, a size over the limit) is left
   * to the general state machine, which also reports the errors.
   */
  private readWholeSingleFrames(chunk: Uint8Array, pos: number, end: number): number {
    const start = pos;
    while (end - pos >= SINGLE_HEADER) {
      // T at pos, N at pos + 8, len[0] at pos + 16: low words, then high words all 0.
      const announced = readUint32(chunk, pos);
      const length = readUint32(chunk, pos + 16);
      if (
        readUint32(chunk, pos + 4) !== 0 ||
        readUint32(chunk, pos + 8) !== 1 ||
        readUint32(chunk, pos + 12) !== 0 ||
        readUint32(chunk, pos + 20) !== 0 ||
        announced !== SINGLE_PRELUDE + length ||
        announced > this.maxMessageSize ||
        end - pos - SINGLE_HEADER < length
      ) {
        break;
      }
      const frame = chunk.subarray(pos + SINGLE_HEADER, pos + SINGLE_HEADER + length);
      pos += SINGLE_HEADER + length;
      if (this.firstMessagePending) this.liftFirstMessageLimit();
      this.onMessage([frame], WORD_SIZE + announced);
    }
    if (pos !== start) this.atStreamStart = false;
    return pos;
  }

  /** T, checked at once: a peer announcing 2^63 bytes is refused before we wait for them. */
  private onAnnouncedSize(low: number, high: number): void {
    if (high >= HIGH_WORD_UNSAFE) throw new MessageTooLargeError(exactUint64(low, high), this.maxMessageSize);
    const size = high * TWO_POW_32 + low;
    if (size > this.maxMessageSize) throw new MessageTooLargeError(size, this.maxMessageSize);
    if (size < WORD_SIZE) throw new ProtocolError(`message announces ${size} bytes, too few to hold its frame count`);
    this.announcedSize = size;
    this.atStreamStart = false;
    this.state = READ_FRAME_COUNT;
  }

  private onFrameCount(low: number, high: number): void {
    const announced = this.announcedSize;
    // T covers at least the prelude. This also bounds N by maxMessageSize / 8.
    if (high !== 0 || preludeSize(low) > announced) {
      const count = high === 0 ? low : exactUint64(low, high);
      throw new ProtocolError(`message announces ${announced} bytes, too few for the prelude of ${count} frames`);
    }
    if (low > this.maxFrameCount) {
      throw new ProtocolError(`message of ${low} frames exceeds the limit of ${this.maxFrameCount} frames`);
    }
    this.frameCount = low;
    this.sizeAfterAnnounced = preludeSize(low);
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
    while (frames.length < lengths.length && lengths[frames.length] === 0) frames.push(allocUnsafe(0));
    if (frames.length === lengths.length) this.finishMessage();
  }

  private readFrames(chunk: Uint8Array, pos: number, end: number): number {
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
        partial = this.partialFrame = allocUnsafe(length);
        this.partialFrameFill = 0;
      }
      const take = Math.min(length - this.partialFrameFill, end - pos);
      partial.set(pos === 0 && take === end ? chunk : chunk.subarray(pos, pos + take), this.partialFrameFill);
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
    const nbytes = WORD_SIZE + this.sizeAfterAnnounced;
    // Reset before the callback, so the parser is consistent whatever the callback does.
    this.frames = [];
    this.frameLengths.length = 0;
    this.state = READ_ANNOUNCED_SIZE;
    if (this.firstMessagePending) this.liftFirstMessageLimit();
    this.onMessage(frames, nbytes);
  }

  private liftFirstMessageLimit(): void {
    this.firstMessagePending = false;
    this.maxMessageSize = this.configuredMaxMessageSize;
    this.maxFrameLength = Math.min(this.maxMessageSize, MAX_BYTE_LENGTH);
  }
}

function isPrintable(byte: number): boolean {
  return byte >= 0x20 && byte < 0x7f;
}

/**
 * The first T of the stream is implausible: if its 8 bytes are printable ASCII ("HTTP/1.1",
 * "SSH-2.0-"), the peer speaks some text protocol, and the error says so, quoting what it
 * sent (`first`, then up to `QUOTE_LIMIT` bytes of `rest`, as far as they are text).
 * Otherwise returns, and the T is refused as too large.
 */
function checkForeignPeer(first: Uint8Array, rest: Uint8Array): void {
  for (let i = 0; i < first.length; i++) if (!isPrintable(first[i])) return;
  let text = String.fromCharCode(...first);
  let i = 0;
  while (i < rest.length && text.length < QUOTE_LIMIT) {
    const byte = rest[i];
    if (!isPrintable(byte) && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) break;
    text += String.fromCharCode(byte);
    i++;
  }
  const cut = text.length === QUOTE_LIMIT && i < rest.length ? '...' : '';
  throw new ProtocolError(`the peer does not speak Dask's protocol: it sent ${JSON.stringify(text)}${cut}`);
}
