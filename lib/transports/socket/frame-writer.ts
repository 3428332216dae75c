/**
 * Lays messages out in Dask's framing for the socket: the prelude (`T`, `N`, lengths)
 * and small pieces are copied into a shared batch buffer, so that many small messages
 * written in one tick leave in one `write()`; large pieces (big frames, big bins the
 * codec left uncopied) are passed by reference.
 */
import type { FramePieces } from '../../protocol';

/** Pieces up to this size are copied into the batch; larger ones travel by reference. */
const COPY_LIMIT = 16 * 1024;
/** Size of each batch buffer. */
const BATCH_SIZE = 64 * 1024;
const TWO_POW_32 = 0x1_0000_0000;

function frameLength(frame: FramePieces): number {
  if (frame instanceof Uint8Array) return frame.byteLength;
  let length = 0;
  for (const piece of frame) length += piece.byteLength;
  return length;
}

export class FrameWriter {
  /** Chunks ready for the socket, in order. */
  private chunks: Uint8Array[] = [];
  private batch = Buffer.allocUnsafe(BATCH_SIZE);
  /** Start of the part of `batch` not yet in `chunks`. */
  private start = 0;
  private position = 0;
  /** Bytes added and not yet taken. */
  pendingBytes = 0;

  /** The size on the wire of a message of these frames, `T` included. */
  static wireSize(frames: readonly FramePieces[]): number {
    let size = 8 * (2 + frames.length);
    for (const frame of frames) size += frameLength(frame);
    return size;
  }

  /** Appends one message's frames; returns its size on the wire. */
  add(frames: readonly FramePieces[]): number {
    const count = frames.length;
    const preludeSize = 8 * (2 + count);
    let total = preludeSize;
    // the common case, one whole frame, without the general loops
    const single = count === 1 && frames[0] instanceof Uint8Array ? (frames[0] as Uint8Array) : undefined;
    if (single) total += single.byteLength;
    else for (let i = 0; i < count; i++) total += frameLength(frames[i]);

    this.reserve(preludeSize);
    this.writeUint64(total - 8);
    this.writeUint64(count);
    if (single) {
      this.writeUint64(single.byteLength);
      this.addPiece(single);
    } else {
      for (let i = 0; i < count; i++) this.writeUint64(frameLength(frames[i]));
      for (let i = 0; i < count; i++) {
        const frame = frames[i];
        if (frame instanceof Uint8Array) this.addPiece(frame);
        else for (const piece of frame) this.addPiece(piece);
      }
    }
    this.pendingBytes += total;
    return total;
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

  /** Little-endian u64 by plain byte stores: cheaper than Buffer's checked writers here. */
  private writeUint64(value: number): void {
    const batch = this.batch;
    const at = this.position;
    batch[at] = value;
    batch[at + 1] = value >>> 8;
    batch[at + 2] = value >>> 16;
    batch[at + 3] = value >>> 24;
    const high = value < TWO_POW_32 ? 0 : Math.floor(value / TWO_POW_32);
    batch[at + 4] = high;
    batch[at + 5] = high >>> 8;
    batch[at + 6] = high >>> 16;
    batch[at + 7] = high >>> 24;
    this.position = at + 8;
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
    this.batch = Buffer.allocUnsafe(Math.max(BATCH_SIZE, size));
    this.start = 0;
    this.position = 0;
  }
}
