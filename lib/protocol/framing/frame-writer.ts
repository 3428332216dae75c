/**
 * Writing Dask's framing (layout in header.ts): `FrameWriter` batches messages for a
 * socket; `frameMessage` and `encodePrelude` frame one message on its own.
 */
import { allocUnsafe } from '../bytes';
import type { FramePieces } from '../codec';
import { headerSize, wireSize, writeHeader } from './header';

/** Pieces up to this size are copied into the batch; larger ones travel by reference. */
const COPY_LIMIT = 16 * 1024;
/** Size of each batch buffer. */
const BATCH_SIZE = 64 * 1024;

/**
 * Lays messages out in Dask's framing for a socket: the header (`T`, `N`, lengths) and
 * small pieces are copied into a shared batch buffer, so that many small messages written
 * in one tick leave in one `write()`; large pieces (big frames, big bins the codec left
 * uncopied) are passed by reference.
 *
 * ## Example
 *
 * ```ts
 * const writer = new FrameWriter();
 * writer.add(codec.encodePieces(message)); // any number of times
 * socket.cork();
 * for (const chunk of writer.take()) socket.write(chunk);
 * socket.uncork();
 * ```
 */
export class FrameWriter {
  /** Chunks ready for the socket, in order. */
  private chunks: Uint8Array[] = [];
  private batch = allocUnsafe(BATCH_SIZE);
  /** Start of the part of `batch` not yet in `chunks`. */
  private start = 0;
  private position = 0;
  /** Bytes added and not yet taken. */
  pendingBytes = 0;

  /** The size on the wire of a message of these frames, `T` included. */
  static wireSize(frames: readonly FramePieces[]): number {
    return wireSize(frames);
  }

  /** Appends one message's frames; returns its size on the wire. */
  add(frames: readonly FramePieces[]): number {
    const count = frames.length;
    const header = headerSize(count);
    this.reserve(header);
    const size = writeHeader(this.batch, this.position, frames);
    this.position += header;
    for (let i = 0; i < count; i++) {
      const frame = frames[i];
      if (frame instanceof Uint8Array) this.addPiece(frame);
      else for (let j = 0; j < frame.length; j++) this.addPiece(frame[j]);
    }
    this.pendingBytes += size;
    return size;
  }

  /** Everything added since the last call, in order. */
  take(): Uint8Array[] {
    this.cut();
    const chunks = this.chunks;
    this.chunks = [];
    this.pendingBytes = 0;
    return chunks;
  }

  private addPiece(piece: Uint8Array): void {
    const length = piece.byteLength;
    if (length <= COPY_LIMIT) {
      this.reserve(length);
      this.batch.set(piece, this.position);
      this.position += length;
    } else {
      this.cut();
      this.chunks.push(piece);
    }
  }

  /** Moves the filled part of the batch buffer into `chunks`. */
  private cut(): void {
    if (this.position > this.start) {
      this.chunks.push(this.batch.subarray(this.start, this.position));
      this.start = this.position;
    }
  }

  /** Makes room for `size` bytes, starting a new batch buffer when this one is full. */
  private reserve(size: number): void {
    if (this.batch.length - this.position >= size) return;
    this.cut();
    this.batch = allocUnsafe(Math.max(BATCH_SIZE, size));
    this.start = 0;
    this.position = 0;
  }
}

/**
 * One whole message in Dask's framing, header and frames, in one buffer of its own (the
 * frames are copied): for a message written on its own, such as a refusal before
 * `socket.end()`. Streams of messages go through a `FrameWriter`. A Buffer on Node.
 */
export function frameMessage(frames: readonly FramePieces[]): Uint8Array {
  const message = allocUnsafe(wireSize(frames));
  writeHeader(message, 0, frames);
  let at = headerSize(frames.length);
  for (let i = 0; i < frames.length; i++) {
    const frame = frames[i];
    if (frame instanceof Uint8Array) {
      message.set(frame, at);
      at += frame.byteLength;
    } else {
      for (let j = 0; j < frame.length; j++) {
        message.set(frame[j], at);
        at += frame[j].byteLength;
      }
    }
  }
  return message;
}

/**
 * The header Dask 2022.12.1 writes before the frames: T, N and the N lengths, with
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
export function encodePrelude(frames: readonly FramePieces[]): Uint8Array {
  // allocUnsafe: writeHeader writes every byte, and on Node small sizes come from Buffer's pool.
  const header = allocUnsafe(headerSize(frames.length));
  writeHeader(header, 0, frames);
  return header;
}
