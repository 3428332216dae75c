import * as net from 'node:net';
import { firstValueFrom, take, toArray } from 'rxjs';
import { connect, listen, type Comm } from 'rxcomm';
import { FrameParser, frameMessage, sharedDaskCodec } from '../../lib/protocol';
import { golden } from '../fixtures/golden';
import { pattern } from '../helpers/bytes';

/** Dask's handshakes, as a real Dask 2022.12.1 client and scheduler sent them (69 bytes each). */
const DASK_CLIENT_HANDSHAKE = golden('dask-2022.12.1-client-to-scheduler.bin').subarray(0, 69);
const DASK_SERVER_HANDSHAKE = golden('dask-2022.12.1-scheduler-to-client.bin').subarray(0, 69);

const MiB = 1024 * 1024;

/** Large and small, back to back: several MiB, a byte, exactly 64 KiB, just over, odd sizes. */
const SIZES = [5 * MiB + 1, 17, 3 * MiB + 4093, 1, 0, 64 * 1024, 64 * 1024 + 1, 8 * MiB - 3, 100, 2 * MiB + 7, 3, 5];
const messages = () => SIZES.map((size, i) => ({ op: 'bulk', i, data: pattern(size, i + 1) }));

interface Bulk {
  op: string;
  i: number;
  data: Uint8Array;
}

function expectSameMessages(actual: unknown[], expected: Bulk[]): void {
  expect(actual).toHaveLength(expected.length);
  actual.forEach((message, k) => {
    const { op, i, data } = message as Bulk;
    expect({ op, i, length: data.length }).toEqual({ op: expected[k].op, i: expected[k].i, length: expected[k].data.length });
    expect(Buffer.from(data.buffer, data.byteOffset, data.length).equals(expected[k].data)).toBe(true);
  });
}

/** The wire bytes of `list`, as rxcomm (and Dask) frame them. */
const wireBytes = (list: Bulk[]) => Buffer.concat(list.map((m) => frameMessage(sharedDaskCodec(false).encode(m))));

/**
 * Writes `bytes` in pieces of odd sizes, pausing now and then so that the reader's reads
 * end at odd places: inside a prelude, a few bytes into a large frame, a few short of its end.
 */
async function writeInOddPieces(socket: net.Socket, bytes: Buffer): Promise<void> {
  const pieces = [1, 7, 23, 65_537, 300_001, 3, 1_048_573, 11, 4_000_037, 131_071];
  let at = 0;
  for (let k = 0; at < bytes.length && !socket.destroyed; k++) {
    const end = Math.min(bytes.length, at + pieces[k % pieces.length]);
    const flushed = new Promise((resolve) => socket.write(bytes.subarray(at, end), resolve));
    at = end;
    if (k % 3 === 0) {
      await flushed;
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }
}

const received = jest.spyOn(FrameParser.prototype, 'received');

afterAll(() => received.mockRestore());

describe('tcp with large frames (read in place)', () => {
  it('should carry large and small messages back to back, both ways, byte for byte', async () => {
    const listener = listen('tcp://127.0.0.1:0');
    const serving = listener.subscribe((comm) => comm.read$.subscribe((message) => void comm.write(message).catch(() => undefined)));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const comm: Comm = await firstValueFrom(connect(contactAddress));
    received.mockClear();
    const sent = messages();
    const echoed = firstValueFrom(comm.read$.pipe(take(sent.length), toArray()));
    await Promise.all(sent.map((m) => comm.write(m)));
    expectSameMessages(await echoed, sent);
    // Both ends read the large frames into place.
    expect(received).toHaveBeenCalled();
    await comm.close();
    serving.unsubscribe();
  });

  it('should read a stream written in odd pieces into an rxcomm listener exactly', async () => {
    const listener = listen('tcp://127.0.0.1:0');
    const sent = messages();
    const got = new Promise<unknown[]>((resolve, reject) => {
      const serving = listener.subscribe((comm) =>
        comm.read$.pipe(take(sent.length), toArray()).subscribe({
          next: (all) => {
            resolve(all);
            serving.unsubscribe();
          },
          error: reject,
        }),
      );
    });
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const socket = net.connect({ host: '127.0.0.1', port: Number(contactAddress.split(':').pop()) });
    socket.on('error', () => undefined);
    socket.on('data', () => undefined); // the listener's handshake
    await new Promise((resolve) => socket.once('connect', resolve));
    received.mockClear();
    await writeInOddPieces(socket, Buffer.concat([DASK_CLIENT_HANDSHAKE, wireBytes(sent)]));
    expectSameMessages(await got, sent);
    expect(received).toHaveBeenCalled(); // the accepted socket reads large frames in place too
    socket.destroy();
  });

  it('should read a stream written in odd pieces, and a large frame then small messages in one write, into an rxcomm client exactly', async () => {
    const sent = messages();
    // The tail of a large frame and three small messages, sent in one write after a pause.
    const last = [
      { op: 'bulk', i: 100, data: pattern(4 * MiB + 5, 100) },
      { op: 'bulk', i: 101, data: pattern(10, 101) },
      { op: 'bulk', i: 102, data: pattern(0, 102) },
      { op: 'bulk', i: 103, data: pattern(1000, 103) },
    ];
    const lastBytes = wireBytes(last);
    const sockets: net.Socket[] = [];
    const server = net.createServer(async (socket) => {
      sockets.push(socket);
      socket.on('error', () => undefined);
      socket.on('data', () => undefined); // the client's handshake
      await writeInOddPieces(socket, Buffer.concat([DASK_SERVER_HANDSHAKE, wireBytes(sent)]));
      const split = lastBytes.length - 1200 - 3 * 24 - 60; // 1,200 bytes before the large frame's end
      await new Promise((resolve) => socket.write(lastBytes.subarray(0, split), resolve));
      await new Promise((resolve) => setTimeout(resolve, 20));
      socket.write(lastBytes.subarray(split));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as net.AddressInfo;
    received.mockClear();
    const comm = await firstValueFrom(connect(`tcp://127.0.0.1:${port}`));
    const all = await firstValueFrom(comm.read$.pipe(take(sent.length + last.length), toArray()));
    expectSameMessages(all, [...sent, ...last]);
    expect(received).toHaveBeenCalled();
    comm.abort();
    sockets.forEach((socket) => socket.destroy());
    await new Promise((resolve) => server.close(resolve));
  });

  it('should stop reading while the reader is paused, and deliver everything after', async () => {
    const listener = listen('tcp://127.0.0.1:0');
    const sent = messages();
    const got: unknown[] = [];
    let serverComm: Comm | undefined;
    const serving = listener.subscribe((comm) => (serverComm = comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const comm = await firstValueFrom(connect(contactAddress));
    while (serverComm === undefined) await new Promise((resolve) => setTimeout(resolve, 5));
    const writes = Promise.all(sent.map((m) => comm.write(m)));
    // Read one message at a time, slowly: the comm pauses its connection in between.
    for (let k = 0; k < sent.length; k++) {
      got.push(await serverComm.read());
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await writes;
    expectSameMessages(got, sent);
    await comm.close();
    serving.unsubscribe();
  });
});
