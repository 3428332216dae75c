/**
 * A `Connection` over a Node stream socket (`net.Socket`, or a `tls.TLSSocket` on top
 * of one), speaking Dask's framing: bytes in → `FrameParser` → codec → messages to the
 * sink; messages out → codec → `FrameWriter` batches → one socket write per tick.
 */
import type * as net from 'node:net';
import type { Connection, ConnectionSink, PeerProbe } from '../../comm/connection';
import { CommClosedError, DeadPeerError, MessageTooLargeError, ProtocolError, toCommClosedError } from '../../errors';
import { type CodecContext, FrameParser, FrameWriter, HANDSHAKE_LIMIT, messageSize, type MessageCodec } from '../../protocol';
import type { DirectReader } from './direct-reader';
import { keepAliveIdle } from './keepalive';

/** A heartbeat: a message of no frames. */
const NO_FRAMES: readonly never[] = [];

export interface SocketConnectionInit {
  /** The socket messages travel on (the TLS socket for tls). */
  socket: net.Socket;
  /** The TCP socket underneath, reset on abort so the peer sees it as one. */
  rawSocket: net.Socket;
  localAddress: string;
  peerAddress: string;
  extraInfo?: Record<string, unknown>;
  codec: MessageCodec;
  maxMessageSize: number;
  writeHighWaterMark: number;
  /** The comm's dead-peer timeout (0: off), which sets the TCP keepalive. */
  deadPeerTimeout: number;
  /** How socket errors become comm errors (tls makes certificate failures fatal). */
  wrapError?: (err: unknown, message: string) => CommClosedError;
  /** The socket reads through `onread` into this (tcp): no 'data' events. */
  reader?: DirectReader;
}

/** A promise plus its settle functions: the writers waiting for the socket to drain. */
interface DrainWait {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

/**
 * The connection's one state. `closing`: `close()` flushed and sent FIN, and waits for
 * the peer to close its side; `closed`: that happened; `failed`: reset, protocol error,
 * or aborted, and every later write rejects with `error`. Whether the sink has been told
 * the stream ended is whether it is still attached (`sink`).
 */
type SocketState =
  | { kind: 'open' }
  | { kind: 'closing' }
  | { kind: 'closed' }
  | { kind: 'failed'; error: CommClosedError };

export class SocketConnection implements Connection, PeerProbe, CodecContext {
  readonly localAddress: string;
  readonly peerAddress: string;
  readonly extraInfo: Record<string, unknown>;

  private readonly socket: net.Socket;
  private readonly rawSocket: net.Socket;
  private readonly reader: DirectReader | undefined;
  private readonly codec: MessageCodec;
  /** The codec's context is the connection itself (no object per message). */
  readonly maxMessageSize: number;
  compression: string | null = null;
  /** What decompressing the message being decoded added to its wire size. */
  private inflatedBytes = 0;
  private readonly writeHighWaterMark: number;
  /** The comm's dead-peer timeout (0: off), which sets the TCP keepalive. */
  private readonly deadPeerTimeout: number;
  private readonly writer = new FrameWriter();
  private state: SocketState = { kind: 'open' };
  /** Where messages go, from `open()` until the stream's end has been delivered. */
  private sink: ConnectionSink | undefined;
  private drainWait: DrainWait | undefined;
  /** Bytes read and written so far: the dead-peer watch's signs of traffic. */
  private bytesReceived = 0;
  private bytesSent = 0;

  constructor(init: SocketConnectionInit) {
    this.socket = init.socket;
    this.rawSocket = init.rawSocket;
    this.reader = init.reader;
    this.localAddress = init.localAddress;
    this.peerAddress = init.peerAddress;
    this.extraInfo = init.extraInfo ?? {};
    this.codec = init.codec;
    this.maxMessageSize = init.maxMessageSize;
    this.writeHighWaterMark = init.writeHighWaterMark;
    // Never leave an 'error' event unheard, even before open().
    const wrapError = init.wrapError ?? toCommClosedError;
    this.socket.on('error', (err) => this.fail(this.keepAliveFailure(err) ?? wrapError(err, `connection to ${this.peerAddress} lost`)));
    this.socket.on('drain', () => this.settleDrain());
    this.socket.on('close', () => this.fail(new CommClosedError(`connection to ${this.peerAddress} closed`)));
    this.socket.pause(); // nothing is read until a sink is attached
    this.deadPeerTimeout = init.deadPeerTimeout;
  }

  get bufferedBytes(): number {
    return this.socket.writableLength + this.writer.pendingBytes;
  }

  get needsDrain(): boolean {
    return this.socket.writableLength + this.writer.pendingBytes >= this.writeHighWaterMark;
  }

  /**
   * Between two rxcomm peers: heartbeats are messages of no frames (16 bytes), which
   * the parser reads as nothing. A Dask peer gets none (it never advertises them), and
   * a silent Dask peer cannot be told from a dead one here: that is keepalive's job.
   */
  peerProbe(peerUnderstandsHeartbeats: boolean): PeerProbe | undefined {
    // Keepalive is what notices a vanished peer that sends no heartbeats (Dask): its
    // first probe after this idle time, then 10 probes 1 s apart (libuv's), so that an
    // idle comm fails after about `deadPeerTimeout`. Set once the handshake has said who
    // the peer is, not at connect: between rxcomm peers heartbeats do that job, and four
    // setsockopt() calls per connect and per accept are saved. (Until then the handshake's
    // own time limit covers a silent peer.)
    if ((!peerUnderstandsHeartbeats || !(this.deadPeerTimeout > 0)) && !this.rawSocket.destroyed) {
      this.rawSocket.setKeepAlive(true, keepAliveIdle(this.deadPeerTimeout));
    }
    // The connection is its own probe (the getters below): an object literal with getters
    // would make two accessor functions and a closure per comm, at every handshake.
    return peerUnderstandsHeartbeats ? this : undefined;
  }

  /** `PeerProbe`: bytes read so far. */
  get received(): number {
    return this.bytesReceived;
  }

  /** `PeerProbe`: bytes the socket has taken so far (written, less what still waits). */
  get sent(): number {
    return this.bytesSent - this.bufferedBytes;
  }

  /** `PeerProbe`: a heartbeat. */
  ping(): void {
    this.sendHeartbeat();
  }

  /** CodecContext: decompressed payloads count as what the message holds. */
  inflated(bytes: number): void {
    this.inflatedBytes += bytes;
  }

  useCompression(compression: string | null): void {
    this.compression = compression;
  }

  open(sink: ConnectionSink): void {
    if (this.state.kind === 'failed') {
      sink.error(this.state.error); // it died before anyone was listening
      return;
    }
    this.sink = sink;
    const parser = new FrameParser({
      maxMessageSize: this.maxMessageSize,
      // The handshake comes first: until it is read, a peer gets no large allocation.
      firstMessageLimit: HANDSHAKE_LIMIT,
      onMessage: (frames, nbytes) => {
        if (frames.length === 0) return; // a heartbeat, whose arrival is all it says
        this.inflatedBytes = 0;
        const message = this.codec.decode(frames, this);
        this.sink?.next(message, nbytes + this.inflatedBytes);
      },
    });
    const undecodable = (err: unknown) => {
      const error =
        err instanceof CommClosedError ? err : new ProtocolError(`undecodable message from ${this.peerAddress}: ${(err as Error).message}`, { cause: err });
      this.protocolFailure(error);
    };
    const push = (chunk: Uint8Array) => {
      this.bytesReceived += chunk.length;
      try {
        parser.push(chunk);
      } catch (err) {
        undecodable(err);
      }
    };
    const reader = this.reader;
    if (reader) {
      // Large frames are read in place: from the scratch buffer only what precedes them.
      reader.attach({
        window: (minimum) => parser.receiveWindow(minimum),
        received: (n) => {
          this.bytesReceived += n;
          try {
            parser.received(n);
          } catch (err) {
            undecodable(err);
          }
        },
        push,
      });
    } else {
      this.socket.on('data', push);
    }
    this.socket.on('end', () => {
      if (parser.midMessage) {
        this.protocolFailure(new ProtocolError(`connection to ${this.peerAddress} closed in the middle of a message`));
      } else {
        this.endSink();
      }
    });
    this.socket.resume();
  }

  write(message: unknown): Promise<number> {
    if (this.state.kind !== 'open') {
      return Promise.reject(this.state.kind === 'failed' ? this.state.error : new CommClosedError(`write to closing comm ${this.peerAddress}`));
    }
    let wireSize: number;
    try {
      const codec = this.codec;
      const frames = codec.encodePieces ? codec.encodePieces(message, this) : codec.encode(message, this);
      const size = messageSize(frames);
      if (size > this.maxMessageSize) return Promise.reject(new MessageTooLargeError(size, this.maxMessageSize));
      // The first message of a tick schedules the flush that sends the tick's batch.
      if (this.writer.pendingBytes === 0) process.nextTick(this.flush);
      wireSize = this.writer.add(frames);
      this.bytesSent += wireSize;
    } catch (err) {
      return Promise.reject(err); // unencodable message: this write fails, the comm stays usable
    }
    if (this.socket.writableLength + this.writer.pendingBytes < this.writeHighWaterMark) {
      return Promise.resolve(wireSize);
    }
    return this.waitForDrain().then(() => wireSize);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): Promise<void> {
    if (this.state.kind === 'failed' || this.state.kind === 'closed') return Promise.resolve();
    if (this.state.kind === 'open') {
      this.state = { kind: 'closing' };
      this.flush();
      this.socket.end();
      // Keep reading (a paused reader would never see the peer's FIN or reset).
      this.socket.resume();
    }
    // Resolves once the peer has closed its side too: closing with unread bytes would
    // make the kernel send a reset and could lose what we just flushed.
    return new Promise((resolve) => {
      if (this.socket.destroyed) resolve();
      else this.socket.once('close', () => resolve());
    });
  }

  abort(reason?: Error): void {
    if (this.rawSocket.destroyed && this.socket.destroyed) return;
    this.sink = undefined; // the comm above asked for this and ends its own stream
    // Writes still waiting reject with the comm's own failure when it is one (a dead peer).
    this.fail(reason instanceof CommClosedError ? reason : new CommClosedError(`comm to ${this.peerAddress} aborted`, { cause: reason }));
    // A reset, not a FIN, so that the peer's reader errors instead of completing.
    // Not after our FIN: Node 20's resetAndDestroy() then fails with EINVAL, emits no
    // 'close', and leaves a handle that spins the event loop at process exit.
    const finSent = this.socket.writableEnded || this.rawSocket.writableEnded;
    if (!finSent && typeof this.rawSocket.resetAndDestroy === 'function' && !this.rawSocket.destroyed && this.rawSocket.readyState !== 'opening') {
      try {
        this.rawSocket.resetAndDestroy();
      } catch {
        this.rawSocket.destroy();
      }
    } else {
      this.rawSocket.destroy();
    }
    this.socket.destroy();
  }

  private sendHeartbeat(): void {
    if (this.state.kind !== 'open') return;
    if (this.writer.pendingBytes === 0) process.nextTick(this.flush);
    this.bytesSent += this.writer.add(NO_FRAMES);
  }

  /**
   * Keepalive (or retransmission) gave up on the peer of this established connection:
   * ETIMEDOUT, or EHOSTUNREACH / ENETUNREACH when the peer's host stopped answering ARP on
   * a shared link. Say so plainly.
   */
  private keepAliveFailure(err: unknown): CommClosedError | undefined {
    const code = (err as { code?: unknown } | null)?.code;
    if (code !== 'ETIMEDOUT' && code !== 'EHOSTUNREACH' && code !== 'ENETUNREACH') return undefined;
    return new DeadPeerError(this.peerAddress, undefined, { cause: err });
  }

  private readonly flush = (): void => {
    if (this.writer.pendingBytes === 0) return;
    const chunks = this.writer.take();
    if (this.socket.destroyed) return;
    if (chunks.length === 1) {
      this.socket.write(chunks[0]);
    } else {
      this.socket.cork();
      for (const chunk of chunks) this.socket.write(chunk);
      this.socket.uncork();
    }
    // A write the kernel took at once is followed by no 'drain' event.
    if (this.drainWait && !this.socket.writableNeedDrain) this.settleDrain();
  };

  private waitForDrain(): Promise<void> {
    if (!this.drainWait) {
      let resolve!: () => void;
      let reject!: (error: Error) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.drainWait = { promise, resolve, reject };
    }
    return this.drainWait.promise;
  }

  private settleDrain(error?: Error): void {
    const wait = this.drainWait;
    if (!wait) return;
    this.drainWait = undefined;
    if (error) wait.reject(error);
    else wait.resolve();
  }

  /** The peer broke the protocol: the reader learns why, then the connection is reset. */
  private protocolFailure(error: CommClosedError): void {
    this.endSink(error);
    this.abort(error);
  }

  /**
   * The socket is done: closed after a flushed `close()`, else failed with `error`, which
   * pending and later writes reject with. A reader still attached learns of it.
   */
  private fail(error: CommClosedError): void {
    if (this.state.kind === 'failed' || this.state.kind === 'closed') return;
    const flushed = this.state.kind === 'closing' && this.socket.writableFinished;
    this.state = flushed ? { kind: 'closed' } : { kind: 'failed', error };
    this.settleDrain(flushed ? undefined : error);
    this.endSink(error);
  }

  /** Tells the sink the stream ended, once: cleanly, or with `error`. */
  private endSink(error?: Error): void {
    const sink = this.sink;
    if (!sink) return;
    this.sink = undefined;
    if (error) sink.error(error);
    else sink.complete();
  }
}
