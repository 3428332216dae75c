import { spawn } from 'node:child_process';
import * as http from 'node:http';
import * as net from 'node:net';
import { filter, firstValueFrom, take, toArray } from 'rxjs';
import {
  CommClosedError,
  connect,
  listen,
  MessageTooLargeError,
  ProtocolError,
  status$,
  type Comm,
  type CommStatus,
  type ListenConfig,
} from 'rxcomm';
import { golden, GOLDEN_IDENTITY_REPLY } from '../fixtures/golden';

/** What a real Dask 2022.12.1 client sent a scheduler: its handshake (69 bytes), then identity (44). */
const daskClientStream = golden('dask-2022.12.1-client-to-scheduler.bin');
/** What the scheduler answered: its handshake (69 bytes), then the identity reply. */
const daskSchedulerStream = golden('dask-2022.12.1-scheduler-to-client.bin');
const daskHandshake = daskClientStream.subarray(0, 69);
const identityRequest = daskClientStream.subarray(69);

/** A plain TCP server on loopback that runs `onSocket` for each client. */
async function rawServer(onSocket: (socket: net.Socket) => void | Promise<void>) {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    void onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `tcp://127.0.0.1:${port}`,
    async close() {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** An rxcomm echo listener that records how each of its comms ended. */
async function echoListener(config: ListenConfig = {}) {
  const endings: (Error | 'completed')[] = [];
  const listener = listen('tcp://127.0.0.1:0', config);
  const serving = listener.subscribe((comm) =>
    comm.read$.subscribe({
      next: (message) => void comm.write(message).catch(() => undefined),
      error: (error: Error) => endings.push(error),
      complete: () => endings.push('completed'),
    }),
  );
  const { contactAddress } = await firstValueFrom(listener.bound$);
  const port = Number(contactAddress.split(':').pop());
  return {
    address: contactAddress,
    endings,
    /** Sends a Dask handshake and then `bytes` from a raw socket; resolves when the server closes it. */
    async sendRaw(bytes: Buffer, end = true): Promise<void> {
      const socket = net.connect({ host: '127.0.0.1', port });
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
      socket.write(Buffer.concat([daskHandshake, bytes]));
      if (end) socket.end();
      await closed;
    },
    async stillServes(): Promise<void> {
      const comm = await firstValueFrom(connect(contactAddress));
      await comm.write({ ok: true });
      expect(await comm.read()).toEqual({ ok: true });
      await comm.close();
    },
    stop: () => serving.unsubscribe(),
  };
}

const waitFor = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};

describe('tcp against Dask golden bytes', () => {
  it("should send Dask's identity bytes and decode a scheduler's reply arriving byte by byte", async () => {
    const received: Buffer[] = [];
    const server = await rawServer(async (socket) => {
      socket.on('data', (chunk) => received.push(chunk));
      socket.setNoDelay(true);
      // The scheduler's whole stream, one byte per write (the reply waits in the comm).
      for (let at = 0; at < daskSchedulerStream.length && !socket.destroyed; at++) {
        await new Promise((resolve) => socket.write(daskSchedulerStream.subarray(at, at + 1), resolve));
      }
    });

    const comm = await firstValueFrom(connect(server.address));
    expect(comm.remoteInfo).toMatchObject({ compression: 'lz4', python: [3, 11, 2], 'pickle-protocol': 5 });
    expect(comm.handshakeOptions).toEqual({ compression: null, 'pickle-protocol': 5 });
    await comm.write({ op: 'identity', reply: true });
    const reply = (await comm.read()) as Record<string, unknown>;
    expect(reply).toEqual(GOLDEN_IDENTITY_REPLY);

    await waitFor(() => Buffer.concat(received).length >= 44);
    const sent = Buffer.concat(received);
    const handshakeLength = 8 + Number(sent.readBigUInt64LE(0));
    expect(sent.subarray(handshakeLength)).toEqual(identityRequest);
    await comm.close();
    await server.close();
  });

  it('should answer a Dask client handshake and echo its identity request', async () => {
    const server = await echoListener();
    const socket = net.connect({ host: '127.0.0.1', port: Number(server.address.split(':').pop()) });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.write(daskClientStream);
    await waitFor(() => Buffer.concat(chunks).length > 44);
    const bytes = Buffer.concat(chunks);
    const handshakeLength = 8 + Number(bytes.readBigUInt64LE(0));
    await waitFor(() => Buffer.concat(chunks).length >= handshakeLength + 44);
    expect(Buffer.concat(chunks).subarray(handshakeLength)).toEqual(identityRequest);
    socket.destroy();
    server.stop();
  });
});

describe('tcp faults', () => {
  it('should fail a connect to a peer that does not speak Dask (an HTTP server) at once, with a ProtocolError saying so', async () => {
    const server = http.createServer((_request, response) => response.end('hello'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    const address = `tcp://127.0.0.1:${port}`;
    const retries: CommStatus[] = [];
    const watching = status$.pipe(filter((e) => e.type === 'connect:retry' && e.address === address)).subscribe((e) => retries.push(e));
    const error = (await firstValueFrom(connect(address, { timeout: 20_000 })).catch((e: Error) => e)) as Error;
    watching.unsubscribe();
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).not.toBeInstanceOf(MessageTooLargeError);
    expect(error.message).toMatch(/the peer does not speak Dask's protocol: it sent "HTTP\/1\.1 400 Bad Request/);
    expect(retries).toEqual([]); // one attempt, not retried until the timeout
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it('should abort a comm whose peer announces 2^63 bytes, naming limit and size, and keep serving', async () => {
    const server = await echoListener({ maxMessageSize: 1024 * 1024 });
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(2n ** 63n);
    await server.sendRaw(header, false);
    await waitFor(() => server.endings.length === 1);
    const error = server.endings[0] as MessageTooLargeError;
    expect(error).toBeInstanceOf(MessageTooLargeError);
    expect(error.code).toBe('ERR_MESSAGE_TOO_LARGE');
    expect(error.message).toContain(String(2n ** 63n));
    expect(error.message).toContain('1048576');
    await server.stillServes();
    server.stop();
  });

  it('should refuse a first message (the handshake) that announces more than 64 KiB, before allocating it', async () => {
    const listener = listen('tcp://127.0.0.1:0');
    const rejection = firstValueFrom(status$.pipe(filter((e) => e.type === 'listen:rejected')));
    const serving = listener.subscribe(() => undefined);
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const socket = net.connect({ host: '127.0.0.1', port: Number(contactAddress.split(':').pop()) });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined);
    const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    // T, N = 1, len[0] = 1 GiB, and a few bytes of it: without the handshake limit this
    // would reserve 1 GiB for a peer that has not said who it is.
    const header = Buffer.alloc(24);
    header.writeBigUInt64LE(16n + 2n ** 30n, 0);
    header.writeBigUInt64LE(1n, 8);
    header.writeBigUInt64LE(2n ** 30n, 16);
    socket.write(Buffer.concat([header, Buffer.alloc(100)]));
    const event = await rejection;
    await closed;
    expect(event.type === 'listen:rejected' && event.error.message).toMatch(/the first message \(the handshake\) announced \d+ bytes, more than the 65536 accepted before a handshake/);
    serving.unsubscribe();
  });

  it('should error the reader when the stream ends in the middle of a message', async () => {
    const server = await echoListener();
    await server.sendRaw(identityRequest.subarray(0, 30));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBeInstanceOf(ProtocolError);
    expect((server.endings[0] as Error).message).toMatch(/middle of a message/);
    await server.stillServes();
    server.stop();
  });

  it('should complete the reader when the stream ends between messages', async () => {
    const server = await echoListener();
    await server.sendRaw(Buffer.alloc(0));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBe('completed');
    server.stop();
  });

  it.each([
    ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')],
    ['a frame that is not msgpack', Buffer.from('1100000000000000' + '0100000000000000' + '0100000000000000' + 'c1', 'hex')],
    ['a prelude with more frames than bytes', Buffer.from('0800000000000000' + 'ffffffff00000000', 'hex')],
  ])('should abort on garbage (%s) and keep serving', async (_name, garbage) => {
    const server = await echoListener();
    await server.sendRaw(garbage, false);
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBeInstanceOf(ProtocolError);
    await server.stillServes();
    server.stop();
  });

  it('should error the reader when the peer process is killed mid-message', async () => {
    const server = await echoListener();
    const port = server.address.split(':').pop();
    const half = Buffer.concat([daskHandshake, identityRequest.subarray(0, 20)]).toString('hex');
    const child = spawn(process.execPath, [
      '-e',
      `const s = require('net').connect(${port}, '127.0.0.1', () => s.write(Buffer.from('${half}', 'hex'), () => process.kill(process.pid, 'SIGKILL')));`,
    ]);
    await new Promise((resolve) => child.on('exit', resolve));
    await waitFor(() => server.endings.length === 1);
    expect(server.endings[0]).toBeInstanceOf(CommClosedError);
    await server.stillServes();
    server.stop();
  });

  it('should abort a close that cannot finish within closeTimeout, and report it', async () => {
    // A peer that answers the handshake, then neither reads nor closes.
    const server = await rawServer((socket) => {
      socket.write(daskSchedulerStream.subarray(0, 69));
      socket.pause();
    });
    const timedOut = firstValueFrom(status$.pipe(filter((e) => e.type === 'comm:close-timeout')));
    const comm = await firstValueFrom(connect(server.address, { closeTimeout: 200 }));
    const ended = firstValueFrom(comm.read$.pipe(toArray())).catch((err: Error) => err);
    await comm.close();
    expect(await timedOut).toMatchObject({ type: 'comm:close-timeout', timeout: 200, localAddress: comm.localAddress });
    expect(comm.closed).toBe(true);
    expect(await ended).toEqual([]); // the abort was this side's own: read$ completes
    await server.close();
  });

  it('should send large buffers by reference, without copying them', async () => {
    const { FrameWriter } = await import('../../lib/protocol');
    const { daskCodec } = await import('rxcomm');
    const big = Buffer.alloc(1024 * 1024, 1);
    const writer = new FrameWriter();
    const codec = daskCodec({ deserialize: true });
    const size = writer.add(codec.encodePieces!({ op: 'bulk', data: big }));
    const chunks = writer.take();
    expect(chunks).toContain(big); // the very same buffer, not a copy
    expect(chunks.reduce((n, c) => n + c.byteLength, 0)).toBe(size);
    // and the bytes are what Dask expects: one frame, msgpack with the bin inline
    const wire = Buffer.concat(chunks);
    expect(Number(wire.readBigUInt64LE(0))).toBe(size - 8);
    const decoded = codec.decode([wire.subarray(24)]) as { op: string; data: Buffer };
    expect(decoded.op).toBe('bulk');
    expect(big.equals(decoded.data)).toBe(true);
  });

  it('should reject a write larger than maxMessageSize and stay usable', async () => {
    const server = await echoListener();
    const comm = await firstValueFrom(connect(server.address, { maxMessageSize: 1000 }));
    await expect(comm.write({ data: Buffer.alloc(2000) })).rejects.toBeInstanceOf(MessageTooLargeError);
    await comm.write({ small: true });
    expect(await comm.read()).toEqual({ small: true });
    await comm.close();
    server.stop();
  });

  it('should report the aborted comm on status$', async () => {
    const server = await echoListener({ maxMessageSize: 100 });
    const aborted = firstValueFrom(status$.pipe(filter((e) => e.type === 'comm:aborted')));
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(1000n);
    await server.sendRaw(header, false);
    expect(await aborted).toMatchObject({ type: 'comm:aborted', error: expect.any(MessageTooLargeError) });
    server.stop();
  });
});

describe('tcp addressing and writes', () => {
  it.each([
    ['IPv6 loopback', 'tcp://[::1]:0'],
    ['a host name', 'tcp://localhost:0'],
  ])('should listen and connect on %s', async (_name, address) => {
    const listener = listen(address);
    const serving = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const comm = await firstValueFrom(connect(contactAddress));
    await comm.write('hi');
    expect(await comm.read()).toBe('hi');
    expect(comm.peerAddress).toBe(contactAddress.replace('localhost', comm.peerAddress.includes('[') ? '[::1]' : '127.0.0.1'));
    await comm.close();
    serving.unsubscribe();
  });

  it('should coalesce small writes made in one tick into few socket writes, in order', async () => {
    const chunks: Buffer[] = [];
    const server = await rawServer((socket) => {
      socket.write(daskSchedulerStream.subarray(0, 69));
      socket.on('data', (chunk) => chunks.push(chunk));
    });
    const comm = await firstValueFrom(connect(server.address));
    const before = chunks.length;
    for (let i = 0; i < 1000; i++) void comm.write({ i });
    // parse what arrived after our handshake until all 1000 messages are there
    const parse = () => {
      const all = Buffer.concat(chunks);
      const bytes = all.subarray(8 + Number(all.readBigUInt64LE(0)));
      const seen: number[] = [];
      for (let at = 0; at + 8 <= bytes.length; ) {
        const total = Number(bytes.readBigUInt64LE(at));
        if (at + 8 + total > bytes.length) break;
        seen.push(bytes[at + 24 + 3]); // {i: n} is 81 a1 69 <n> for n < 128
        at += 8 + total;
      }
      return seen;
    };
    await waitFor(() => chunks.length > 0 && parse().length === 1000);
    expect(chunks.length - before).toBeLessThan(20);
    expect(parse().slice(0, 128)).toEqual([...Array(128).keys()]);
    comm.abort();
    await server.close();
  });

  it('should round-trip every kind of value through an echo', async () => {
    const server = await echoListener();
    const comm = await firstValueFrom(connect(server.address));
    const messages: unknown[] = [
      { text: 'héllo wörld 🚀', empty: '' },
      { bin: Buffer.from([0, 1, 2, 255]), empty: Buffer.alloc(0) },
      { ints: [0, -1, 2 ** 31, 2 ** 53 - 1, 2n ** 53n + 1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n] },
      { floats: [1.5, -0.25, Infinity, -Infinity] },
      { nothing: null, yes: true, no: false, list: [[1, [2, [3]]], {}] },
      new Map<unknown, unknown>([
        [1, 'int key'],
        [['x', 0, 1], 'tuple key'],
        [Buffer.from('b'), 'bytes key'],
      ]),
      { set: new Set([1, 2, 3]) },
    ];
    const replies = firstValueFrom(comm.read$.pipe(take(messages.length), toArray()));
    for (const message of messages) await comm.write(message);
    expect(await replies).toEqual(messages);
    // 10 MB inline, compared with Buffer#equals (jest's toEqual walks bytes one by one)
    const big = Buffer.alloc(10_000_000);
    for (let i = 0; i < big.length; i += 4096) big[i] = i % 251;
    await comm.write({ big });
    expect(big.equals(((await comm.read()) as { big: Buffer }).big)).toBe(true);
    await comm.write({ nan: NaN });
    expect(Number.isNaN(((await comm.read()) as { nan: number }).nan)).toBe(true);
    await comm.close();
    server.stop();
  });
});

export type { Comm };
