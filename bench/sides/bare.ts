/**
 * The baseline: the bench server and client as the best plain Node we know how to
 * write. It is deliberately independent of rxcomm: it imports nothing from lib/ (nor the
 * `rxcomm` package), only node:net, node:tls and msgpackr, plus protocol.ts for the
 * bench's phases, which hold no rxcomm code. Had it shared rxcomm's framing or
 * buffering, a ratio against it would measure rxcomm against itself.
 *
 * It speaks Dask's wire protocol (handshake, u64 LE `T, N, lengths, frames`, msgpack
 * frame 0), so its client could talk to Dask's bench server, and it does everything
 * rxcomm does per message: encode, frame, batch, parse, decode every message, count the
 * bytes. Command line: see sideMain in protocol.ts, plus `--copy-large-bins` (below).
 *
 * How it goes fast:
 * - Writing: msgpackr's Packr encodes straight into a 64 KiB slab, leaving room in front
 *   for the prelude (`RESERVE_START_SPACE`, no copy, no view allocated per message with
 *   `REUSE_BUFFER_MODE`); everything written in one tick leaves in one `socket.write`
 *   on `process.nextTick`. A bin of 64 KiB or more at the top level of a map is not copied:
 *   its 5-byte bin32 header goes in the slab and the bytes go to the socket by reference
 *   (`cork`/`uncork`, one writev), as ws does with large payloads (`--copy-large-bins` turns
 *   that off: then Packr copies it like any other value).
 * - Reading: a hand-written state machine over the chunks. A frame inside one chunk is
 *   a view of that chunk (Node never reuses a chunk it emitted, so the message keeps a
 *   buffer of its own); a frame spanning chunks is allocated once at its final size and
 *   filled as chunks arrive. A small frame is decoded from a scratch buffer: msgpackr
 *   then reuses its DataView and takes its pure-JS string path (measured 1.6x faster
 *   than decoding the view); bins are copied out of it (`copyBuffers`), so a decoded
 *   message never points into the scratch buffer. Larger frames decode in place, their
 *   bins as views.
 * - Backpressure as rxcomm's: `write` accepts while the socket plus the batch hold less
 *   than 1 MiB, and otherwise returns a promise that settles on 'drain'.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Packr, Unpackr, REUSE_BUFFER_MODE, RESERVE_START_SPACE } from 'msgpackr';
import { benchHandler, fail, sideMain, type BenchPeer, type TlsFiles } from './protocol';

const WRITE_HIGH_WATER_MARK = 1024 * 1024;
const MAX_MESSAGE_SIZE = 1024 * 1024 * 1024;
const MAX_FRAME_COUNT = 1 << 20;
const SLAB_SIZE = 64 * 1024;
/** A top-level bin this large goes to the socket by reference instead of through the slab. */
const LARGE_BIN = 64 * 1024;
/** Frames up to this size are decoded from the scratch buffer. */
const SCRATCH_SIZE = 4096;
const TWO_POW_32 = 0x1_0000_0000;

/** What rxcomm (and Debian's Dask) sends; compression null: this peer never compresses. */
export const HANDSHAKE = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5 };

const packr = new Packr({ useRecords: false, variableMapSize: true });
const scratchUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });
const viewUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const scratch = Buffer.allocUnsafeSlow(SCRATCH_SIZE);

function decodeFrame(buffer: Buffer, start: number, end: number): unknown {
  const length = end - start;
  if (length <= SCRATCH_SIZE) {
    buffer.copy(scratch, 0, start, end);
    return scratchUnpackr.unpack(scratch, length);
  }
  return viewUnpackr.unpack(start === 0 && end === buffer.length ? buffer : buffer.subarray(start, end));
}

// Byte arithmetic rather than Buffer's readUInt32LE/writeUInt32LE, whose argument checks
// cost more than the access itself (callers know the bytes are there).
function readU32(buffer: Buffer, at: number): number {
  return (buffer[at] | (buffer[at + 1] << 8) | (buffer[at + 2] << 16)) + buffer[at + 3] * 0x100_0000;
}

function readU64(buffer: Buffer, at: number): number {
  const high = readU32(buffer, at + 4);
  if (high >= 0x20_0000) throw new Error('frame length beyond 2^53');
  return high * TWO_POW_32 + readU32(buffer, at);
}

export function writeU64(buffer: Buffer, at: number, value: number): void {
  const low = value >>> 0;
  const high = (value - low) / TWO_POW_32;
  buffer[at] = low;
  buffer[at + 1] = low >>> 8;
  buffer[at + 2] = low >>> 16;
  buffer[at + 3] = low >>> 24;
  buffer[at + 4] = high;
  buffer[at + 5] = high >>> 8;
  buffer[at + 6] = high >>> 16;
  buffer[at + 7] = high >>> 24;
}

// ---------------------------------------------------------------------------------------
// reading: Dask's framing, incrementally
// ---------------------------------------------------------------------------------------

export class FrameReader {
  /** Prelude bytes split between chunks. */
  private stash = Buffer.allocUnsafe(64);
  private stashFill = 0;
  /** The message whose frames are being read. */
  private lengths: number[] = [];
  private frames: Buffer[] = [];
  private inFrames = false;
  /** A frame spanning chunks: allocated at its final size, filled as chunks arrive. */
  private partial: Buffer | null = null;
  private partialFill = 0;

  constructor(private readonly deliver: (message: unknown) => void) {}

  get midMessage(): boolean {
    return this.inFrames || this.stashFill > 0;
  }

  push(chunk: Buffer): void {
    const end = chunk.length;
    let pos = 0;
    if (this.inFrames) {
      pos = this.readFrames(chunk, 0);
      if (this.inFrames) return;
    } else if (this.stashFill > 0) {
      pos = this.fillStash(chunk, 0);
      if (this.stashFill > 0) return;
      pos = this.readFrames(chunk, pos);
      if (this.inFrames) return;
    }
    while (pos < end) {
      const available = end - pos;
      if (available >= 24) {
        const size = readU64(chunk, pos);
        const count = readU64(chunk, pos + 8);
        if (size > MAX_MESSAGE_SIZE) throw new Error(`message of ${size} bytes exceeds the limit`);
        if (count === 1) {
          // The usual message: one frame, and it is often all in this chunk.
          const length = readU64(chunk, pos + 16);
          if (16 + length < size) throw new Error(`message announces ${size} bytes, its frames add up to ${16 + length}`);
          if (available - 24 >= length) {
            const start = pos + 24;
            pos = start + length;
            this.deliver(decodeFrame(chunk, start, pos));
            continue;
          }
        }
        const preludeSize = 8 * (2 + count);
        if (available >= preludeSize) {
          this.readPrelude(chunk, pos);
          pos = this.readFrames(chunk, pos + preludeSize);
          if (this.inFrames) return;
          continue;
        }
      }
      pos = this.fillStash(chunk, pos);
      if (this.stashFill > 0) return;
      pos = this.readFrames(chunk, pos);
      if (this.inFrames) return;
    }
  }

  /** Collects a prelude split between chunks; parses it once complete. */
  private fillStash(chunk: Buffer, pos: number): number {
    for (;;) {
      const needed = this.stashFill < 16 ? 16 : 8 * (2 + readU64(this.stash, 8));
      if (needed > this.stash.length) {
        const count = readU64(this.stash, 8);
        if (count > MAX_FRAME_COUNT) throw new Error(`message of ${count} frames`);
        const bigger = Buffer.allocUnsafe(needed);
        this.stash.copy(bigger, 0, 0, this.stashFill);
        this.stash = bigger;
      }
      const take = Math.min(needed - this.stashFill, chunk.length - pos);
      chunk.copy(this.stash, this.stashFill, pos, pos + take);
      this.stashFill += take;
      pos += take;
      if (this.stashFill < needed) return pos;
      if (needed > 16 || readU64(this.stash, 8) === 0) break;
    }
    this.readPrelude(this.stash, 0);
    this.stashFill = 0;
    return pos;
  }

  private readPrelude(buffer: Buffer, at: number): void {
    const size = readU64(buffer, at);
    const count = readU64(buffer, at + 8);
    if (size > MAX_MESSAGE_SIZE) throw new Error(`message of ${size} bytes exceeds the limit`);
    if (count > MAX_FRAME_COUNT) throw new Error(`message of ${count} frames`);
    let total = 8 * (1 + count);
    const lengths = this.lengths;
    lengths.length = 0;
    for (let i = 0; i < count; i++) {
      const length = readU64(buffer, at + 16 + 8 * i);
      total += length;
      lengths.push(length);
    }
    if (total > MAX_MESSAGE_SIZE) throw new Error(`message of ${total} bytes exceeds the limit`);
    if (size > total) throw new Error(`message announces ${size} bytes, its frames add up to ${total}`);
    this.frames = [];
    this.inFrames = true;
  }

  /** Reads frames of the current message from `pos`; delivers it when complete. */
  private readFrames(chunk: Buffer, pos: number): number {
    const lengths = this.lengths;
    const frames = this.frames;
    const end = chunk.length;
    while (frames.length < lengths.length) {
      const length = lengths[frames.length];
      let partial = this.partial;
      if (partial === null) {
        if (end - pos >= length) {
          frames.push(chunk.subarray(pos, pos + length));
          pos += length;
          continue;
        }
        partial = this.partial = Buffer.allocUnsafe(length);
        this.partialFill = 0;
      }
      const take = Math.min(length - this.partialFill, end - pos);
      chunk.copy(partial, this.partialFill, pos, pos + take);
      this.partialFill += take;
      pos += take;
      if (this.partialFill < length) return pos;
      this.partial = null;
      frames.push(partial);
    }
    this.inFrames = false;
    if (frames.length === 0) throw new Error('a Dask message needs at least one frame');
    // Frame 0 is the message; the bench never sends serialized payloads in further frames.
    const head = frames[0];
    this.deliver(decodeFrame(head, 0, head.length));
    return pos;
  }
}

// ---------------------------------------------------------------------------------------
// writing: slabs, batches, backpressure
// ---------------------------------------------------------------------------------------

type Packed = Buffer & { start: number; end: number };
const PACK_OPTIONS = REUSE_BUFFER_MODE | RESERVE_START_SPACE;

/** Packr's target buffer is module-wide: the writer that last pointed it at its slab. */
let packrOwner: FrameWriter | null = null;

class FrameWriter {
  private slab: Buffer = Buffer.allocUnsafeSlow(SLAB_SIZE);
  /** Start of the part of `slab` not yet in `chunks`. */
  private start = 0;
  private pos = 0;
  private chunks: Buffer[] = [];
  pendingBytes = 0;

  constructor(private readonly copyLargeBins: boolean) {}

  /** Appends one framed message; returns its size on the wire. */
  add(message: unknown): number {
    const size = !this.copyLargeBins && hasLargeBin(message) ? this.addWithLargeBins(message as Record<string, unknown>) : this.addSmall(message);
    this.pendingBytes += size;
    return size;
  }

  take(): Buffer[] {
    this.cut();
    const chunks = this.chunks;
    this.chunks = [];
    this.pendingBytes = 0;
    return chunks;
  }

  /** Packr writes the msgpack right after 24 reserved bytes, where the prelude goes. */
  private addSmall(message: unknown): number {
    const at = this.pack(message, 24);
    const length = this.pos - at;
    const slab = this.slab;
    writeU64(slab, at - 24, length + 16);
    writeU64(slab, at - 16, 1);
    writeU64(slab, at - 8, length);
    return length + 24;
  }

  /** The map written piece by piece: msgpackr for keys and small values, large bins by reference. */
  private addWithLargeBins(message: Record<string, unknown>): number {
    const keys = Object.keys(message);
    const preludeSlab = this.room(24 + 3);
    const preludeAt = this.pos;
    this.pos += 24;
    let length;
    if (keys.length < 16) {
      this.slab[this.pos++] = 0x80 | keys.length;
      length = 1;
    } else {
      this.slab[this.pos] = 0xde;
      this.slab.writeUInt16BE(keys.length, this.pos + 1);
      this.pos += 3;
      length = 3;
    }
    for (const key of keys) {
      const keyAt = this.pack(key, 0);
      length += this.pos - keyAt;
      const value = message[key];
      if (value instanceof Uint8Array && value.byteLength >= LARGE_BIN) {
        this.room(5);
        this.slab[this.pos] = 0xc6;
        this.slab.writeUInt32BE(value.byteLength, this.pos + 1);
        this.pos += 5;
        this.cut();
        this.chunks.push(Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));
        length += 5 + value.byteLength;
      } else {
        const valueAt = this.pack(value, 0);
        length += this.pos - valueAt;
      }
    }
    writeU64(preludeSlab, preludeAt, length + 16);
    writeU64(preludeSlab, preludeAt + 8, 1);
    writeU64(preludeSlab, preludeAt + 16, length);
    return length + 24;
  }

  /**
   * Packs `value` at the end of the slab, `gap` bytes after what is there, and returns
   * where its msgpack starts. Packr starts on an 8-byte boundary, so the reservation also
   * covers the bytes back to it (they are not written). If the slab is too full, Packr
   * moves to a buffer of its own, and we carry on in that one.
   */
  private pack(value: unknown, gap: number): number {
    if (packrOwner !== this) {
      packr.useBuffer(this.slab);
      packrOwner = this;
    }
    const aligned = this.pos & ~7;
    const reserve = gap + (this.pos - aligned);
    packr.position = aligned;
    const out = packr.pack(value, PACK_OPTIONS | reserve) as unknown as Packed;
    if (out !== this.slab) {
      this.cut();
      this.slab = out;
      this.start = out.start + reserve - gap;
    }
    this.pos = out.end;
    return out.start + reserve;
  }

  /** Makes sure `size` bytes fit at the end of the slab; returns the slab they go in. */
  private room(size: number): Buffer {
    if (this.slab.length - this.pos < size) {
      this.cut();
      this.slab = Buffer.allocUnsafeSlow(SLAB_SIZE);
      this.start = this.pos = 0;
      packrOwner = null;
    }
    return this.slab;
  }

  private cut(): void {
    if (this.pos > this.start) {
      this.chunks.push(this.slab.subarray(this.start, this.pos));
      this.start = this.pos;
    }
  }
}

function hasLargeBin(message: unknown): boolean {
  if (message === null || typeof message !== 'object' || Object.getPrototypeOf(message) !== Object.prototype) return false;
  const object = message as Record<string, unknown>;
  for (const key in object) {
    const value = object[key];
    if (value instanceof Uint8Array && value.byteLength >= LARGE_BIN) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------
// a connection
// ---------------------------------------------------------------------------------------

class BareConnection {
  private readonly writer: FrameWriter;
  private flushScheduled = false;
  private drain: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  private failure: Error | undefined;
  private handler: ((message: unknown) => void) | undefined;
  private readonly kept: unknown[] = [];
  private readonly readers: { resolve(message: unknown): void; reject(error: Error): void }[] = [];

  constructor(
    private readonly socket: net.Socket,
    copyLargeBins = false,
  ) {
    this.writer = new FrameWriter(copyLargeBins);
    const reader = new FrameReader((message) => this.receive(message));
    socket.on('data', (chunk: Buffer) => {
      try {
        reader.push(chunk);
      } catch (error) {
        this.fail(error as Error);
        socket.destroy();
      }
    });
    socket.on('end', () => this.fail(new Error(reader.midMessage ? 'closed in the middle of a message' : 'connection closed')));
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
    socket.on('drain', () => this.settleDrain());
  }

  /** Dask's handshake: write ours first, then read theirs. */
  async handshake(): Promise<unknown> {
    const wait = this.write(HANDSHAKE);
    if (wait) await wait;
    const remote = (await this.read()) as Record<string, unknown>;
    if (remote === null || typeof remote !== 'object' || !('pickle-protocol' in remote) || !('compression' in remote)) {
      throw new Error(`not a Dask handshake: ${JSON.stringify(remote)}`);
    }
    return remote;
  }

  /** From now on every message goes to `handler` (a server), kept ones first. */
  setHandler(handler: (message: unknown) => void): void {
    this.handler = handler;
    for (const message of this.kept.splice(0)) handler(message);
  }

  write(message: unknown): Promise<void> | undefined {
    if (this.failure) return Promise.reject(this.failure);
    this.writer.add(message);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
    if (this.socket.writableLength + this.writer.pendingBytes < WRITE_HIGH_WATER_MARK) return undefined;
    if (!this.drain) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.drain = { promise, resolve, reject };
    }
    return this.drain.promise;
  }

  read(): Promise<unknown> {
    if (this.kept.length > 0) return Promise.resolve(this.kept.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  close(): Promise<void> {
    this.flush();
    return new Promise((resolve) => {
      this.socket.end(() => resolve());
      this.socket.once('close', () => resolve());
      this.socket.resume();
    });
  }

  private receive(message: unknown): void {
    if (this.handler !== undefined) this.handler(message);
    else if (this.readers.length > 0) this.readers.shift()!.resolve(message);
    else this.kept.push(message);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.writer.pendingBytes === 0 || this.socket.destroyed) return;
    const chunks = this.writer.take();
    if (chunks.length === 1) {
      this.socket.write(chunks[0]);
    } else {
      this.socket.cork();
      for (const chunk of chunks) this.socket.write(chunk);
      this.socket.uncork();
    }
    if (this.drain && !this.socket.writableNeedDrain) this.settleDrain();
  };

  private settleDrain(error?: Error): void {
    const drain = this.drain;
    if (!drain) return;
    this.drain = undefined;
    if (error) drain.reject(error);
    else drain.resolve();
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.settleDrain(error);
    for (const reader of this.readers.splice(0)) reader.reject(error);
  }
}

// ---------------------------------------------------------------------------------------
// sockets
// ---------------------------------------------------------------------------------------

export function tlsOptions(files: TlsFiles) {
  return {
    ca: fs.readFileSync(files.ca),
    cert: fs.readFileSync(files.cert),
    key: fs.readFileSync(files.key),
    minVersion: 'TLSv1.2' as const,
  };
}

export function hostPort(address: string): [string, number] {
  const location = address.slice(address.indexOf('://') + 3);
  const colon = location.lastIndexOf(':');
  return [location.slice(0, colon).replace(/^\[|\]$/g, ''), Number(location.slice(colon + 1))];
}

async function serve(transport: string, files: TlsFiles | undefined): Promise<{ address: string }> {
  const accept = (socket: net.Socket) => {
    socket.setNoDelay(true);
    const connection = new BareConnection(socket);
    connection.handshake().then(
      () => connection.setHandler(benchHandler((message) => void connection.write(message)?.catch(() => socket.destroy()))),
      () => socket.destroy(),
    );
  };
  let server: net.Server;
  if (transport === 'tcp') {
    server = net.createServer({ noDelay: true }, accept);
  } else if (transport === 'tls') {
    if (!files) throw new Error('tls needs --tls CA CERT KEY');
    server = tls.createServer({ ...tlsOptions(files), requestCert: true, rejectUnauthorized: true, noDelay: true }, accept);
    server.on('tlsClientError', () => undefined);
  } else {
    throw new Error(`unknown transport ${JSON.stringify(transport)} (tcp or tls)`);
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return { address: `${transport}://127.0.0.1:${port}` };
}

async function open(address: string, transport: string, files: TlsFiles | undefined): Promise<net.Socket> {
  const [host, port] = hostPort(address);
  return new Promise((resolve, reject) => {
    let socket: net.Socket;
    if (transport === 'tcp') {
      socket = net.connect({ host, port, noDelay: true }, () => resolve(socket));
    } else {
      if (!files) throw new Error('tls needs --tls CA CERT KEY');
      // Over a TCP socket of our own, to set noDelay on it; Dask checks the chain, not the host name.
      const raw = net.connect({ host, port, noDelay: true });
      raw.once('error', reject);
      socket = tls.connect({ socket: raw, ...tlsOptions(files), checkServerIdentity: () => undefined }, () => resolve(socket));
    }
    socket.once('error', reject);
  });
}

/** `write` returns a promise only when the writer must wait: promisePerWrite false. */
function peerOf(connection: BareConnection): BenchPeer {
  return { write: (message) => connection.write(message), promisePerWrite: false, read: () => connection.read() };
}

// Run as a side only, not when bare_conns.ts imports its pieces.
if (require.main === module) {
  sideMain('bare', {
    serve,
    async connect(address, transport, args) {
      const connection = new BareConnection(await open(address, transport, args.tls), args.flags.has('--copy-large-bins'));
      await connection.handshake();
      return { peer: peerOf(connection), close: () => connection.close() };
    },
  }).catch(fail);
}
