/**
 * Memory stays bounded whichever way a user writes, against a peer that sends and never
 * reads: the echo server of the README (`comm.read$.subscribe(comm)`) pauses its reading
 * instead of queueing replies, writes that never wait stop at `writeBufferLimit`, and
 * `writeTo` and `batched` hold back at most their `bufferSize`.
 */
import * as net from 'node:net';
import { filter, firstValueFrom, interval, map, range, Subject, take, toArray } from 'rxjs';
import {
  batched,
  BufferOverflowError,
  CommClosedError,
  listen,
  status$,
  toSerialize,
  writeTo,
  WriteBufferOverflowError,
  type Comm,
  type CommStatus,
} from 'rxcomm';
import { golden } from '../fixtures/golden';
import { connectPair, transports, type Connected } from '../helpers/transports';
import { daskFramed } from '../helpers/bytes';

const MiB = 1024 * 1024;
/** What a real Dask 2022.12.1 client sends first: its handshake. */
const daskHandshake = golden('dask-2022.12.1-client-to-scheduler.bin').subarray(0, 69);

/** Heap and off-heap bytes (Buffers) this process holds. */
function used(): number {
  const { heapUsed, external } = process.memoryUsage();
  return heapUsed + external;
}

/**
 * A raw Dask-speaking client that writes `message` as fast as its own socket drains and
 * never reads a byte, for `total` bytes or until the server has stopped reading for
 * `stallMs` (its socket then never drains). Resolves with the bytes it got out.
 */
function neverReadingPeer(port: number, message: Buffer, total: number, stallMs: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  socket.pause(); // never read: the server's replies pile up in the kernel, then in the server
  const sent = new Promise<number>((resolve) => {
    let written = 0;
    let stall: NodeJS.Timeout | undefined;
    const pump = () => {
      clearTimeout(stall);
      while (written < total) {
        written += message.length;
        if (!socket.write(message)) {
          stall = setTimeout(() => resolve(written), stallMs);
          socket.once('drain', pump);
          return;
        }
      }
      resolve(written);
    };
    socket.once('connect', () => {
      socket.write(daskHandshake);
      pump();
    });
  });
  return { sent, socket };
}

describe('an echo server against a peer that never reads', () => {
  it('should pause its reading and stay flat instead of queueing replies', async () => {
    const aborted: CommStatus[] = [];
    const watching = status$.pipe(filter((e) => e.type === 'comm:aborted')).subscribe((e) => aborted.push(e));
    let serverComm: Comm | undefined;
    const listener = listen('tcp://127.0.0.1:0');
    const serving = listener.subscribe((comm) => {
      serverComm = comm;
      comm.read$.subscribe(comm); // the README's echo server
    });
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const port = Number(contactAddress.split(':').pop());

    global.gc?.();
    const baseline = used();
    let peak = baseline;
    const sampling = setInterval(() => (peak = Math.max(peak, used())), 20);
    // 512 MiB of 64 KiB messages: without a bound the server would hold most of it.
    const peer = neverReadingPeer(port, daskFramed({ op: 'echo', data: Buffer.alloc(64 * 1024, 7) }), 512 * MiB, 1000);
    const sent = await peer.sent;
    clearInterval(sampling);
    peak = Math.max(peak, used());

    // The server stopped reading: the peer could not get everything out.
    expect(sent).toBeLessThan(512 * MiB);
    expect(peak - baseline).toBeLessThan(100 * MiB);
    // Paused, not aborted: the comm is fine and waits for its peer to read.
    expect(serverComm?.closed).toBe(false);
    expect(aborted).toEqual([]);

    peer.socket.destroy();
    serving.unsubscribe();
    watching.unsubscribe();
    await firstValueFrom(serverComm!.read$.pipe(toArray())).catch(() => undefined);
  });
});

describe.each(transports)('writes that never wait, over $name', (transport) => {
  let pair: Connected;
  afterEach(() => pair?.close());

  it('should abort the comm with WriteBufferOverflowError past writeBufferLimit', async () => {
    // Nobody reads on the server, which stops reading from the wire after one message.
    pair = await connectPair(transport, { writeBufferLimit: 256 * 1024, writeHighWaterMark: 64 * 1024, readHighWaterMark: 1 });
    const { client } = pair;
    const ended = firstValueFrom(client.read$.pipe(toArray())).then(
      () => undefined,
      (error: Error) => error,
    );
    const payload = { data: new Uint8Array(32 * 1024) };
    const results: Promise<number>[] = [];
    for (let i = 0; i < 4096 && !client.closed; i++) results.push(client.write(payload));
    const settled = await Promise.allSettled(results);
    const rejected = settled.filter((r) => r.status === 'rejected').map((r) => (r as PromiseRejectedResult).reason as Error);
    expect(rejected.length).toBeGreaterThan(0);
    expect(rejected[0]).toBeInstanceOf(WriteBufferOverflowError);
    expect(rejected[0]).toBeInstanceOf(CommClosedError);
    expect((rejected[0] as WriteBufferOverflowError).limit).toBe(256 * 1024);
    expect(rejected[0].message).toMatch(/is not reading/);
    const end = await ended;
    expect(end).toBeInstanceOf(WriteBufferOverflowError);
  });
});

describe('writeTo', () => {
  const [inproc, tcp] = [transports[0], transports[1]];
  let pair: Connected;
  afterEach(() => pair?.close());

  it('should write a small synchronous source whole and in order', async () => {
    pair = await connectPair(tcp);
    const received = firstValueFrom(pair.server.read$.pipe(take(500), toArray()));
    const sizes = await firstValueFrom(range(0, 500).pipe(writeTo(pair.client), toArray()));
    expect(sizes).toHaveLength(500);
    expect(await received).toEqual([...Array(500).keys()]);
  });

  it.each([tcp, inproc])('should error with BufferOverflowError when a push source outruns a stalled peer ($name)', async (transport) => {
    // Nobody reads on the server, which stops reading from the wire after one message.
    pair = await connectPair(transport, { writeHighWaterMark: 16 * 1024, readHighWaterMark: 1 });
    const source = new Subject<unknown>();
    const outcome = firstValueFrom(source.pipe(writeTo(pair.client, { bufferSize: 8 }), toArray())).then(
      () => undefined,
      (error: Error) => error,
    );
    // Far more than the transport and the kernel take, in one synchronous burst.
    for (let i = 0; i < 20_000; i++) source.next({ i, data: new Uint8Array(1024) });
    const error = await outcome;
    expect(error).toBeInstanceOf(BufferOverflowError);
    expect((error as BufferOverflowError).limit).toBe(8);
    expect(pair.client.closed).toBe(false); // the comm is left alone
  });

  it('should keep only the newest values with overflow: drop-oldest', async () => {
    pair = await connectPair(inproc, { readHighWaterMark: 1 }); // the server reads nothing yet
    const source = new Subject<number>();
    const done = firstValueFrom(source.pipe(writeTo(pair.client, { bufferSize: 3, overflow: 'drop-oldest' }), toArray()));
    for (let i = 0; i < 2000; i++) source.next(i);
    source.complete();
    const got = await firstValueFrom(pair.server.read$.pipe(take(1027), toArray()));
    // The first 1024 fill the inproc inbox; of the rest, only the last 3 waited.
    expect(got.slice(1024)).toEqual([1997, 1998, 1999]);
    expect(await done).toHaveLength(1027);
  });

  it('should drop the newest values with overflow: drop-newest', async () => {
    pair = await connectPair(inproc, { readHighWaterMark: 1 }); // the server reads nothing yet
    const source = new Subject<number>();
    const done = firstValueFrom(source.pipe(writeTo(pair.client, { bufferSize: 3, overflow: 'drop-newest' }), toArray()));
    for (let i = 0; i < 2000; i++) source.next(i);
    source.complete();
    const got = await firstValueFrom(pair.server.read$.pipe(take(1027), toArray()));
    expect(got.slice(1024)).toEqual([1024, 1025, 1026]);
    expect(await done).toHaveLength(1027);
  });

  it('should refuse a bad bufferSize or overflow policy at once', () => {
    const comm = {} as Comm;
    expect(() => writeTo(comm, { bufferSize: -1 })).toThrow(/bufferSize/);
    expect(() => writeTo(comm, { overflow: 'block' as never })).toThrow(/overflow must be one of/);
  });

  it('should follow an interval source to the end and complete after the last write', async () => {
    pair = await connectPair(tcp);
    const sizes = await firstValueFrom(interval(1).pipe(take(20), map((i) => ({ i })), writeTo(pair.client), toArray()));
    expect(sizes).toHaveLength(20);
    expect(await firstValueFrom(pair.server.read$.pipe(take(20), toArray()))).toHaveLength(20);
  });
});

describe('batched streams against a stalled peer', () => {
  let pair: Connected;
  afterEach(() => pair?.close());

  it('should grow its batch, not the transport queue, and refuse past bufferSize', async () => {
    // Nobody reads on the server, which stops reading from the wire after one message.
    pair = await connectPair(transports[1], { writeHighWaterMark: 16 * 1024, readHighWaterMark: 1 });
    const stream = batched(pair.client, { interval: 1, bufferSize: 100 });
    let refused: unknown;
    // Each batch goes once the comm took the previous one; with the peer stalled, the
    // messages gather in the buffer until it is full.
    for (let i = 0; i < 100_000 && !refused; i++) {
      try {
        stream.send({ i, data: new Uint8Array(1024) });
      } catch (error) {
        refused = error;
      }
      if (i % 50 === 0) await new Promise((resolve) => setTimeout(resolve, 2));
    }
    expect(refused).toBeInstanceOf(BufferOverflowError);
    expect((refused as BufferOverflowError).where).toBe('batched');
    expect(pair.client.closed).toBe(false);
  });

  it('should deliver everything in order once the peer reads', async () => {
    pair = await connectPair(transports[1]);
    const stream = batched(pair.client, { interval: 2 });
    const peer = batched(pair.server, { interval: 2 });
    const got = firstValueFrom(peer.messages$.pipe(take(3000), toArray()));
    for (let i = 0; i < 3000; i++) stream.send(i);
    expect(await got).toEqual([...Array(3000).keys()]);
    await stream.close();
  });
});

describe.each(transports.filter((t) => t.name === 'tcp' || t.name === 'ws'))('compressed payloads nobody reads, over $name', (transport) => {
  let pair: Connected;
  afterEach(async () => {
    await pair.close();
  });

  it('should count what they decompress to against readHighWaterMarkBytes, not their wire size', async () => {
    // 60 messages of 8 MiB of zeros, about 33 KB each on the wire: counted by wire size,
    // 64 MiB of them would be 480 MiB unread; counted as they are held, reading stops at 32.
    pair = await connectPair(transport, { compression: 'lz4', readHighWaterMarkBytes: 32 * MiB });
    const zeros = new Uint8Array(8 * MiB);
    global.gc?.();
    const before = process.memoryUsage().arrayBuffers;
    const writes = Array.from({ length: 60 }, () => pair.client.write({ data: toSerialize(zeros) }).catch(() => undefined));
    await new Promise((resolve) => setTimeout(resolve, 1500));
    global.gc?.();
    const held = process.memoryUsage().arrayBuffers - before;
    expect(held).toBeLessThan(200 * MiB);
    // Nothing is lost: reading resumes as messages are taken.
    for (let i = 0; i < 60; i++) expect(((await pair.server.read()) as { data: Uint8Array }).data.length).toBe(8 * MiB);
    await Promise.all(writes);
  });
});
