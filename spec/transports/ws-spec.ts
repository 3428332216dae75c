/**
 * ws:// against raw peers, by the bytes of a real Dask 2022.12.1 exchange
 * (`spec/fixtures/golden/ws-dask-2022.12.1.ts`): a raw TCP client that writes the golden
 * client's bytes, raw servers built on `node:http` and the `ws` package used without
 * rxcomm, and the faults, paths, origins, timeouts and addresses of the ws listener.
 */
import { createHash } from 'node:crypto';
import * as http from 'node:http';
import * as net from 'node:net';
import { filter, firstValueFrom } from 'rxjs';
import { WebSocket, WebSocketServer, type ClientOptions } from 'ws';
import {
  CommClosedError,
  ConfigError,
  connect,
  ConnectTimeoutError,
  daskCodec,
  FatalCommClosedError,
  listen,
  MessageTooLargeError,
  ProtocolError,
  Serialized,
  status$,
  type Comm,
  type CommStatus,
  type ListenConfig,
} from 'rxcomm';
import {
  GOLDEN_WS_ACCEPT,
  GOLDEN_WS_CLIENT_CLOSE_FRAME,
  GOLDEN_WS_CLIENT_COUNT_FRAME,
  GOLDEN_WS_CLIENT_HANDSHAKE_FRAME,
  GOLDEN_WS_CLIENT_IDENTITY_FRAME,
  GOLDEN_WS_CLIENT_MESSAGES,
  GOLDEN_WS_COUNT_1,
  GOLDEN_WS_DECODED,
  GOLDEN_WS_IDENTITY_REPLY,
  GOLDEN_WS_IDENTITY_REQUEST,
  GOLDEN_WS_SERVER_CLOSE_FRAME,
  GOLDEN_WS_SERVER_COUNT_FRAME,
  GOLDEN_WS_SERVER_HANDSHAKE,
  GOLDEN_WS_SERVER_HANDSHAKE_FRAME,
  upgradeRequest,
} from '../fixtures/golden/ws-dask-2022.12.1';
import { collect } from '../helpers/transports';
import { failedConnect } from '../helpers/failed-connect';

/** The peers here decode by themselves, with the public codec; payloads stay opaque. */
const codec = daskCodec({ deserialize: false });
/**
 * What rxcomm sends as its handshake: Dask's (`compression: null`: it never compresses),
 * plus its heartbeat offer with the default deadPeerTimeout, a key Dask ignores.
 */
const RXCOMM_HANDSHAKE = { ...(GOLDEN_WS_DECODED.clientHandshake as object), 'rxcomm-heartbeat': 30000 };

/**
 * What a test opened and has not closed yet, closed after it even when it fails: a failed
 * expectation must not leave a listener or socket behind for the rest of the suite.
 */
const openedInTest = new Set<() => Promise<unknown>>();
function closedAfterTest(close: () => Promise<unknown>): () => Promise<void> {
  let closing: Promise<void> | undefined;
  const once = () => {
    openedInTest.delete(once);
    return (closing ??= close().then(() => undefined));
  };
  openedInTest.add(once);
  return once;
}
afterEach(async () => {
  for (const close of [...openedInTest].reverse()) await close();
});

const waitFor = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function u64(value: number | bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

const asBuffer = (bytes: Uint8Array): Buffer => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

/** One Dask message as a peer sends it over ws: the count, then one message per frame. */
function daskMessagesOf(message: unknown): Buffer[] {
  const frames = codec.encode(message);
  return [u64(frames.length), ...frames.map(asBuffer)];
}

// ---- WebSocket frames on the wire, by hand (RFC 6455 §5.2) ----

interface WireFrame {
  fin: boolean;
  rsv: number;
  opcode: number;
  masked: boolean;
  payload: Buffer;
  raw: Buffer;
}

/** The complete WebSocket frames at the start of `bytes` (an incomplete last one is left out). */
function parseWireFrames(bytes: Buffer): WireFrame[] {
  const frames: WireFrame[] = [];
  let at = 0;
  while (at + 2 <= bytes.length) {
    let length = bytes[at + 1] & 0x7f;
    let offset = at + 2;
    if (length === 126) {
      if (offset + 2 > bytes.length) break;
      length = bytes.readUInt16BE(offset);
      offset += 2;
    } else if (length === 127) {
      if (offset + 8 > bytes.length) break;
      length = Number(bytes.readBigUInt64BE(offset));
      offset += 8;
    }
    const masked = (bytes[at + 1] & 0x80) !== 0;
    const mask = masked ? bytes.subarray(offset, offset + 4) : undefined;
    if (masked) offset += 4;
    if (offset + length > bytes.length) break;
    const payload = Buffer.from(bytes.subarray(offset, offset + length));
    if (mask) for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i % 4];
    frames.push({ fin: (bytes[at] & 0x80) !== 0, rsv: bytes[at] & 0x70, opcode: bytes[at] & 0x0f, masked, payload, raw: bytes.subarray(at, offset + length) });
    at = offset + length;
  }
  return frames;
}

/** A server frame: binary, FIN, unmasked (as servers must), any length. */
function serverFrame(payload: Buffer): Buffer {
  if (payload.length < 126) return Buffer.concat([Buffer.from([0x82, payload.length]), payload]);
  const header = Buffer.alloc(4);
  header[0] = 0x82;
  header[1] = 126;
  header.writeUInt16BE(payload.length, 2);
  if (payload.length > 0xffff) throw new Error('frames under 64 KiB only');
  return Buffer.concat([header, payload]);
}

/** A client frame (masked, as clients must), with the golden capture's masking key. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = Buffer.from('37fa213d', 'hex');
  if (payload.length >= 126) throw new Error('short frames only');
  const masked = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, masked]);
}

/** A raw TCP client: everything it received, kept. */
async function rawTcpClient(port: number, host = '127.0.0.1') {
  const socket = net.connect({ host, port });
  const chunks: Buffer[] = [];
  socket.on('data', (chunk) => chunks.push(chunk));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
  closedAfterTest(async () => {
    socket.destroy();
    await closed;
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  const bytes = () => Buffer.concat(chunks);
  return {
    socket,
    closed,
    bytes,
    /** The HTTP response head, once complete, and the WebSocket frames after it. */
    response() {
      const all = bytes();
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) return undefined;
      const [statusLine, ...lines] = all.subarray(0, end).toString('latin1').split('\r\n');
      const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const body = all.subarray(end + 4);
      return { statusLine, status: Number(statusLine.split(' ')[1]), headers, body, frames: parseWireFrames(body) };
    },
  };
}

/** Sends `request` on a fresh TCP connection and returns the response the server sends before it closes. */
async function httpExchange(port: number, request: string | Buffer): Promise<{ status: number; head: string; body: string }> {
  const client = await rawTcpClient(port);
  client.socket.write(request);
  await client.closed;
  const text = client.bytes().toString('latin1');
  const [head, body = ''] = text.split('\r\n\r\n');
  return { status: Number(head.split(' ')[1]), head, body };
}

/** The data messages of a frame sequence, checking RFC 6455's fragmentation rules on the way. */
function wireMessages(frames: WireFrame[]): { opcode: number; data: Buffer; fragments: number }[] {
  const messages: { opcode: number; data: Buffer; fragments: number }[] = [];
  let open: { opcode: number; parts: Buffer[] } | undefined;
  for (const frame of frames) {
    if (frame.opcode >= 0x8) continue; // control frames may come between fragments
    if (frame.opcode === 0x0) {
      if (!open) throw new Error('a continuation frame with no message to continue');
      open.parts.push(frame.payload);
    } else {
      // A new message while another is still in fragments: the two are interleaved.
      if (open) throw new Error(`a new message (opcode ${frame.opcode}) inside a fragmented one`);
      open = { opcode: frame.opcode, parts: [frame.payload] };
    }
    if (frame.fin) {
      messages.push({ opcode: open.opcode, data: Buffer.concat(open.parts), fragments: open.parts.length });
      open = undefined;
    }
  }
  return messages;
}

/** Groups WebSocket messages into Dask messages: an 8-byte count N, then N frames. */
function daskMessagesIn(messages: { data: Buffer }[]): Buffer[][] {
  const grouped: Buffer[][] = [];
  for (let at = 0; at < messages.length; ) {
    expect(messages[at].data.length).toBe(8);
    const count = Number(messages[at].data.readBigUInt64LE(0));
    if (at + 1 + count > messages.length) break;
    grouped.push(messages.slice(at + 1, at + 1 + count).map((m) => m.data));
    at += 1 + count;
  }
  return grouped;
}

/**
 * An HTTP server that upgrades by hand (the accept key from RFC 6455, no library) and then
 * just records the client's bytes: the frames are the test's to parse and to write.
 */
async function manualFramesServer() {
  const server = http.createServer((_request, response) => response.writeHead(400).end());
  const clients: { request: http.IncomingMessage; socket: net.Socket; frames: () => WireFrame[] }[] = [];
  server.on('upgrade', (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    socket.on('error', () => undefined);
    const chunks = [head];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    const accept = createHash('sha1').update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
    clients.push({ request, socket, frames: () => parseWireFrames(Buffer.concat(chunks)) });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `ws://127.0.0.1:${port}`,
    clients,
    close: closedAfterTest(async () => {
      clients.forEach((client) => client.socket.destroy());
      await new Promise((resolve) => server.close(resolve));
    }),
  };
}

// ---- A WebSocket of the `ws` package, used raw ----

/** One WebSocket (either end), read message by message; Dask messages by hand. */
class RawPeer {
  readonly closed: Promise<{ code: number; reason: string }>;
  private readonly queue: { data: Buffer; binary: boolean }[] = [];
  private wake: (() => void)[] = [];

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer, binary: boolean) => {
      this.queue.push({ data, binary });
      this.wake.splice(0).forEach((wake) => wake());
    });
    ws.on('error', () => undefined);
    this.closed = new Promise((resolve) =>
      ws.on('close', (code: number, reason: Buffer) => {
        resolve({ code, reason: reason.toString() });
        this.wake.splice(0).forEach((wake) => wake());
      }),
    );
  }

  /** The next WebSocket message. */
  async next(): Promise<{ data: Buffer; binary: boolean }> {
    while (this.queue.length === 0) {
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('the WebSocket closed');
      await new Promise<void>((resolve) => this.wake.push(resolve));
    }
    return this.queue.shift()!;
  }

  /** The frames of the next Dask message: an 8-byte binary count N, then N binary messages. */
  async readFrames(): Promise<Buffer[]> {
    const count = await this.next();
    expect(count.binary).toBe(true);
    expect(count.data.length).toBe(8);
    const frames: Buffer[] = [];
    for (let n = Number(count.data.readBigUInt64LE(0)); n > 0; n--) {
      const frame = await this.next();
      expect(frame.binary).toBe(true);
      frames.push(frame.data);
    }
    return frames;
  }

  async read(): Promise<unknown> {
    return codec.decode(await this.readFrames());
  }

  write(message: unknown): void {
    for (const part of daskMessagesOf(message)) this.ws.send(part);
  }

  /** Sends the golden scheduler's handshake: the count, then its 45 bytes. */
  sendGoldenHandshake(): void {
    this.ws.send(GOLDEN_WS_COUNT_1);
    this.ws.send(GOLDEN_WS_SERVER_HANDSHAKE);
  }

  /** The Dask handshake, as a peer that writes first: returns the other side's. */
  async handshake(): Promise<unknown> {
    this.write(RXCOMM_HANDSHAKE);
    return this.read();
  }

  /** Closes cleanly (the closing handshake), or drops the connection if it does not finish. */
  async close(code?: number): Promise<void> {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.close(code);
    await this.closed;
  }
}

/** A `ws` client as a browser stand-in: resolves when open, or with the HTTP answer it got instead. */
async function openWebSocket(url: string, options: ClientOptions = {}): Promise<RawPeer | { status: number; body: string }> {
  const ws = new WebSocket(url, options);
  const peer = new RawPeer(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(peer));
    ws.once('unexpected-response', (request, response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => {
        request.destroy();
        resolve({ status: response.statusCode ?? 0, body });
      });
    });
    ws.once('error', reject);
  });
}

/** Opens a WebSocket and expects it to be accepted; runs the Dask handshake. */
async function acceptedPeer(url: string, options: ClientOptions = {}): Promise<RawPeer> {
  const opened = await openWebSocket(url, options);
  if (!(opened instanceof RawPeer)) throw new Error(`expected the upgrade to succeed, got HTTP ${opened.status}: ${opened.body}`);
  expect(await opened.handshake()).toMatchObject({ compression: null, 'pickle-protocol': 5 });
  return opened;
}

/** An HTTP server whose upgrades make raw `ws` WebSockets, for rxcomm clients to connect to. */
async function rawWsServer() {
  const server = http.createServer((_request, response) => response.writeHead(400).end());
  const upgrades = new WebSocketServer({ noServer: true, perMessageDeflate: false });
  const requests: http.IncomingMessage[] = [];
  const peers: RawPeer[] = [];
  const waiting: ((peer: RawPeer) => void)[] = [];
  server.on('upgrade', (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    requests.push(request);
    upgrades.handleUpgrade(request, socket, head, (ws) => {
      const peer = new RawPeer(ws);
      peers.push(peer);
      waiting.shift()?.(peer);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  let taken = 0;
  return {
    address: `ws://127.0.0.1:${port}`,
    requests,
    /** The next upgraded peer, in order of arrival. */
    nextPeer: () => new Promise<RawPeer>((resolve) => (taken < peers.length ? resolve(peers[taken++]) : waiting.push((p) => (taken++, resolve(p))))),
    close: closedAfterTest(async () => {
      peers.forEach((peer) => peer.ws.terminate());
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }),
  };
}

/** An rxcomm client handshaken with a raw `ws` server that sent the golden scheduler's handshake. */
async function clientOfRawServer() {
  const server = await rawWsServer();
  const connecting = firstValueFrom(connect(server.address, { timeout: 10_000 }));
  const peer = await server.nextPeer();
  const clientHandshake = await peer.read();
  peer.sendGoldenHandshake();
  const comm = await connecting;
  /** How read$ ends (subscribing takes the messages from `read()`: call it once they are read). */
  const ending = () => collect(comm.read$);
  return { server, peer, comm, clientHandshake, ending };
}

/** An HTTP server that answers every WebSocket upgrade with `status`. */
async function refusingServer(status: number) {
  const server = http.createServer();
  server.on('upgrade', (_request, socket: net.Socket) => {
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `ws://127.0.0.1:${port}`,
    close: closedAfterTest(() => new Promise((resolve) => server.close(resolve))),
  };
}

/** A port nobody listens on (just released). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * An rxcomm ws listener that answers each message with `reply(message)` (an echo by
 * default), recording what it got, how each comm ended, and its rejections.
 */
async function wsListener(config: ListenConfig = {}, address = 'ws://127.0.0.1:0', reply: (message: unknown) => unknown = (m) => m) {
  const listener = listen(address, config);
  const comms: Comm[] = [];
  const received: unknown[] = [];
  const endings: (Error | 'completed')[] = [];
  const rejections: CommStatus[] = [];
  const rejected$ = listener.status$.pipe(filter((e) => e.type === 'listen:rejected'));
  const watching = rejected$.subscribe((e) => rejections.push(e));
  const serving = listener.subscribe((comm) => {
    comms.push(comm);
    comm.read$.subscribe({
      next: (message) => {
        received.push(message);
        void comm.write(reply(message)).catch(() => undefined);
      },
      error: (error: Error) => endings.push(error),
      complete: () => endings.push('completed'),
    });
  });
  const { contactAddress, listenAddress } = await firstValueFrom(listener.bound$);
  const port = Number(contactAddress.split(':').pop());
  return {
    listener,
    address: contactAddress,
    listenAddress,
    port,
    url: `ws://127.0.0.1:${port}/`,
    received,
    endings,
    rejections,
    nextRejection: () => firstValueFrom(rejected$) as Promise<Extract<CommStatus, { type: 'listen:rejected' }>>,
    /** Proves the listener still serves an rxcomm client. */
    async stillServes(): Promise<void> {
      const comm = await firstValueFrom(connect(contactAddress, { timeout: 10_000 }));
      await comm.write({ still: 'here' });
      expect(await comm.read()).toEqual({ still: 'here' });
      await comm.close();
    },
    stop: closedAfterTest(async () => {
      serving.unsubscribe();
      watching.unsubscribe();
      await Promise.all(comms.map((comm) => comm.close()));
    }),
  };
}

describe('ws listener against the golden Dask client bytes', () => {
  it.each([
    ['exactly as the Dask client sent them', []],
    [
      'offering permessage-deflate and a subprotocol',
      ['Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits', 'Sec-WebSocket-Protocol: dask'],
    ],
  ])('should answer the upgrade, handshake and identity request (%s) with plain binary frames', async (_name, offers) => {
    const server = await wsListener({}, 'ws://127.0.0.1:0', () => GOLDEN_WS_DECODED.identityReply);
    const client = await rawTcpClient(server.port);

    // #0: the upgrade. The listener writes its handshake first, right after the 101.
    client.socket.write(upgradeRequest(server.port, offers));
    await waitFor(() => (client.response()?.frames.length ?? 0) >= 2);
    const response = client.response()!;
    expect(response.statusLine).toBe('HTTP/1.1 101 Switching Protocols');
    expect(response.headers.get('upgrade')).toMatch(/^websocket$/i);
    expect(response.headers.get('sec-websocket-accept')).toBe(GOLDEN_WS_ACCEPT);
    expect(response.headers.has('sec-websocket-extensions')).toBe(false);
    expect(response.headers.has('sec-websocket-protocol')).toBe(false); // Dask never selects one

    const [count, handshake] = response.frames;
    expect(count.raw).toEqual(GOLDEN_WS_SERVER_COUNT_FRAME); // 82 08 01 00 00 00 00 00 00 00
    expect(handshake).toMatchObject({ fin: true, rsv: 0, opcode: 2, masked: false });
    expect(codec.decode([handshake.payload])).toEqual(RXCOMM_HANDSHAKE);

    // #4-#7: count, handshake, count, identity request, masked as the capture has them.
    client.socket.write(GOLDEN_WS_CLIENT_MESSAGES);
    await waitFor(() => client.response()!.frames.length >= 4);
    expect(server.received).toEqual([GOLDEN_WS_DECODED.identityRequest]);
    const [replyCount, reply] = client.response()!.frames.slice(2);
    expect(replyCount.raw).toEqual(GOLDEN_WS_SERVER_COUNT_FRAME);
    expect(reply).toMatchObject({ fin: true, rsv: 0, opcode: 2, masked: false });
    expect(codec.decode([reply.payload])).toEqual(GOLDEN_WS_DECODED.identityReply);
    expect(reply.payload).toEqual(GOLDEN_WS_IDENTITY_REPLY); // the very bytes the scheduler sent
    expect(client.response()!.frames).toHaveLength(4); // nothing else: no ping, no text

    // #10: the client's close (1000) gets #11 back, and the server comm's stream ends cleanly.
    client.socket.write(GOLDEN_WS_CLIENT_CLOSE_FRAME);
    await client.closed;
    const frames = client.response()!.frames;
    expect(frames).toHaveLength(5);
    expect(frames[4].raw).toEqual(GOLDEN_WS_SERVER_CLOSE_FRAME); // 88 02 03 e8
    expect(client.response()!.body.length).toBe(frames.reduce((n, f) => n + f.raw.length, 0));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings).toEqual(['completed']);
    expect(server.rejections).toEqual([]);
    await server.stop();
  });

  it("should end the stream cleanly on the empty close frame Dask's client sends (1005), answering with an empty one", async () => {
    const server = await wsListener();
    const client = await rawTcpClient(server.port);
    client.socket.write(Buffer.concat([upgradeRequest(server.port), GOLDEN_WS_CLIENT_MESSAGES]));
    await waitFor(() => (client.response()?.frames.length ?? 0) >= 4);
    client.socket.write(clientFrame(0x8, Buffer.alloc(0))); // 88 80 37 fa 21 3d
    await client.closed;
    expect(client.response()!.frames[4].raw).toEqual(Buffer.from('8800', 'hex'));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings).toEqual(['completed']);
    await server.stop();
  });

  it('should accept the golden bytes sent all at once, upgrade and messages in one write', async () => {
    const server = await wsListener();
    const client = await rawTcpClient(server.port);
    client.socket.write(Buffer.concat([upgradeRequest(server.port), GOLDEN_WS_CLIENT_MESSAGES, GOLDEN_WS_CLIENT_CLOSE_FRAME]));
    await client.closed;
    expect(server.received).toEqual([GOLDEN_WS_DECODED.identityRequest]);
    await waitFor(() => server.endings.length === 1);
    expect(server.endings).toEqual(['completed']);
    await server.stop();
  });

  it('should accept the golden bytes arriving one byte at a time', async () => {
    const server = await wsListener();
    const client = await rawTcpClient(server.port);
    client.socket.setNoDelay(true);
    const bytes = Buffer.concat([upgradeRequest(server.port), GOLDEN_WS_CLIENT_COUNT_FRAME, GOLDEN_WS_CLIENT_HANDSHAKE_FRAME, GOLDEN_WS_CLIENT_COUNT_FRAME, GOLDEN_WS_CLIENT_IDENTITY_FRAME]);
    for (let at = 0; at < bytes.length; at++) {
      await new Promise((resolve) => client.socket.write(bytes.subarray(at, at + 1), resolve));
    }
    await waitFor(() => server.received.length === 1);
    expect(server.received).toEqual([GOLDEN_WS_DECODED.identityRequest]);
    client.socket.write(GOLDEN_WS_CLIENT_CLOSE_FRAME);
    await client.closed;
    await waitFor(() => server.endings.length === 1);
    expect(server.endings).toEqual(['completed']);
    await server.stop();
  });
});

describe('ws client against a raw WebSocket server', () => {
  it('should write its handshake first, as a count and one frame, on path / with no subprotocol nor extension', async () => {
    const { server, peer, comm, clientHandshake } = await clientOfRawServer();
    expect(clientHandshake).toEqual(RXCOMM_HANDSHAKE);
    expect(comm.remoteInfo).toMatchObject(GOLDEN_WS_DECODED.serverHandshake);
    expect(comm.handshakeOptions).toEqual({ compression: null, 'pickle-protocol': 5 });
    const [request] = server.requests;
    expect(request.url).toBe('/');
    expect(request.method).toBe('GET');
    expect(request.headers['sec-websocket-protocol']).toBeUndefined();
    expect(request.headers['sec-websocket-extensions']).toBeUndefined();
    expect(request.headers.origin).toBeUndefined();
    await comm.close();
    expect(await peer.closed).toMatchObject({ code: 1000 });
    await server.close();
  });

  it('should speak to a server that frames by hand: handshake first, masked binary frames, fragments never interleaved', async () => {
    const server = await manualFramesServer();
    const connecting = firstValueFrom(connect(server.address, { timeout: 10_000 }));
    await waitFor(() => server.clients.length === 1 && server.clients[0].frames().length >= 2);
    const client = server.clients[0];
    expect(client.request.url).toBe('/');
    expect(client.request.headers['sec-websocket-version']).toBe('13');
    expect(client.request.headers['sec-websocket-protocol']).toBeUndefined();
    expect(client.request.headers['sec-websocket-extensions']).toBeUndefined();
    // rxcomm wrote its handshake before the server said anything
    const [count, handshake] = client.frames();
    expect(count).toMatchObject({ fin: true, rsv: 0, opcode: 2, masked: true, payload: GOLDEN_WS_COUNT_1 });
    expect(handshake).toMatchObject({ fin: true, rsv: 0, opcode: 2, masked: true });
    expect(codec.decode([handshake.payload])).toEqual(RXCOMM_HANDSHAKE);
    client.socket.write(Buffer.concat([GOLDEN_WS_SERVER_COUNT_FRAME, GOLDEN_WS_SERVER_HANDSHAKE_FRAME]));
    const comm = await connecting;
    expect(comm.remoteInfo).toMatchObject(GOLDEN_WS_DECODED.serverHandshake);

    await comm.write({ op: 'identity', reply: true });
    // Then, concurrently: large inline bins (sent as fragments, uncopied) between small messages.
    const sent: { i: number; big?: Buffer; data?: Serialized }[] = Array.from({ length: 20 }, (_, i) =>
      i % 3 === 0 ? { i, big: Buffer.alloc(100_000 + i, i) } : { i, data: new Serialized({ serializer: 'pickle' }, [Buffer.from(`p${i}`), Buffer.alloc(i)]) },
    );
    const writes = sent.map((message) => comm.write(message));
    const expectedFrames = 2 + 2 + sent.reduce((n, m) => n + (m.big ? 2 : 5), 0);
    await waitFor(() => client.frames().filter((f) => f.fin && f.opcode !== 8).length >= expectedFrames);
    await Promise.all(writes);

    const frames = client.frames();
    expect(frames.every((frame) => frame.masked && frame.rsv === 0)).toBe(true);
    const messages = wireMessages(frames); // throws if fragments of two messages interleave
    expect(messages.every((message) => message.opcode === 2)).toBe(true);
    expect(messages.some((message) => message.fragments > 1)).toBe(true); // the big bins did go in fragments
    const dask = daskMessagesIn(messages);
    expect(dask).toHaveLength(2 + sent.length);
    expect(dask[1]).toEqual([GOLDEN_WS_IDENTITY_REQUEST]);
    const decoded = dask.slice(2).map((message) => codec.decode(message) as { i: number; big?: Buffer; data?: Serialized });
    expect(decoded.map((message) => message.i)).toEqual(sent.map((message) => message.i));
    decoded.forEach((message, n) => {
      const original = sent[n];
      if (original.big) expect(original.big.equals(message.big!)).toBe(true);
      else expect(message.data!.frames.map(asBuffer)).toEqual(original.data!.frames);
    });

    // Closing: a masked close frame with code 1000; the golden answer ends it.
    const closing = comm.close();
    await waitFor(() => client.frames().some((frame) => frame.opcode === 8));
    expect(client.frames().find((frame) => frame.opcode === 8)!.payload).toEqual(Buffer.from('03e8', 'hex'));
    client.socket.end(GOLDEN_WS_SERVER_CLOSE_FRAME);
    await closing;
    await server.close();
  });

  it("should send the golden identity request and decode the golden scheduler's reply", async () => {
    const { server, peer, comm, ending } = await clientOfRawServer();
    await comm.write({ op: 'identity', reply: true });
    const count = await peer.next();
    const request = await peer.next();
    expect(count).toEqual({ data: GOLDEN_WS_COUNT_1, binary: true });
    expect(request).toEqual({ data: GOLDEN_WS_IDENTITY_REQUEST, binary: true });
    peer.ws.send(GOLDEN_WS_COUNT_1);
    peer.ws.send(GOLDEN_WS_IDENTITY_REPLY);
    expect(await comm.read()).toEqual(GOLDEN_WS_DECODED.identityReply);
    await comm.close();
    expect(await ending()).toEqual({ values: [] });
    await server.close();
  });

  it('should send each multi-frame message as its count then exactly its frames, never interleaved', async () => {
    const { server, peer, comm } = await clientOfRawServer();
    const messages = Array.from({ length: 50 }, (_, i) => ({
      i,
      data: new Serialized({ serializer: 'pickle', writeable: [] }, [Buffer.alloc(2000 + i, i), Buffer.from(`payload ${i}`), Buffer.alloc(0)]),
    }));
    // Written concurrently, past the high-water mark: some writes wait while others go out.
    const writes = messages.map((message) => comm.write(message));
    for (const { i } of messages) {
      const frames = await peer.readFrames(); // asserts count, then that many binary messages
      expect(frames).toHaveLength(5); // frame 0, the sub-header, 3 payload frames
      const decoded = codec.decode(frames) as { i: number; data: Serialized };
      expect(decoded.i).toBe(i);
      expect(decoded.data).toBeInstanceOf(Serialized);
      expect(decoded.data.frames.map(asBuffer)).toEqual([Buffer.alloc(2000 + i, i), Buffer.from(`payload ${i}`), Buffer.alloc(0)]);
    }
    await Promise.all(writes);
    await comm.close();
    await server.close();
  });

  it('should keep messages whole when many are written concurrently with a tiny writeHighWaterMark', async () => {
    const server = await rawWsServer();
    const connecting = firstValueFrom(connect(server.address, { writeHighWaterMark: 64 }));
    const peer = await server.nextPeer();
    await peer.read();
    peer.sendGoldenHandshake();
    const comm = await connecting;
    const writes = Array.from({ length: 200 }, (_, i) =>
      comm.write({ i, data: new Serialized({ serializer: 'pickle' }, [Buffer.alloc(100, i), Buffer.alloc(i)]) }),
    );
    for (let i = 0; i < 200; i++) {
      const decoded = codec.decode(await peer.readFrames()) as { i: number; data: Serialized };
      expect(decoded.i).toBe(i);
      expect(decoded.data.frames.map((f) => f.length)).toEqual([100, i]);
    }
    await Promise.all(writes);
    await comm.close();
    await server.close();
  });

  it('should read messages of many frames that the peer sends', async () => {
    const { server, peer, comm } = await clientOfRawServer();
    const message = { op: 'many', data: new Serialized({ serializer: 'pickle' }, [Buffer.from('a'), Buffer.alloc(0), Buffer.alloc(70_000, 3)]) };
    peer.write(message);
    const got = (await comm.read()) as { op: string; data: Serialized };
    expect(got.op).toBe('many');
    expect(got.data.frames.map(asBuffer)).toEqual(message.data.frames);
    await comm.close();
    await server.close();
  });
  it('should take a handshake and a message that arrive in the same TCP chunk as the 101', async () => {
    const server = http.createServer();
    const sockets: net.Socket[] = [];
    server.on('upgrade', (request: http.IncomingMessage, socket: net.Socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      const accept = createHash('sha1').update(`${request.headers['sec-websocket-key']}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
      // As a Dask 2022.12.1 listener does: it writes its handshake without waiting; here a message too.
      socket.write(
        Buffer.concat([
          Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`),
          GOLDEN_WS_SERVER_COUNT_FRAME,
          GOLDEN_WS_SERVER_HANDSHAKE_FRAME,
          ...daskMessagesOf(GOLDEN_WS_DECODED.identityReply).map(serverFrame),
        ]),
      );
    });
    closedAfterTest(async () => {
      sockets.forEach((socket) => socket.destroy());
      await new Promise((resolve) => server.close(resolve));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const comm = await firstValueFrom(connect(`ws://127.0.0.1:${(server.address() as net.AddressInfo).port}`, { timeout: 10_000 }));
    expect(comm.remoteInfo).toMatchObject(GOLDEN_WS_DECODED.serverHandshake);
    expect(await comm.read()).toEqual(GOLDEN_WS_DECODED.identityReply);
    comm.abort();
  });

  it('should pause reading past readHighWaterMark and deliver every message, in order, once read', async () => {
    const server = await rawWsServer();
    const connecting = firstValueFrom(connect(server.address, { readHighWaterMark: 2 }));
    const peer = await server.nextPeer();
    await peer.read();
    peer.sendGoldenHandshake();
    const comm = await connecting;
    for (let i = 0; i < 200; i++) peer.write({ i, pad: Buffer.alloc(1000) });
    await sleep(50); // let them pile up unread
    for (let i = 0; i < 200; i++) expect(((await comm.read()) as { i: number }).i).toBe(i);
    await comm.close();
    await server.close();
  });

  it('should answer pings with pongs, outside the message stream', async () => {
    const { server, peer, comm } = await clientOfRawServer();
    const pong = new Promise<Buffer>((resolve) => peer.ws.once('pong', resolve));
    peer.ws.ping(Buffer.from('are you there'));
    expect(await pong).toEqual(Buffer.from('are you there'));
    peer.write({ after: 'ping' });
    expect(await comm.read()).toEqual({ after: 'ping' });
    await comm.close();
    await server.close();
  });

  it('should drop the connection without a close frame on abort, so the peer sees an error (1006)', async () => {
    const { server, peer, comm, ending } = await clientOfRawServer();
    comm.abort();
    expect(await peer.closed).toMatchObject({ code: 1006 });
    expect(await ending()).toEqual({ values: [] }); // this side asked for it: read$ completes
    await server.close();
  });
});

describe('ws faults', () => {
  it('should error read$ with a ProtocolError when the peer sends a text message', async () => {
    const { server, peer, ending } = await clientOfRawServer();
    peer.ws.send('{"op": "identity"}');
    const { error } = await ending();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/text/);
    await server.close();
  });

  it('should error read$ with a ProtocolError when the peer sends a 7-byte count', async () => {
    const { server, peer, ending } = await clientOfRawServer();
    peer.ws.send(Buffer.alloc(7));
    const { error } = await ending();
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/8-byte frame count/);
    await server.close();
  });

  it('should error read$ with a ProtocolError when the peer sends count and frame 0 in one message', async () => {
    const { server, peer, ending } = await clientOfRawServer();
    peer.ws.send(Buffer.concat([GOLDEN_WS_COUNT_1, GOLDEN_WS_IDENTITY_REQUEST]));
    const { error } = await ending();
    expect(error).toBeInstanceOf(ProtocolError);
    await server.close();
  });

  it('should error read$ with a ProtocolError when the peer closes cleanly in the middle of a message', async () => {
    const { server, peer, ending } = await clientOfRawServer();
    peer.ws.send(u64(2));
    peer.ws.send(GOLDEN_WS_IDENTITY_REQUEST);
    await peer.close(1000);
    const { values, error } = await ending();
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/middle of a message/);
    await server.close();
  });

  it('should error read$ with a CommClosedError, not complete it, when the peer drops the TCP connection without a close frame', async () => {
    const { server, peer, comm, ending } = await clientOfRawServer();
    peer.write({ before: 'the drop' });
    expect(await comm.read()).toEqual({ before: 'the drop' });
    peer.ws.terminate();
    const { error } = await ending();
    expect(error).toBeInstanceOf(CommClosedError);
    expect(error).not.toBeInstanceOf(ProtocolError);
    await expect(comm.write('after')).rejects.toBeInstanceOf(CommClosedError);
    await server.close();
  });

  it.each([
    ['a close frame with code 1000', 1000],
    ["an empty close frame (code 1005, as Dask's client sends)", undefined],
    ['a close frame with code 1001 (going away)', 1001],
  ])('should complete read$ when the peer closes with %s', async (_name, code) => {
    const { server, peer, ending } = await clientOfRawServer();
    peer.write({ last: true });
    await peer.close(code);
    expect(await ending()).toEqual({ values: [{ last: true }] });
    await server.close();
  });

  it('should error read$ when the peer closes with an error code (1011)', async () => {
    const { server, peer, ending } = await clientOfRawServer();
    await peer.close(1011);
    const { error } = await ending();
    expect(error).toBeInstanceOf(CommClosedError);
    expect((error as Error).message).toMatch(/1011/);
    await server.close();
  });

  it('should drop a listener comm whose frames sum past maxMessageSize with MessageTooLargeError, and keep serving', async () => {
    const server = await wsListener({ maxMessageSize: 1000 });
    const peer = await acceptedPeer(server.url);
    peer.ws.send(u64(3));
    for (let i = 0; i < 3; i++) peer.ws.send(Buffer.alloc(400)); // each within the limit, not together
    await waitFor(() => server.endings.length === 1);
    const error = server.endings[0] as MessageTooLargeError;
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect(error.limit).toBe(1000);
    await peer.closed;
    expect(server.received).toEqual([]);
    await server.stillServes();
    await server.stop();
  });

  it('should drop a listener comm sent one frame larger than maxMessageSize with a ProtocolError, and keep serving', async () => {
    const server = await wsListener({ maxMessageSize: 1000 });
    const peer = await acceptedPeer(server.url);
    peer.ws.send(u64(1));
    peer.ws.send(Buffer.alloc(5000));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBeInstanceOf(ProtocolError);
    const closed = await peer.closed;
    expect([1006, 1009]).toContain(closed.code); // the listener hung up (1009: message too big)
    expect(server.received).toEqual([]);
    await server.stillServes();
    await server.stop();
  });

  it('should drop a listener comm sent a text message with a ProtocolError, and keep serving', async () => {
    const server = await wsListener();
    const peer = await acceptedPeer(server.url);
    peer.ws.send('hello');
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBeInstanceOf(ProtocolError);
    await peer.closed;
    await server.stillServes();
    await server.stop();
  });

  it('should refuse a write larger than maxMessageSize and stay usable', async () => {
    const server = await wsListener();
    const comm = await firstValueFrom(connect(server.address, { maxMessageSize: 1000 }));
    await expect(comm.write({ data: Buffer.alloc(2000) })).rejects.toBeInstanceOf(MessageTooLargeError);
    await comm.write({ small: true });
    expect(await comm.read()).toEqual({ small: true });
    await comm.close();
    await server.stop();
  });
});

describe('ws listener paths', () => {
  it('should answer an upgrade to another path with 404 and report it on status$', async () => {
    const server = await wsListener();
    const rejection = server.nextRejection();
    const response = await httpExchange(server.port, upgradeRequest(server.port).toString('latin1').replace('GET / ', 'GET /dask '));
    expect(response.status).toBe(404);
    expect(response.head).not.toMatch(/sec-websocket-accept/i);
    const event = await rejection;
    expect(event).toMatchObject({ type: 'listen:rejected', listenAddress: server.listenAddress });
    expect(event.error.message).toMatch(/\/dask/);
    await server.stillServes();
    await server.stop();
  });

  it('should accept path / with a query string', async () => {
    const server = await wsListener();
    const peer = await acceptedPeer(`ws://127.0.0.1:${server.port}/?x=1`);
    peer.write({ via: 'query' });
    expect(await peer.read()).toEqual({ via: 'query' });
    await peer.close();
    expect(server.rejections).toEqual([]);
    await server.stop();
  });

  it('should answer a plain GET, with no upgrade, with 426', async () => {
    const server = await wsListener();
    const response = await httpExchange(server.port, `GET / HTTP/1.1\r\nHost: 127.0.0.1:${server.port}\r\nConnection: close\r\n\r\n`);
    expect(response.status).toBe(426);
    expect(response.head).toMatch(/^upgrade: websocket$/im);
    await server.stillServes();
    await server.stop();
  });

  it('should decline permessage-deflate that a ws client offers', async () => {
    const server = await wsListener();
    const peer = await acceptedPeer(server.url, { perMessageDeflate: true });
    expect(peer.ws.extensions).toBe('');
    peer.write({ big: Buffer.alloc(10_000, 'a') }); // would be compressed, were it negotiated
    expect(await peer.read()).toEqual({ big: Buffer.alloc(10_000, 'a') });
    await peer.close();
    await server.stop();
  });

  it('should answer an invalid upgrade (no Sec-WebSocket-Key) with 400, report it and keep serving', async () => {
    const server = await wsListener();
    const rejection = server.nextRejection();
    const request = upgradeRequest(server.port).toString('latin1').replace(/Sec-WebSocket-Key: [^\r]*\r\n/, '');
    const response = await httpExchange(server.port, request);
    expect(response.status).toBe(400);
    expect((await rejection).error.message).toMatch(/Sec-WebSocket-Key/);
    await server.stillServes();
    await server.stop();
  });

  it.each(['http://[', 'http://:99999/'])(
    'should refuse an upgrade whose request target (%s) is not a URL with an HTTP error, and keep serving',
    async (target) => {
      const server = await wsListener({ handshakeTimeout: 1000 });
      const request = upgradeRequest(server.port).toString('latin1').replace('GET / ', `GET ${target} `);
      const client = await rawTcpClient(server.port);
      client.socket.write(request);
      // refused at once; a listener that hangs up without answering is not waited for past 3 s
      await Promise.race([client.closed, sleep(3000)]);
      expect(client.response()?.status).toBeGreaterThanOrEqual(400);
      await server.stillServes();
      await server.stop();
    },
  );
});

describe('ws listener origins', () => {
  async function expectRefused(server: Awaited<ReturnType<typeof wsListener>>, origin: string) {
    const rejection = server.nextRejection();
    const answer = await openWebSocket(server.url, { origin });
    expect(answer).not.toBeInstanceOf(RawPeer);
    expect(answer).toMatchObject({ status: 403 });
    const event = await rejection;
    expect(event).toMatchObject({ type: 'listen:rejected', listenAddress: server.listenAddress });
    expect(event.error.message).toContain(origin);
  }

  async function expectAccepted(server: Awaited<ReturnType<typeof wsListener>>, origin?: string) {
    const peer = await acceptedPeer(server.url, origin === undefined ? {} : { origin });
    peer.write({ from: origin ?? 'no origin' });
    expect(await peer.read()).toEqual({ from: origin ?? 'no origin' });
    await peer.close();
  }

  it('should accept requests without an Origin header (programs, not pages)', async () => {
    const server = await wsListener();
    await expectAccepted(server);
    expect(server.rejections).toEqual([]);
    await server.stop();
  });

  it('should accept a same-origin page (Origin host:port equals Host)', async () => {
    const server = await wsListener();
    await expectAccepted(server, `http://127.0.0.1:${server.port}`);
    expect(server.rejections).toEqual([]);
    await server.stop();
  });

  it('should refuse a cross-origin page with 403 and report the origin on status$', async () => {
    const server = await wsListener();
    await expectRefused(server, 'https://evil.example');
    await server.stillServes();
    await server.stop();
  });

  it.each([
    ['another port on the same host', (port: number) => `http://127.0.0.1:${port + 1}`],
    ['the same host without its port', () => 'http://127.0.0.1'],
    ['another loopback name', (port: number) => `http://localhost:${port}`],
    ['an opaque origin (sandboxed page, file)', () => 'null'],
  ])('should refuse %s by default', async (_name, originFor) => {
    const server = await wsListener();
    await expectRefused(server, originFor(server.port));
    await server.stop();
  });

  it('should accept an origin in allowedOrigins exactly, and still refuse others', async () => {
    const server = await wsListener({ allowedOrigins: ['https://app.example'] });
    await expectAccepted(server, 'https://app.example');
    await expectAccepted(server, `http://127.0.0.1:${server.port}`); // same-origin still is
    await expectAccepted(server); // and programs
    for (const origin of [
      'https://evil.example',
      'http://app.example',
      'https://app.example:8443',
      'https://app.example.evil.example',
      'https://sub.app.example',
      'https://evil-app.example',
    ]) {
      await expectRefused(server, origin);
    }
    await server.stop();
  });

  it('should match allowedOrigins case-insensitively, as origins are', async () => {
    const server = await wsListener({ allowedOrigins: ['https://APP.example'] });
    await expectAccepted(server, 'https://app.example');
    await expectRefused(server, 'https://evil.example');
    await server.stop();
  });

  it('should not take an allowedOrigins entry that no Origin header can match (a trailing slash) and then refuse its page', async () => {
    // Either answer is sound: refuse the entry (ConfigError), or read it as the origin it names.
    let server: Awaited<ReturnType<typeof wsListener>>;
    try {
      server = await wsListener({ allowedOrigins: ['https://app.example/'] });
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      return;
    }
    await expectRefused(server, 'https://evil.example');
    await expectAccepted(server, 'https://app.example'); // what a browser sends for that page
    await server.stop();
  });

  it("should accept any origin with allowedOrigins: ['*']", async () => {
    const server = await wsListener({ allowedOrigins: ['*'] });
    await expectAccepted(server, 'https://evil.example');
    await expectAccepted(server, 'null');
    expect(server.rejections).toEqual([]);
    await server.stop();
  });

  it.each([
    ['an entry without a scheme', ['app.example']],
    ['an entry with a path', ['https://a.example/path']],
    ["'*' as a string, not in an array", '*'],
    ['an origin as a string, not in an array', 'https://app.example'],
    ['an entry that is not a string', [42]],
  ])('should refuse allowedOrigins with %s: listen() throws a ConfigError', (_name, allowedOrigins) => {
    expect(() => listen('ws://127.0.0.1:0', { allowedOrigins: allowedOrigins as unknown as string[] })).toThrow(ConfigError);
  });

  it('should say allowedOrigins belongs to listen() when given to connect()', () => {
    expect(() => connect('ws://127.0.0.1:1', { allowedOrigins: ['*'] } as never)).toThrow(
      new ConfigError("'allowedOrigins' is an option of listen(), not of connect()"),
    );
  });
});

describe('ws connect failures', () => {
  it.each([403, 404])('should fail at once, without retrying, when the server answers the upgrade with %i', async (status) => {
    const server = await refusingServer(status);
    const { error, retries } = await failedConnect(server.address);
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toContain(`HTTP ${status}`);
    expect(retries).toBe(0);
    await server.close();
  });

  it('should retry an upgrade answered with 503 until its timeout', async () => {
    const server = await refusingServer(503);
    const { error, retries } = await failedConnect(server.address, undefined, 500);
    expect(error).toBeInstanceOf(ConnectTimeoutError);
    expect(retries).toBeGreaterThan(0);
    expect((error.cause as Error).message).toContain('HTTP 503');
    await server.close();
  });

  it('should retry a refused connection until its timeout', async () => {
    const address = `ws://127.0.0.1:${await freePort()}`;
    const { error, retries } = await failedConnect(address, undefined, 500);
    expect(error).toBeInstanceOf(ConnectTimeoutError);
    expect(retries).toBeGreaterThan(0);
    expect(error.cause).toBeInstanceOf(CommClosedError);
    expect((error.cause as Error).message).toMatch(/ECONNREFUSED/);
  });

  it('should fail with a ProtocolError, without retrying, when the server is not Dask (sends a text message)', async () => {
    const server = await rawWsServer();
    const retries: CommStatus[] = [];
    const sub = status$.pipe(filter((e) => e.type === 'connect:retry' && e.address === server.address)).subscribe((e) => retries.push(e));
    const connecting = firstValueFrom(connect(server.address, { timeout: 10_000 })).catch((err: Error) => err);
    const peer = await server.nextPeer();
    peer.ws.send('hello, I am not Dask');
    const error = await connecting;
    sub.unsubscribe();
    expect(error).toBeInstanceOf(ProtocolError);
    expect(retries).toEqual([]);
    await server.close();
  });
});

describe('ws handshake timeout', () => {
  it('should drop a TCP client that sends nothing within handshakeTimeout, and report it', async () => {
    const server = await wsListener({ handshakeTimeout: 300 });
    const rejection = server.nextRejection();
    const silent = await rawTcpClient(server.port);
    const event = await rejection;
    expect(event.error.message).toMatch(/no WebSocket upgrade within 300 ms/);
    await silent.closed;
    expect(silent.bytes().length).toBe(0);
    await server.stillServes();
    await server.stop();
  });

  it('should drop a client that sends half an upgrade request within handshakeTimeout', async () => {
    const server = await wsListener({ handshakeTimeout: 300 });
    const rejection = server.nextRejection();
    const slow = await rawTcpClient(server.port);
    slow.socket.write(upgradeRequest(server.port).subarray(0, 40));
    await rejection;
    await slow.closed;
    await server.stop();
  });

  it('should drop a client that trickles its upgrade request past handshakeTimeout', async () => {
    const server = await wsListener({ handshakeTimeout: 300 });
    const rejection = server.nextRejection();
    const slow = await rawTcpClient(server.port);
    const request = upgradeRequest(server.port);
    // 10 bytes every 100 ms: never idle for 300 ms, but 1.6 s in all, five times the limit
    let sent = 0;
    while (sent < request.length && !slow.socket.destroyed) {
      slow.socket.write(request.subarray(sent, sent + 10));
      sent += 10;
      await sleep(100);
    }
    const upgraded = slow.response()?.status === 101;
    expect(upgraded).toBe(false);
    await rejection;
    await slow.closed;
    await server.stop();
  });

  it('should drop an upgraded client that never sends its Dask handshake', async () => {
    const server = await wsListener({ handshakeTimeout: 300 });
    const rejection = server.nextRejection();
    const opened = await openWebSocket(server.url);
    expect(opened).toBeInstanceOf(RawPeer);
    const event = await rejection;
    expect(event.error.message).toMatch(/handshake/);
    await (opened as RawPeer).closed;
    await server.stop();
  });

  it('should not drop an idle upgraded comm after handshakeTimeout', async () => {
    const server = await wsListener({ handshakeTimeout: 300 });
    const comm = await firstValueFrom(connect(server.address));
    await sleep(900);
    await comm.write({ still: 'open' });
    expect(await comm.read()).toEqual({ still: 'open' });
    expect(server.rejections).toEqual([]);
    await comm.close();
    await server.stop();
  });
});

describe('ws addressing', () => {
  it.each([
    ['IPv6 loopback', 'ws://[::1]:0', 'ws://[::1]:'],
    ['a host name', 'ws://localhost:0', 'ws://localhost:'],
  ])('should listen and connect on %s', async (_name, address, contactPrefix) => {
    const server = await wsListener({}, address);
    expect(server.address.startsWith(contactPrefix)).toBe(true);
    const comm = await firstValueFrom(connect(server.address));
    await comm.write('hi');
    expect(await comm.read()).toBe('hi');
    expect(comm.peerAddress.startsWith('ws://')).toBe(true);
    expect(comm.peerAddress.endsWith(`:${server.port}`)).toBe(true);
    await comm.close();
    await server.stop();
  });

  it('should bind a wildcard and advertise the contactHost given, with the bound port', async () => {
    const server = await wsListener({ contactHost: '127.0.0.1' }, 'ws://0.0.0.0:0');
    expect(server.port).toBeGreaterThan(0);
    expect(server.address).toBe(`ws://127.0.0.1:${server.port}`);
    expect(server.listenAddress).toBe(`ws://0.0.0.0:${server.port}`);
    expect(server.listener.listenAddress).toBe(server.listenAddress);
    await server.stillServes();
    await server.stop();
  });

  it('should advertise a connectable address for a wildcard without contactHost', async () => {
    const server = await wsListener({}, 'ws://0.0.0.0:0');
    expect(server.address).not.toMatch(/0\.0\.0\.0/);
    expect(server.address).toMatch(/^ws:\/\/[^:]+:\d+$/);
    await server.stillServes();
    await server.stop();
  });

  it('should report the real bound port in listenAddress and contactAddress', async () => {
    const server = await wsListener();
    expect(server.port).toBeGreaterThan(0);
    expect(server.listener.listenAddress).toBe(`ws://127.0.0.1:${server.port}`);
    expect(server.listener.contactAddress).toBe(`ws://127.0.0.1:${server.port}`);
    await server.stop();
  });

  it('should bind only the host it is given (unlike Dask, which binds every interface)', async () => {
    const server = await wsListener();
    const refused = await new Promise<string | undefined>((resolve) => {
      const socket = net.connect({ host: '::1', port: server.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(undefined);
      });
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code));
    });
    expect(refused).toBe('ECONNREFUSED');
    await server.stop();
  });
});
