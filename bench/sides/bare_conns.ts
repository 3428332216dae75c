/**
 * The bare baseline of the connections table: plain Node sockets that connect and make
 * one small exchange each way (Dask's handshake, in Dask's framing), then stay open,
 * able to carry messages. Independent of rxcomm as bare.ts is (it takes bare.ts's frame
 * reader and handshake map, and msgpackr).
 *
 * What it holds per connection is what the best plain Node would hold for many mostly
 * idle connections: the socket, a 'data' listener feeding bare.ts's `FrameReader` (its
 * state and a 64-byte prelude stash), and the handler. It keeps no write slab: each
 * message is packed by msgpackr and written with its prelude in one pooled Buffer (one
 * `socket.write`). tls: the client makes one `SecureContext` and uses it for every
 * connect (a tls.Server makes one of its own).
 *
 *   server: accepts, handshakes (writes its map, reads the peer's), then reads on; every
 *           later message is echoed
 *   client: connects, handshakes, holds the connection (its reader attached)
 *
 * Command line and output: connSideMain in conn_protocol.ts.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { Packr } from 'msgpackr';
import { FrameReader, HANDSHAKE, hostPort, tlsOptions, writeU64 } from './bare';
import { connSideMain, type HeldComm } from './conn_protocol';
import { fail, type TlsFiles } from './protocol';

const packr = new Packr({ useRecords: false, variableMapSize: true });

class LeanConnection implements HeldComm {
  private failure: Error | undefined;
  private handler: ((message: unknown) => void) | undefined;
  private reader: { resolve(message: unknown): void; reject(error: Error): void } | undefined;
  private kept: unknown[] | undefined;
  private onEnd: (() => void) | undefined;

  constructor(private readonly socket: net.Socket) {
    const frames = new FrameReader((message) => this.receive(message));
    socket.on('data', (chunk: Buffer) => {
      try {
        frames.push(chunk);
      } catch (error) {
        this.fail(error as Error);
        socket.destroy();
      }
    });
    socket.on('error', (error) => this.fail(error));
    socket.on('close', () => this.fail(new Error('connection closed')));
  }

  /** Dask's handshake: ours first, then theirs. */
  async handshake(): Promise<void> {
    this.write(HANDSHAKE);
    const remote = (await this.read()) as Record<string, unknown>;
    if (remote === null || typeof remote !== 'object' || !('pickle-protocol' in remote) || !('compression' in remote)) {
      throw new Error(`not a Dask handshake: ${JSON.stringify(remote)}`);
    }
  }

  /** One message, prelude and msgpack in one pooled Buffer, one write. */
  write(message: unknown): void {
    if (this.failure) throw this.failure;
    const body = packr.pack(message);
    const out = Buffer.allocUnsafe(24 + body.length);
    writeU64(out, 0, body.length + 16);
    writeU64(out, 8, 1);
    writeU64(out, 16, body.length);
    body.copy(out, 24);
    this.socket.write(out);
  }

  read(): Promise<unknown> {
    if (this.kept?.length) return Promise.resolve(this.kept.shift());
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => (this.reader = { resolve, reject }));
  }

  /** From now on every message goes to `handler`; `onEnd` once the connection is gone. */
  serve(handler: (message: unknown) => void, onEnd: () => void): void {
    this.handler = handler;
    this.onEnd = onEnd;
    for (const message of this.kept?.splice(0) ?? []) handler(message);
    if (this.failure) onEnd();
  }

  isOpen(): boolean {
    return this.failure === undefined && !this.socket.destroyed;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.socket.destroyed) return resolve();
      this.socket.once('close', () => resolve());
      this.socket.end();
    });
  }

  private receive(message: unknown): void {
    if (this.handler) this.handler(message);
    else if (this.reader) {
      const reader = this.reader;
      this.reader = undefined;
      reader.resolve(message);
    } else (this.kept ??= []).push(message);
  }

  private fail(error: Error): void {
    if (this.failure) return;
    this.failure = error;
    this.reader?.reject(error);
    this.reader = undefined;
    this.onEnd?.();
  }
}

/** The client's one SecureContext (made at first use), as a client keeps its settings. */
const contexts = new Map<string, tls.SecureContext>();
function secureContext(files: TlsFiles): tls.SecureContext {
  const key = `${files.ca}|${files.cert}|${files.key}`;
  let context = contexts.get(key);
  if (!context) contexts.set(key, (context = tls.createSecureContext(tlsOptions(files))));
  return context;
}

connSideMain('bare', {
  async serve(transport, files, counter) {
    const accept = (socket: net.Socket) => {
      const connection = new LeanConnection(socket);
      connection.handshake().then(
        () => {
          counter.opened();
          connection.serve(
            (message) => {
              try {
                connection.write(message);
              } catch {
                socket.destroy();
              }
            },
            () => counter.ended(),
          );
        },
        () => socket.destroy(),
      );
    };
    let server: net.Server;
    if (transport === 'tcp') server = net.createServer({ noDelay: true }, accept);
    else if (transport === 'tls') {
      if (!files) throw new Error('tls needs --tls CA CERT KEY');
      // A tls.Server makes its one context from these options (it takes no `secureContext`).
      server = tls.createServer({ ...tlsOptions(files), requestCert: true, rejectUnauthorized: true, noDelay: true }, accept);
      server.on('tlsClientError', () => undefined);
    } else throw new Error(`unknown transport ${JSON.stringify(transport)} (tcp or tls)`);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: '127.0.0.1', port: 0 }, resolve);
    });
    const { port } = server.address() as net.AddressInfo;
    return { address: `${transport}://127.0.0.1:${port}` };
  },

  async connect(address, transport, files) {
    const [host, port] = hostPort(address);
    const socket = await new Promise<net.Socket>((resolve, reject) => {
      let socket: net.Socket;
      let raw: net.Socket | undefined;
      const ready = () => {
        socket.off('error', reject);
        raw?.off('error', reject);
        resolve(socket);
      };
      if (transport === 'tcp') socket = net.connect({ host, port, noDelay: true }, ready);
      else {
        if (!files) throw new Error('tls needs --tls CA CERT KEY');
        raw = net.connect({ host, port, noDelay: true });
        raw.once('error', reject);
        socket = tls.connect({ socket: raw, secureContext: secureContext(files), checkServerIdentity: () => undefined }, ready);
      }
      socket.once('error', reject);
    });
    const connection = new LeanConnection(socket);
    await connection.handshake();
    return connection;
  },
}).catch(fail);
