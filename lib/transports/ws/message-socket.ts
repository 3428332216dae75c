/**
 * The little a ws comm needs of a WebSocket. Node's `ws` package and the browser's
 * native `WebSocket` differ in how they deliver messages, report errors and push back;
 * each platform adapts its own to this, and `WebSocketConnection` works on either.
 */

import type { FramePieces } from '../../protocol';

/** What a `MessageSocket` reports, from the moment `listen` is called. */
export interface MessageSocketEvents {
  /** One whole WebSocket message; `binary` is false for a text message. */
  message(data: Uint8Array, binary: boolean): void;
  /**
   * The connection ended: `code` is the close code the peer sent (1005 when its close
   * frame had none, 1006 when there was no close frame at all), `error` what broke it.
   * Called once; nothing is reported after it.
   */
  closed(code: number, reason: string, error?: Error): void;
  /** A control frame arrived (a pong, a ping): the peer is alive. */
  alive(): void;
}

export interface MessageSocket {
  /** Bytes given to `send` that have not reached the network yet. */
  readonly bufferedAmount: number;
  /** Starts delivering events. Called once. */
  listen(events: MessageSocketEvents): void;
  /**
   * Sends one binary WebSocket message, given whole or as pieces (which a sender may send
   * as fragments, or join). The buffers must not change until they are sent.
   */
  send(data: FramePieces): void;
  /** Resolves once `bufferedAmount` is below `limit`, or the socket has closed. */
  drained(limit: number): Promise<void>;
  /**
   * Sends a WebSocket ping, which every conformant peer answers with a pong (reported
   * as `alive`). Absent where the platform cannot send one (browsers).
   */
  ping?(): void;
  /** Stops reading from the network (a no-op where the platform cannot: browsers). */
  pause(): void;
  resume(): void;
  /** Starts the closing handshake, after what was sent: the peer's reader completes. */
  close(code: number): void;
  /** Drops the connection now: the peer sees it end without a close frame, an error. */
  terminate(): void;
}

/** Close codes that end a stream cleanly: normal, going away, and no code given (Dask's client). */
export const CLEAN_CLOSE_CODES: ReadonlySet<number> = new Set([1000, 1001, 1005]);
