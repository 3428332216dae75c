/**
 * Zero-copy receive for plain TCP sockets: Node's `onread` option lets us choose, read by
 * read, the memory the kernel writes to. While a large frame is being received, that is
 * the part of the frame's final buffer still to be filled, so its bytes land in place and
 * are never copied; otherwise it is one reused scratch buffer. What lands there is copied
 * once: into the frame being filled when it all belongs to it, else into a buffer of the
 * read's size that the parser keeps (its frames are views of it, as with 'data' chunks).
 * Copying the read costs no more than Node's own reads do (a fresh 64 KiB buffer each,
 * shrunk to the read), and is cheaper than copying frame by frame: 3.6 against 2.7 M small
 * messages/s parsed and decoded, 64 KiB reads.
 *
 * Not for TLS: decryption happens in OpenSSL's buffers, and a `TLSSocket` reads through
 * its own; tls stays on 'data'.
 */
import * as net from 'node:net';

/** What a `DirectReader` feeds: the connection's `FrameParser`, through the connection. */
export interface DirectTarget {
  /**
   * Where the next `minimum` or more bytes may go in place (the rest of a frame's final
   * buffer), or undefined (`FrameParser.receiveWindow`).
   */
  window(minimum: number): Uint8Array | undefined;
  /** `n` bytes were written at the start of the window last returned. */
  received(n: number): void;
  /** Bytes of the stream, in a buffer of their own: frames may be views of them. */
  push(chunk: Uint8Array): void;
}

/**
 * Size of the scratch buffer, and the smallest window worth reading into directly: a read
 * into a window of at least this much is never more syscalls than a scratch read, and
 * saves the copy; below it, a scratch read may also take the following small messages.
 */
export const SCRATCH_SIZE = 64 * 1024;

/**
 * One scratch buffer for every socket: libuv reads into it and Node calls back at once,
 * and each callback is done with it before it returns (its bytes copied out), so no two
 * reads ever hold it. One per socket would cost 64 KiB per open comm.
 */
let sharedScratch: Uint8Array | undefined;

export class DirectReader {
  /** For `net.connect({ onread })` / `new net.Socket({ onread })`. */
  readonly onread: net.OnReadOpts;
  private target: DirectTarget | undefined;
  /** Bytes read before a target was attached (copies): handed over on `attach()`. */
  private early: Uint8Array[] = [];
  private readonly scratch: Uint8Array = (sharedScratch ??= Buffer.allocUnsafeSlow(SCRATCH_SIZE));

  constructor() {
    // Node calls `buffer` once when the handle is set up, then after each `callback`: the
    // buffer for the next read is chosen once the previous read has been parsed.
    this.onread = {
      buffer: () => this.target?.window(SCRATCH_SIZE) ?? this.scratch,
      callback: (n: number, buffer: Uint8Array) => this.onRead(n, buffer),
    } as unknown as net.OnReadOpts; // @types/node 20 types `buffer` as a Uint8Array or a function of none
  }

  /** Starts delivering reads to `target` (first what was read before, if anything). */
  attach(target: DirectTarget): void {
    this.target = target;
    const early = this.early;
    this.early = [];
    for (const chunk of early) target.push(chunk);
  }

  private onRead(n: number, buffer: Uint8Array): void {
    const target = this.target;
    if (target === undefined) {
      this.early.push(Buffer.from(buffer.subarray(0, n)));
      return;
    }
    if (buffer !== this.scratch) return target.received(n); // read in place
    const bytes = buffer.subarray(0, n);
    const frame = target.window(n); // the whole read belongs to the frame being filled
    if (frame === undefined) return target.push(Buffer.from(bytes));
    frame.set(bytes);
    target.received(n);
  }
}

/** The symbols under which a Node 20 `net.Socket` keeps its `onread` options. */
interface UserBufferKeys {
  buffer: symbol;
  callback: symbol;
  generator: symbol;
}

/** Found on the first accepted socket: undefined until then, null if this Node has none. */
let userBufferKeys: UserBufferKeys | null | undefined;

function findUserBufferKeys(socket: net.Socket): UserBufferKeys | null {
  const symbols = Object.getOwnPropertySymbols(socket);
  const named = (description: string) => symbols.find((symbol) => symbol.description === description);
  const [buffer, callback, generator] = [named('kBuffer'), named('kBufferCb'), named('kBufferGen')];
  return buffer && callback && generator ? { buffer, callback, generator } : null;
}

/**
 * Makes a socket accepted by a `net.Server` (created with `pauseOnConnect`, so it has not
 * read yet) read through `reader`, in place: what `new net.Socket({ onread })` sets up,
 * done on the accepted socket (the three fields Node 20 keeps its `onread` options in,
 * and the handle told to read into the first buffer, as Node's `initSocketHandle` does).
 * Accepting then costs one `net.Socket`, not two as with `adoptAccepted`. Returns false
 * (nothing changed) where this Node keeps them otherwise: then `adoptAccepted`.
 */
export function readThroughInPlace(accepted: net.Socket, reader: DirectReader): boolean {
  userBufferKeys ??= findUserBufferKeys(accepted);
  const keys = userBufferKeys;
  const fields = accepted as unknown as Record<symbol, unknown> & { _handle?: { reading?: boolean; useUserBuffer?(buffer: Uint8Array): void } | null };
  const handle = fields._handle;
  if (!keys || !handle || typeof handle.useUserBuffer !== 'function' || handle.reading || accepted.destroyed) return false;
  if (fields[keys.buffer] !== null || fields[keys.generator] !== null) return false; // not a plain accepted socket
  const { buffer: generator, callback } = reader.onread as unknown as { buffer: () => Uint8Array; callback: unknown };
  const first = generator();
  fields[keys.generator] = generator;
  fields[keys.callback] = callback;
  fields[keys.buffer] = first;
  handle.useUserBuffer(first);
  return true;
}

/**
 * A socket accepted by a `net.Server` (created with `pauseOnConnect`), re-wrapped so that
 * it reads through `reader`: `net.createServer` takes no `onread` (Node 20), but
 * `new net.Socket({ handle, onread })` does. The new socket takes over the handle and the
 * server's count of open connections; the accepted one is left without either. Returns
 * undefined (use `accepted` as it is) when the handle cannot be taken.
 */
export function adoptAccepted(accepted: net.Socket, server: net.Server, reader: DirectReader): net.Socket | undefined {
  const internals = accepted as unknown as { _handle?: object | null; _server?: net.Server | null };
  const handle = internals._handle;
  if (!handle || accepted.destroyed || internals._server !== server) return undefined;
  internals._handle = null;
  internals._server = null;
  const socket = new net.Socket({
    handle,
    onread: reader.onread,
    allowHalfOpen: false,
    readable: true,
    writable: true,
    pauseOnCreate: true,
    // Only the socket's record of it (the server set TCP_NODELAY on the handle on accept);
    // keepalive is the connection's to set (`SocketConnection`).
    noDelay: true,
  } as net.SocketConstructorOpts);
  (socket as unknown as { _server: net.Server; server: net.Server })._server = server;
  (socket as unknown as { server: net.Server }).server = server;
  return socket;
}
