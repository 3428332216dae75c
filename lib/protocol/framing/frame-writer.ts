/**
 * Writing Dask's framing (layout in header.ts): `FrameWriter` batches messages for a
 * socket; `frameMessage` and `encodePrelude` frame one message on its own.
 */
import { allocUnsafe } from '../bytes';
import type { FramePieces } from '../codec';
import { headerSize, wireSize, writeHeader } from './header';

/** Pieces up to this size are copied into the batch; larger ones travel by reference. */
const COPY_LIMIT = 16 * 1024;
/** Size of each shared slab. */
const BATCH_SIZE = 64 * 1024;

/**
 * The slab small pieces are copied into, shared by every writer of the process, carved
 * strictly forward like Buffer's pool: bytes handed out are never written again, and a
 * slab is freed once the last view of it is written and dropped. So an idle writer holds
 * no memory (a comm used to keep a 64 KiB batch buffer of its own, mostly untouched).
 */
let slab: Uint8Array | null = null;
let slabPosition = 0;

/**
 * Lays messages out in Dask's framing for a socket: the header (`T`, `N`, lengths) and
 * small pieces are copied into a slab shared by all writers, so that many small messages
 * written in one tick leave in one `write()`; large pieces (big frames, big bins the codec
 * left uncopied) are passed by reference. Messages of one writer written back to back in a
 * tick lie back to back in the slab (one chunk), unless another writer wrote in between.
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
  /** Chunks ready for the socket, in order; null while there are none. */
  private chunks: Uint8Array[] | null = null;
  /** The slab this writer's open chunk lies in (null: none open), its start and its end. */
  private chunkSlab: Uint8Array | null = null;
  private chunkStart = 0;
  private chunkEnd = 0;
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
    const target = this.reserve(header);
    const size = writeHeader(target, this.chunkEnd, frames);
    this.chunkEnd += header;
    slabPosition = this.chunkEnd;
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
    const chunks = this.chunks ?? [];
    this.chunks = null;
    this.chunkSlab = null;
    this.pendingBytes = 0;
    return chunks;
  }

  private addPiece(piece: Uint8Array): void {
    const length = piece.byteLength;
    if (length <= COPY_LIMIT) {
      const target = this.reserve(length);
      target.set(piece, this.chunkEnd);
      this.chunkEnd += length;
      slabPosition = this.chunkEnd;
    } else {
      this.cut();
      this.chunkSlab = null;
      (this.chunks ??= []).push(piece);
    }
  }

  /** Moves this writer's open chunk into `chunks`. */
  private cut(): void {
    if (this.chunkSlab !== null && this.chunkEnd > this.chunkStart) {
      (this.chunks ??= []).push(this.chunkSlab.subarray(this.chunkStart, this.chunkEnd));
      this.chunkStart = this.chunkEnd;
    }
  }

  /**
   * Makes room for `size` bytes at the end of this writer's open chunk, in the shared slab
   * (a new one when it is full); returns the slab. If another writer carved bytes since,
   * the open chunk is closed and a new one starts where the slab's free part begins.
   */
  private reserve(size: number): Uint8Array {
    if (slab === null || slab.length - slabPosition < size) {
      slab = allocUnsafe(Math.max(BATCH_SIZE, size));
      slabPosition = 0;
    }
    if (this.chunkSlab !== slab || this.chunkEnd !== slabPosition) {
      this.cut();
      this.chunkSlab = slab;
      this.chunkStart = this.chunkEnd = slabPosition;
    }
    return slab;
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
