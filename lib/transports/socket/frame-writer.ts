/**
 * Lays messages out in Dask's framing for the socket: the prelude (`T`, `N`, lengths)
 * and small frames are copied into a shared batch buffer, so that many small messages
 * written in one tick leave in one `write()`; large frames are passed by reference,
 * never copied.
 */

/** Frames up to this size are copied into the batch; larger ones travel by reference. */
const COPY_LIMIT = 16 * 1024;
/** Size of each batch buffer. */
const BATCH_SIZE = 64 * 1024;

export class FrameWriter {
  /** Chunks ready for the socket, in order. */
  private chunks: Uint8Array[] = [];
  private batch = Buffer.allocUnsafe(BATCH_SIZE);
  /** Start of the part of `batch` not yet in `chunks`. */
  private start = 0;
  private position = 0;
  /** Bytes added and not yet taken. */
  pendingBytes = 0;

  /** Appends one message's frames; returns its size on the wire. */
  add(frames: readonly Uint8Array[]): number {
    const count = frames.length;
    let payload = 0;
    for (let i = 0; i < count; i++) payload += frames[i].byteLength;
    const preludeSize = 8 * (2 + count);
    const total = preludeSize + payload;

    this.reserve(preludeSize);
    this.writeUint64(total - 8);
    this.writeUint64(count);
    for (let i = 0; i < count; i++) this.writeUint64(frames[i].byteLength);

    for (let i = 0; i < count; i++) {
      const frame = frames[i];
      const length = frame.byteLength;
      if (length <= COPY_LIMIT) {
        this.reserve(length);
        this.batch.set(frame, this.position);
        this.position += length;
      } else {
        this.cut();
        this.chunks.push(frame);
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

  private writeUint64(value: number): void {
    // Two 32-bit halves: faster than BigInt, exact up to 2^53.
    this.batch.writeUInt32LE(value >>> 0, this.position);
    this.batch.writeUInt32LE(Math.floor(value / 0x1_0000_0000), this.position + 4);
    this.position += 8;
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
