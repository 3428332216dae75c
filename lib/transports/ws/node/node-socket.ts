/**
 * Node's `ws` WebSocket as a `MessageSocket`. It also holds the TCP (or TLS) socket under
 * it, for two things the `ws` API does not give: corking, so that the count and frames
 * written in one tick leave in one system call, and the socket's 'drain' event, so that
 * a writer over the high-water mark waits for the network instead of polling.
 */
import type * as net from 'node:net';
import type { WebSocket } from 'ws';
import type { FramePieces } from '../../../protocol';
import type { MessageSocket, MessageSocketEvents } from '../message-socket';

const MORE = { fin: false } as const;
const FINAL = { fin: true } as const;

export class NodeMessageSocket implements MessageSocket {
  private corked = false;
  /** One wait shared by every writer over the high-water mark. */
  private drainWait: Promise<void> | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly socket: net.Socket,
  ) {
    // Read as Buffers (a Uint8Array, no copy); 'arraybuffer' would copy each message.
    ws.binaryType = 'nodebuffer';
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  listen(events: MessageSocketEvents): void {
    let error: Error | undefined;
    this.ws.on('message', (data: Buffer, isBinary: boolean) => events.message(data, isBinary));
    // 'error' always precedes 'close': keep the first cause for it.
    this.ws.on('error', (err) => (error ??= err));
    this.ws.on('close', (code: number, reason: Buffer) => events.closed(code, reason.toString(), error));
    this.ws.on('pong', () => events.alive());
    this.ws.on('ping', () => events.alive());
  }

  ping(): void {
    // ws throws when the socket is not open; the connection's end is reported elsewhere.
    if (this.ws.readyState === this.ws.OPEN) this.ws.ping();
  }

  send(data: FramePieces): void {
    if (!this.corked && !this.socket.destroyed) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    if (data instanceof Uint8Array) {
      this.ws.send(data);
      return;
    }
    // Pieces (a large bin the codec left uncopied) go as fragments of one message: Dask,
    // browsers and `ws` all reassemble them, and nothing is joined into a copy first.
    const last = data.length - 1;
    for (let i = 0; i <= last; i++) this.ws.send(data[i], i === last ? FINAL : MORE);
  }

  drained(limit: number): Promise<void> {
    if (this.ws.bufferedAmount < limit || this.socket.destroyed) return Promise.resolve();
    // Below the socket's own high-water mark no 'drain' will come: it is within bounds.
    if (!this.socket.writableNeedDrain) return Promise.resolve();
    this.drainWait ??= new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.drainWait = undefined;
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    return this.drainWait;
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.ws.resume();
  }

  close(code: number): void {
    this.uncork();
    this.ws.close(code);
  }

  terminate(): void {
    this.ws.terminate();
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
  };
}
