/**
 * Dead-peer detection over real sockets on loopback: rxcomm peers keep an idle comm
 * alive with heartbeats (tcp, tls) or pings (ws, wss), a peer that stops answering is
 * failed with `DeadPeerError`, and a Dask peer never receives a heartbeat. The cut-cable
 * case, with two network namespaces, is in half-open-spec.ts.
 */
import * as net from 'node:net';
import { firstValueFrom, toArray } from 'rxjs';
import { pack, unpack } from 'msgpackr';
import { WebSocketServer } from 'ws';
import { connect, DeadPeerError, listen, type Comm } from 'rxcomm';
import { golden } from '../fixtures/golden';
import { connectPair, transports, type Connected } from '../helpers/transports';
import { daskFramed } from '../helpers/bytes';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How a comm's stream ends: `'completed'` or the error. */
function ending(comm: Comm): Promise<Error | 'completed'> {
  return firstValueFrom(comm.read$.pipe(toArray())).then(
    () => 'completed' as const,
    (error: Error) => error,
  );
}

/** A heartbeat on the wire: T = 8, N = 0. */
const HEARTBEAT = Buffer.concat([Buffer.from([8, 0, 0, 0, 0, 0, 0, 0]), Buffer.alloc(8)]);

/**
 * A raw tcp server that answers the handshake with `handshake`, then says nothing more
 * (a peer whose process froze), recording every byte it receives after the handshake.
 */
async function silentPeer(handshake: Record<string, unknown>) {
  const sockets: net.Socket[] = [];
  const received: Buffer[] = [];
  const server = net.createServer((socket) => {
    sockets.push(socket);
    socket.on('error', () => undefined);
    let handshaken = false;
    socket.on('data', (chunk) => {
      if (handshaken) received.push(chunk);
      else {
        handshaken = true; // the client's handshake arrives in one chunk on loopback
        socket.write(daskFramed(handshake));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    address: `tcp://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    received: () => Buffer.concat(received),
    async close() {
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const RXCOMM_HANDSHAKE = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5, 'rxcomm-heartbeat': 300 };
const DASK_HANDSHAKE = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5 };

describe.each(transports.filter((t) => t.name !== 'inproc'))('dead-peer detection between rxcomm peers, over $name', (transport) => {
  let pair: Connected;
  afterEach(() => pair?.close());

  it('should keep an idle comm open well past deadPeerTimeout, and in working order', async () => {
    pair = await connectPair(transport, { deadPeerTimeout: 300 });
    const clientEnd = ending(pair.client);
    const serverEnd = ending(pair.server);
    await sleep(1500); // five timeouts of silence from the application
    expect(pair.client.closed).toBe(false);
    expect(pair.server.closed).toBe(false);
    await pair.client.write('still here?');
    await pair.server.write('yes');
    await pair.client.close();
    expect(await clientEnd).toBe('completed');
    expect(await serverEnd).toBe('completed');
  });

  it('should advertise its deadPeerTimeout in the handshake', async () => {
    pair = await connectPair(transport, { deadPeerTimeout: 1234 });
    expect(pair.server.remoteInfo['rxcomm-heartbeat']).toBe(1234);
    expect(pair.client.remoteInfo['rxcomm-heartbeat']).toBe(1234);
  });
});

describe('dead-peer detection against peers that stop answering', () => {
  it('should fail a tcp comm whose rxcomm peer went silent with DeadPeerError, after sending it heartbeats', async () => {
    const peer = await silentPeer(RXCOMM_HANDSHAKE);
    const comm = await firstValueFrom(connect(peer.address, { deadPeerTimeout: 300 }));
    const started = Date.now();
    const end = await ending(comm);
    expect(end).toBeInstanceOf(DeadPeerError);
    expect((end as DeadPeerError).code).toBe('ERR_DEAD_PEER');
    expect((end as DeadPeerError).silentFor).toBeGreaterThanOrEqual(300);
    expect((end as DeadPeerError).message).toMatch(/nothing from tcp:\/\/127\.0\.0\.1:\d+ for \d+ ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await expect(comm.write('too late')).rejects.toThrow();
    // It asked: a heartbeat each 100 ms of silence (a third of the peer's 300).
    const bytes = peer.received();
    expect(bytes.length).toBeGreaterThanOrEqual(HEARTBEAT.length);
    expect(bytes.subarray(0, 16)).toEqual(HEARTBEAT);
    await peer.close();
  });

  it('should send a Dask peer no heartbeat and leave its idle comm open', async () => {
    const peer = await silentPeer(DASK_HANDSHAKE);
    const comm = await firstValueFrom(connect(peer.address, { deadPeerTimeout: 300 }));
    await sleep(1000);
    expect(comm.closed).toBe(false);
    expect(peer.received().length).toBe(0); // not one byte beyond the handshake
    comm.abort();
    await peer.close();
  });

  it('should fail a ws comm whose peer stops answering pings with DeadPeerError', async () => {
    // A ws server that completes Dask's handshake and then never answers a ping.
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, autoPong: false });
    await new Promise<void>((resolve) => wss.once('listening', () => resolve()));
    let pings = 0;
    wss.on('connection', (socket) => {
      socket.on('ping', () => pings++);
      let parts = 0;
      socket.on('message', () => {
        // The client's handshake: its count, then its one frame.
        if (++parts === 2) {
          const frame = pack(DASK_HANDSHAKE);
          const count = Buffer.alloc(8);
          count.writeBigUInt64LE(1n);
          socket.send(count);
          socket.send(frame);
        }
      });
    });
    const { port } = wss.address() as net.AddressInfo;
    const comm = await firstValueFrom(connect(`ws://127.0.0.1:${port}`, { deadPeerTimeout: 300 }));
    const end = await ending(comm);
    expect(end).toBeInstanceOf(DeadPeerError);
    expect(pings).toBeGreaterThanOrEqual(1);
    for (const client of wss.clients) client.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });

  it('should let a listener fail a client that froze after its handshake', async () => {
    const listener = listen('tcp://127.0.0.1:0', { deadPeerTimeout: 300 });
    const comms: Promise<Error | 'completed'>[] = [];
    const serving = listener.subscribe((comm) => comms.push(ending(comm)));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const port = Number(contactAddress.split(':').pop());
    // A raw client: rxcomm's handshake with heartbeats, then nothing (and it reads nothing).
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('error', () => undefined);
    socket.write(daskFramed(RXCOMM_HANDSHAKE));
    while (comms.length === 0) await sleep(10);
    const end = await comms[0];
    expect(end).toBeInstanceOf(DeadPeerError);
    socket.destroy();
    serving.unsubscribe();
  });

  it('should read the golden Dask handshake as a peer without heartbeats', () => {
    // Dask's own handshake, byte for byte, has no 'rxcomm-heartbeat' key.
    const stream = golden('dask-2022.12.1-client-to-scheduler.bin');
    const frame = stream.subarray(24, 69);
    expect(Object.keys(unpack(frame) as object)).not.toContain('rxcomm-heartbeat');
  });
});
