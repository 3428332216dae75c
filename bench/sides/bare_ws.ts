/**
 * The ws:// and wss:// baseline: the bench server and client as the best plain Node we
 * know how to write on the `ws` package, with Dask's ws framing. Like bare.ts (the tcp
 * and tls baseline) it is deliberately independent of rxcomm: it imports nothing from
 * lib/ (nor the `rxcomm` package), only node:http(s)/net/tls, `ws` and msgpackr, plus
 * protocol.ts for the bench's phases, which hold no rxcomm code.
 *
 * Dask's ws framing (shared/PROTOCOL-2.md): one Dask message is an 8-byte binary ws
 * message holding the frame count N (u64 LE), then N binary ws messages, one per frame
 * (frame 0: msgpack); endpoint path `/`, no subprotocol, no permessage-deflate. Then the
 * Dask handshake, written first and read second. So its client could talk to Dask's ws
 * bench server. It does everything rxcomm does per message: encode, frame, batch, parse,
 * decode every message, count the bytes. Command line: see sideMain in protocol.ts, plus
 * `--copy-large-bins` and `--zero-mask` (below, comparison only).
 *
 * The settings rxcomm should use too: `perMessageDeflate: false` both ends (Dask declines
 * it anyway), `maxPayload` raised from ws's 100 MiB to 1 GiB (rxcomm's default
 * maxMessageSize; ws keeps it as `maxPayload | 0`, so it must stay below 2^31), Nagle off.
 *
 * How it goes fast, within what `ws` offers publicly:
 * - Writing: msgpackr's Packr packs each frame into a 64 KiB slab it never writes over
 *   (each frame is a view of it), the count message is one constant buffer; every
 *   `ws.send` of one tick goes into the corked socket (the socket ws uses, reached through
 *   the public `request.socket` / upgrade response), uncorked on `process.nextTick`: one
 *   writev per tick instead of two writes per ws message. No send callbacks.
 * - A bin of 64 KiB or more at the top level of frame 0 is not copied through Packr: frame 0
 *   goes out as one ws message in fragments (FIN clear on all but the last), the bin a
 *   fragment of its own, by reference, as bare.ts hands it to the socket by reference.
 *   (`--copy-large-bins` packs it whole instead.) Dask's tornado accepts fragmented
 *   messages. The client's frames must be masked: ws copies a read-only Buffer into a
 *   new masked one (its JS loop, no bufferutil here), with any mask but 0 (`--zero-mask`
 *   sends a zero mask, which ws then skips: only to measure what masking costs).
 * - Reading: ws delivers each ws message as one Buffer (`allowSynchronousEvents`, its
 *   default, emits them synchronously). The count message sets how many frames follow;
 *   frame 0 is decoded from a scratch buffer when small (msgpackr then reuses its
 *   DataView and its pure-JS string path, as bare.ts does), in place when larger (bins as
 *   views of it: the Buffer is the message's own).
 * - Backpressure as rxcomm's: `write` accepts while the socket holds less than 1 MiB and
 *   otherwise returns a promise that settles on the socket's 'drain'.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { IncomingMessage } from 'node:http';
import { Packr, Unpackr } from 'msgpackr';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import { benchHandler, fail, sideMain, type BenchPeer, type TlsFiles } from './protocol';

const WRITE_HIGH_WATER_MARK = 1024 * 1024;
/** rxcomm's default maxMessageSize; also ws's maxPayload (kept by ws as `| 0`: < 2^31). */
const MAX_MESSAGE_SIZE = 1024 * 1024 * 1024;
const MAX_FRAME_COUNT = 1 << 20;
const SLAB_SIZE = 64 * 1024;
/** A top-level bin this large goes to the socket by reference, as a fragment of its own. */
const LARGE_BIN = 64 * 1024;
/** Frames up to this size are decoded from the scratch buffer. */
const SCRATCH_SIZE = 4096;
const TWO_POW_32 = 0x1_0000_0000;

/** What rxcomm (and Debian's Dask) sends; compression null: this peer never compresses. */
const HANDSHAKE = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5 };

/** Frame count 1, u64 LE: every message the bench sends has one frame. Never written to. */
const COUNT_ONE = Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]);

const packr = new Packr({ useRecords: false, variableMapSize: true });
// Packr goes on in its buffer after each message and starts a new one of the same size
// when this one is full: the views it returns are never written over.
packr.useBuffer(Buffer.allocUnsafeSlow(SLAB_SIZE));
const scratchUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true, copyBuffers: true });
const viewUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const scratch = Buffer.allocUnsafeSlow(SCRATCH_SIZE);

function decodeFrame(frame: Buffer): unknown {
  const length = frame.length;
  if (length <= SCRATCH_SIZE) {
    frame.copy(scratch, 0, 0, length);
    return scratchUnpackr.unpack(scratch, length);
  }
  return viewUnpackr.unpack(frame);
}

function readU64(buffer: Buffer, at: number): number {
  const low = (buffer[at] | (buffer[at + 1] << 8) | (buffer[at + 2] << 16)) + buffer[at + 3] * 0x100_0000;
  const high = (buffer[at + 4] | (buffer[at + 5] << 8) | (buffer[at + 6] << 16)) + buffer[at + 7] * 0x100_0000;
  if (high >= 0x20_0000) throw new Error('frame count beyond 2^53');
  return high * TWO_POW_32 + low;
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

/**
 * Frame 0 of a map with large top-level bins, as the pieces of one ws message: msgpack
 * of the map header, keys and small values (packed, then joined), each large bin's bin32
 * header at the end of the piece before it, and the large bin itself by reference.
 */
function fragments(message: Record<string, unknown>): Buffer[] {
  const pieces: Buffer[] = [];
  let small: Buffer[] = [];
  const keys = Object.keys(message);
  const header = keys.length < 16 ? Buffer.from([0x80 | keys.length]) : Buffer.from([0xde, keys.length >> 8, keys.length & 0xff]);
  small.push(header);
  for (const key of keys) {
    small.push(packr.pack(key));
    const value = message[key];
    if (value instanceof Uint8Array && value.byteLength >= LARGE_BIN) {
      const binHeader = Buffer.allocUnsafe(5);
      binHeader[0] = 0xc6;
      binHeader.writeUInt32BE(value.byteLength, 1);
      small.push(binHeader);
      pieces.push(Buffer.concat(small));
      small = [];
      pieces.push(Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength));
    } else {
      small.push(packr.pack(value));
    }
  }
  if (small.length > 0) pieces.push(Buffer.concat(small));
  return pieces;
}

// ---------------------------------------------------------------------------------------
// a connection
// ---------------------------------------------------------------------------------------

const SEND_BINARY = { binary: true, fin: true };
const SEND_FRAGMENT = { binary: true, fin: false };

class BareWsConnection {
  private corked = false;
  private drain: { promise: Promise<void>; resolve(): void; reject(error: Error): void } | undefined;
  private failure: Error | undefined;
  private handler: ((message: unknown) => void) | undefined;
  private readonly kept: unknown[] = [];
  private readonly readers: { resolve(message: unknown): void; reject(error: Error): void }[] = [];
  /** Frames still to come of the message being read (0: the next ws message is a count). */
  private framesToCome = 0;
  private frame0: Buffer | undefined;

  private socket!: net.Socket;

  /**
   * Made as soon as `ws` is, before it opens: ws emits the messages that came with the
   * upgrade response synchronously after 'open', so its listeners must be there already.
   */
  constructor(
    private readonly ws: WebSocket,
    private readonly copyLargeBins = false,
  ) {
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      try {
        this.onWsMessage(data, isBinary);
      } catch (error) {
        this.fail(error as Error);
        ws.terminate();
      }
    });
    ws.on('close', () => this.fail(new Error(this.framesToCome > 0 ? 'closed in the middle of a message' : 'connection closed')));
    ws.on('error', (error) => this.fail(error));
  }

  /** The socket `ws` writes to, reached through the public upgrade request or response. */
  setSocket(socket: net.Socket): void {
    this.socket = socket;
    socket.on('drain', () => this.settleDrain());
  }

  private onWsMessage(data: Buffer, isBinary: boolean): void {
    if (!isBinary) throw new Error('a text ws message: Dask sends binary only');
    if (this.framesToCome === 0) {
      if (data.length !== 8) throw new Error(`a frame count of ${data.length} bytes, not 8`);
      const count = readU64(data, 0);
      if (count === 0 || count > MAX_FRAME_COUNT) throw new Error(`a message of ${count} frames`);
      this.framesToCome = count;
      this.frame0 = undefined;
      return;
    }
    if (this.frame0 === undefined) this.frame0 = data;
    if (--this.framesToCome > 0) return;
    // Frame 0 is the message; the bench never sends serialized payloads in further frames.
    const head = this.frame0;
    this.frame0 = undefined;
    this.receive(decodeFrame(head));
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
    if (!this.corked) {
      this.corked = true;
      this.socket.cork();
      process.nextTick(this.uncork);
    }
    const ws = this.ws;
    ws.send(COUNT_ONE, SEND_BINARY);
    if (!this.copyLargeBins && hasLargeBin(message)) {
      const pieces = fragments(message as Record<string, unknown>);
      const last = pieces.length - 1;
      for (let i = 0; i < last; i++) ws.send(pieces[i], SEND_FRAGMENT);
      ws.send(pieces[last], SEND_BINARY);
    } else {
      ws.send(packr.pack(message), SEND_BINARY);
    }
    if (this.socket.writableLength < WRITE_HIGH_WATER_MARK) return undefined;
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
    this.uncork();
    return new Promise((resolve) => {
      if (this.ws.readyState === WebSocket.CLOSED) return resolve();
      const timer = setTimeout(() => {
        this.ws.terminate();
        resolve();
      }, 2000);
      this.ws.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.close(1000);
    });
  }

  private receive(message: unknown): void {
    if (this.handler !== undefined) this.handler(message);
    else if (this.readers.length > 0) this.readers.shift()!.resolve(message);
    else this.kept.push(message);
  }

  private readonly uncork = (): void => {
    if (!this.corked) return;
    this.corked = false;
    this.socket.uncork();
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

function tlsOptions(files: TlsFiles) {
  return {
    ca: fs.readFileSync(files.ca),
    cert: fs.readFileSync(files.cert),
    key: fs.readFileSync(files.key),
    minVersion: 'TLSv1.2' as const,
  };
}

function hostPort(address: string): [string, number] {
  const location = address.slice(address.indexOf('://') + 3).replace(/\/.*$/, '');
  const colon = location.lastIndexOf(':');
  return [location.slice(0, colon).replace(/^\[|\]$/g, ''), Number(location.slice(colon + 1))];
}

const WS_OPTIONS = { perMessageDeflate: false, maxPayload: MAX_MESSAGE_SIZE } as const;

async function serve(transport: string, files: TlsFiles | undefined): Promise<{ address: string }> {
  let server: http.Server;
  if (transport === 'ws') {
    server = http.createServer({ noDelay: true });
  } else if (transport === 'wss') {
    if (!files) throw new Error('wss needs --tls CA CERT KEY');
    // Mutual TLS as in Dask.
    server = https.createServer({ ...tlsOptions(files), requestCert: true, rejectUnauthorized: true, noDelay: true });
    server.on('tlsClientError', () => undefined);
  } else {
    throw new Error(`unknown transport ${JSON.stringify(transport)} (ws or wss)`);
  }
  const wss = new WebSocketServer({ server, path: '/', ...WS_OPTIONS });
  wss.on('connection', (ws: WebSocket, request: IncomingMessage) => {
    const connection = new BareWsConnection(ws);
    connection.setSocket(request.socket);
    connection.handshake().then(
      () => connection.setHandler(benchHandler((message) => void connection.write(message)?.catch(() => ws.terminate()))),
      () => ws.terminate(),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0 }, resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  return { address: `${transport}://127.0.0.1:${port}` };
}

async function open(address: string, transport: string, files: TlsFiles | undefined, flags: Set<string>): Promise<BareWsConnection> {
  const [host, port] = hostPort(address);
  const options: ClientOptions = { ...WS_OPTIONS };
  if (flags.has('--zero-mask')) options.generateMask = (mask: Buffer) => void mask.fill(0);
  if (transport === 'wss') {
    if (!files) throw new Error('wss needs --tls CA CERT KEY');
    // Over a TCP socket of our own, to set noDelay on it (as bare.ts); Dask checks the chain, not the host name.
    Object.assign(options, tlsOptions(files), {
      checkServerIdentity: () => undefined,
      createConnection: (opts: tls.ConnectionOptions) => tls.connect({ ...opts, socket: net.connect({ host, port, noDelay: true }) }),
    });
  } else if (transport !== 'ws') {
    throw new Error(`unknown transport ${JSON.stringify(transport)} (ws or wss)`);
  }
  const ws = new WebSocket(`${transport}://${host.includes(':') ? `[${host}]` : host}:${port}/`, options);
  const connection = new BareWsConnection(ws, flags.has('--copy-large-bins'));
  return new Promise((resolve, reject) => {
    let seen = false;
    ws.once('upgrade', (response: IncomingMessage) => {
      connection.setSocket(response.socket);
      seen = true;
    });
    ws.once('open', () => (seen ? resolve(connection) : reject(new Error('no socket seen in the upgrade'))));
    ws.once('error', reject);
  });
}

/** `write` returns a promise only when the writer must wait: promisePerWrite false. */
function peerOf(connection: BareWsConnection): BenchPeer {
  return { write: (message) => connection.write(message), promisePerWrite: false, read: () => connection.read() };
}

sideMain('bare_ws', {
  serve,
  async connect(address, transport, args) {
    const connection = await open(address, transport, args.tls, args.flags);
    await connection.handshake();
    return { peer: peerOf(connection), close: () => connection.close() };
  },
}).catch(fail);
