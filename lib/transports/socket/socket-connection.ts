/**
 * A `Connection` over a Node stream socket (`net.Socket`, or a `tls.TLSSocket` on top
 * of one), speaking Dask's framing: bytes in → `FrameParser` → codec → messages to the
 * sink; messages out → codec → `FrameWriter` batches → one socket write per tick.
 */
import type * as net from 'node:net';
import type { Connection, ConnectionSink } from '../../comm/connection';
import { CommClosedError, MessageTooLargeError, ProtocolError, toCommClosedError } from '../../errors';
import { FrameParser } from '../../protocol';
import type { BackendOptions } from '../../registry/backend';
import { FrameWriter } from './frame-writer';

export interface SocketConnectionInit {
  /** The socket messages travel on (the TLS socket for tls). */
  socket: net.Socket;
  /** The TCP socket underneath, reset on abort so the peer sees it as one. */
  rawSocket: net.Socket;
  localAddress: string;
  peerAddress: string;
  extraInfo?: Record<string, unknown>;
  options: BackendOptions;
  /** How socket errors become comm errors (tls makes certificate failures fatal). */
  wrapError?: (err: unknown, message: string) => CommClosedError;
}

/** A promise plus its settle functions: the writers waiting for the socket to drain. */
interface DrainWait {
  promise: Promise<void>;
  resolve(): void;
  reject(error: Error): void;
}

export class SocketConnection implements Connection {
  readonly localAddress: string;
  readonly peerAddress: string;
  readonly extraInfo: Record<string, unknown>;

  private readonly socket: net.Socket;
  private readonly rawSocket: net.Socket;
  private readonly options: BackendOptions;
  private readonly writer = new FrameWriter();
  private flushScheduled = false;
  private drainWait: DrainWait | undefined;
  /** Set once the connection failed or was aborted: every later write rejects with it. */
  private failure: CommClosedError | undefined;
  private ending = false;
  private aborted = false;
  private sink: ConnectionSink | undefined;
  private sinkDone = false;

  constructor(init: SocketConnectionInit) {
    this.socket = init.socket;
    this.rawSocket = init.rawSocket;
    this.localAddress = init.localAddress;
    this.peerAddress = init.peerAddress;
    this.extraInfo = init.extraInfo ?? {};
    this.options = init.options;
    // Never leave an 'error' event unheard, even before open().
    const wrapError = init.wrapError ?? toCommClosedError;
    this.socket.on('error', (err) => this.fail(wrapError(err, `connection to ${this.peerAddress} lost`)));
    this.socket.on('drain', () => this.settleDrain());
    this.socket.on('close', () => {
      this.fail(new CommClosedError(`connection to ${this.peerAddress} closed`));
    });
    this.socket.pause(); // nothing is read until a sink is attached
  }

  open(sink: ConnectionSink): void {
    this.sink = sink;
    const parser = new FrameParser({
      maxMessageSize: this.options.maxMessageSize,
      onMessage: (frames, nbytes) => {
        if (this.sinkDone) return;
        sink.next(this.options.codec.decode(frames), nbytes);
      },
    });
    this.socket.on('data', (chunk: Buffer) => {
      try {
        parser.push(chunk);
      } catch (err) {
        const error =
          err instanceof CommClosedError
            ? err
            : new ProtocolError(`undecodable message from ${this.peerAddress}: ${(err as Error).message}`, { cause: err });
        this.endSink(error);
        this.abort(error);
      }
    });
    this.socket.on('end', () => {
      if (parser.midMessage) {
        const error = new ProtocolError(`connection to ${this.peerAddress} closed in the middle of a message`);
        this.endSink(error);
        this.abort(error);
      } else {
        this.endSink();
      }
    });
    this.socket.resume();
    if (this.failure) this.endSink(this.failure); // it died before anyone was listening
  }

  write(message: unknown): Promise<number> {
    if (this.failure || this.ending) {
      return Promise.reject(this.failure ?? new CommClosedError(`write to closing comm ${this.peerAddress}`));
    }
    let size: number;
    try {
      const codec = this.options.codec;
      const frames = codec.encodePieces ? codec.encodePieces(message) : codec.encode(message);
      const wireSize = FrameWriter.wireSize(frames);
      if (wireSize - 8 > this.options.maxMessageSize) {
        return Promise.reject(new MessageTooLargeError(wireSize - 8, this.options.maxMessageSize));
      }
      size = this.writer.add(frames);
    } catch (err) {
      return Promise.reject(err); // unencodable message: this write fails, the comm stays usable
    }
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flush);
    }
    if (this.socket.writableLength + this.writer.pendingBytes < this.options.writeHighWaterMark) {
      return Promise.resolve(size);
    }
    return this.waitForDrain().then(() => size);
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): Promise<void> {
    if (this.failure) return Promise.resolve();
    if (!this.ending) {
      this.ending = true;
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
    if (this.aborted) return;
    this.aborted = true;
    this.sinkDone = true; // the comm above asked for this and ends its own stream
    this.fail(new CommClosedError(`comm to ${this.peerAddress} aborted`, { cause: reason }));
    // A reset, not a FIN, so that the peer's reader errors instead of completing.
    if (typeof this.rawSocket.resetAndDestroy === 'function' && !this.rawSocket.destroyed && this.rawSocket.readyState !== 'opening') {
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

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.writer.pendingBytes === 0 || this.socket.destroyed) return;
    const chunks = this.writer.take();
    if (chunks.length === 1) {
      this.socket.write(chunks[0]);
      this.settleIfDrained();
      return;
    }
    this.socket.cork();
    for (const chunk of chunks) this.socket.write(chunk);
    this.socket.uncork();
    this.settleIfDrained();
  };

  /** A write can be taken at once by the kernel, and then no 'drain' event follows. */
  private settleIfDrained(): void {
    if (this.drainWait && !this.socket.writableNeedDrain) this.settleDrain();
  }

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

  /** Records the first failure; pending and later writes reject with it. */
  private fail(error: CommClosedError): void {
    if (this.failure) return;
    this.failure = error;
    // A clean close flushed everything, so waiting writers succeeded; otherwise they failed.
    this.settleDrain(this.ending && this.socket.writableFinished ? undefined : error);
    this.endSink(error);
  }

  /** Tells the sink the stream ended, once: cleanly, or with `error`. */
  private endSink(error?: Error): void {
    if (this.sinkDone || !this.sink) return;
    this.sinkDone = true;
    if (error) this.sink.error(error);
    else this.sink.complete();
  }
}
