/**
 * A `Connection` over a WebSocket, speaking Dask's ws framing: WebSocket messages in →
 * `WsMessageReader` → codec → messages to the sink; messages out → codec → count and
 * frames, sent back to back. Platform-neutral: Node and the browser each give it a
 * `MessageSocket`.
 */
import type { Connection, ConnectionSink, PeerProbe } from '../../comm/connection';
import { CommClosedError, MessageTooLargeError, ProtocolError } from '../../errors';
import { messageSize, type CodecContext, type FramePieces, type MessageCodec } from '../../protocol';
import { preludeSize } from '../../protocol/framing/header';
import { COUNT_SIZE, WsMessageReader, wsMessagesOf } from '../../protocol/framing/ws-messages';
import { CLEAN_CLOSE_CODES, type MessageSocket } from './message-socket';

export interface WebSocketConnectionInit {
  socket: MessageSocket;
  localAddress: string;
  peerAddress: string;
  extraInfo?: Record<string, unknown>;
  codec: MessageCodec;
  maxMessageSize: number;
  writeHighWaterMark: number;
  /** How a socket error becomes a comm error (wss makes certificate failures fatal). */
  wrapError?: (err: Error, message: string) => CommClosedError;
}

/**
 * The connection's one state, as `SocketConnection`'s: `closing` after `close()` sent
 * our close frame, `closed` once the closing handshake finished, `failed` when anything
 * else ended it (every later write rejects with `error`).
 */
type WebSocketState =
  | { kind: 'open' }
  | { kind: 'closing' }
  | { kind: 'closed' }
  | { kind: 'failed'; error: CommClosedError };

export class WebSocketConnection implements Connection, CodecContext {
  readonly localAddress: string;
  readonly peerAddress: string;
  readonly extraInfo: Record<string, unknown>;

  private readonly socket: MessageSocket;
  private readonly codec: MessageCodec;
  /** The codec's context is the connection itself (no object per message). */
  readonly maxMessageSize: number;
  compression: string | null = null;
  /** What decompressing the message being decoded added to its wire size. */
  private inflatedBytes = 0;
  private readonly writeHighWaterMark: number;
  private readonly reader: WsMessageReader;
  private state: WebSocketState = { kind: 'open' };
  /** Where messages go, from `open()` until the end of the stream has been delivered. */
  private sink: ConnectionSink | undefined;
  /**
   * Messages read before `open()`: a browser cannot pause its socket, and Node's may have
   * parsed a few already. Only the handshake is normally here.
   */
  private early: { message: unknown; nbytes: number }[] | undefined = [];
  /** How the stream ended before `open()`: delivered by `open()`. */
  private earlyEnd: { error?: Error } | undefined;
  /** Bytes (and control frames) read and written so far: the dead-peer watch's signs of traffic. */
  private received = 0;
  private sent = 0;
  private readonly closedPromise: Promise<void>;
  private resolveClosed!: () => void;

  constructor(init: WebSocketConnectionInit) {
    this.socket = init.socket;
    this.localAddress = init.localAddress;
    this.peerAddress = init.peerAddress;
    this.extraInfo = init.extraInfo ?? {};
    this.codec = init.codec;
    this.maxMessageSize = init.maxMessageSize;
    this.writeHighWaterMark = init.writeHighWaterMark;
    this.closedPromise = new Promise((resolve) => (this.resolveClosed = resolve));
    this.reader = new WsMessageReader({
      maxMessageSize: this.maxMessageSize,
      onMessage: (frames, nbytes) => {
        this.inflatedBytes = 0;
        const message = this.codec.decode(frames, this);
        this.deliver(message, nbytes + this.inflatedBytes);
      },
    });
    const wrapError = init.wrapError ?? ((err, message) => new CommClosedError(`${message}: ${err.message}`, { cause: err }));
    this.socket.pause(); // nothing more is read until a sink is attached
    this.socket.listen({
      message: (data, binary) => this.read(data, binary),
      closed: (code, reason, error) => this.socketClosed(code, reason, error && wrapError(error, `connection to ${this.peerAddress} lost`)),
      alive: () => this.received++,
    });
  }

  get bufferedBytes(): number {
    return this.socket.bufferedAmount;
  }

  get needsDrain(): boolean {
    return this.socket.bufferedAmount >= this.writeHighWaterMark;
  }

  /**
   * WebSocket pings work with every peer (Tornado, so Dask, and browsers answer them),
   * so no heartbeat needs agreeing on; a platform that cannot ping (a browser) has none.
   */
  peerProbe(): PeerProbe | undefined {
    const socket = this.socket;
    if (!socket.ping) return undefined;
    const connection = this;
    return {
      get received() {
        return connection.received;
      },
      get sent() {
        return connection.sent - connection.socket.bufferedAmount;
      },
      ping: () => {
        if (this.state.kind !== 'open') return;
        this.sent++;
        socket.ping!();
      },
    };
  }

  /** CodecContext: decompressed payloads count as what the message holds. */
  inflated(bytes: number): void {
    this.inflatedBytes += bytes;
  }

  useCompression(compression: string | null): void {
    this.compression = compression;
  }

  open(sink: ConnectionSink): void {
    const early = this.early ?? [];
    this.early = undefined;
    this.sink = sink;
    for (const { message, nbytes } of early) this.sink?.next(message, nbytes);
    if (this.earlyEnd) this.endSink(this.earlyEnd.error);
    else this.socket.resume();
  }

  write(message: unknown): Promise<number> {
    if (this.state.kind !== 'open') {
      return Promise.reject(this.state.kind === 'failed' ? this.state.error : new CommClosedError(`write to closing comm ${this.peerAddress}`));
    }
    let parts: FramePieces[];
    let size: number;
    try {
      const codec = this.codec;
      const frames = codec.encodePieces ? codec.encodePieces(message, this) : codec.encode(message, this);
      size = messageSize(frames);
      if (size > this.maxMessageSize) return Promise.reject(new MessageTooLargeError(size, this.maxMessageSize));
      parts = wsMessagesOf(frames);
    } catch (err) {
      return Promise.reject(err); // unencodable message: this write fails, the comm stays usable
    }
    // One call per part, all in this turn: nothing can come between the parts of a message.
    for (let i = 0; i < parts.length; i++) this.socket.send(parts[i]);
    // On the wire: the count and the frames (what tcp spends on lengths, ws spends on its own headers).
    const wireSize = COUNT_SIZE + size - preludeSize(parts.length - 1);
    this.sent += wireSize;
    if (this.socket.bufferedAmount < this.writeHighWaterMark) return Promise.resolve(wireSize);
    return this.socket.drained(this.writeHighWaterMark).then(() => {
      if (this.state.kind === 'failed') throw this.state.error;
      return wireSize;
    });
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(): Promise<void> {
    if (this.state.kind === 'open') {
      this.state = { kind: 'closing' };
      // Our close frame follows everything sent; the peer answers with its own, and keeps
      // nothing back: a paused reader would never see that answer.
      this.socket.close(1000);
      this.socket.resume();
    }
    return this.closedPromise;
  }

  abort(reason?: Error): void {
    if (this.state.kind === 'closed' || this.state.kind === 'failed') return;
    this.sink = undefined; // the comm above asked for this and ends its own stream
    // Writes still waiting reject with the comm's own failure when it is one (a dead peer).
    const error = reason instanceof CommClosedError ? reason : new CommClosedError(`comm to ${this.peerAddress} aborted`, { cause: reason });
    this.state = { kind: 'failed', error };
    this.socket.terminate();
  }

  private read(data: Uint8Array, binary: boolean): void {
    this.received += data.byteLength;
    try {
      this.reader.push(data, binary);
    } catch (err) {
      const error =
        err instanceof CommClosedError
          ? err
          : new ProtocolError(`undecodable message from ${this.peerAddress}: ${(err as Error).message}`, { cause: err });
      // The peer broke the protocol: the reader learns why, then the connection is dropped.
      this.endSink(error);
      this.abort(error);
    }
  }

  private deliver(message: unknown, nbytes: number): void {
    if (this.early) this.early.push({ message, nbytes });
    else this.sink?.next(message, nbytes);
  }

  /** The socket is gone: a clean end of stream, or an error that later writes reject with. */
  private socketClosed(code: number, reason: string, error: CommClosedError | undefined): void {
    const closing = this.state.kind === 'closing';
    const clean = !error && CLEAN_CLOSE_CODES.has(code) && !this.reader.midMessage;
    let failure = error;
    if (!failure && !clean) {
      failure = this.reader.midMessage
        ? new ProtocolError(`connection to ${this.peerAddress} closed in the middle of a message`)
        : code === 1006
          ? new CommClosedError(`connection to ${this.peerAddress} lost (closed without a WebSocket close frame)`)
          : new CommClosedError(`connection to ${this.peerAddress} closed with code ${code}${reason ? `: ${reason}` : ''}`);
    }
    if (this.state.kind === 'open' || closing) {
      this.state =
        closing && !failure
          ? { kind: 'closed' }
          : { kind: 'failed', error: failure ?? new CommClosedError(`connection to ${this.peerAddress} closed`) };
    }
    this.endSink(failure);
    this.resolveClosed();
  }

  /** Tells the sink the stream ended, once: cleanly, or with `error`. */
  private endSink(error?: Error): void {
    if (this.early) {
      this.earlyEnd ??= { error };
      return;
    }
    const sink = this.sink;
    if (!sink) return;
    this.sink = undefined;
    if (error) sink.error(error);
    else sink.complete();
  }
}
