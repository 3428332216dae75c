/**
 * TCP keepalive is what detects a vanished peer that sends no heartbeats (Dask), so it is
 * set once the handshake shows such a peer, on both sides; between two rxcomm peers the
 * heartbeats do that job and a connect or accept makes no keepalive call at all. (That
 * keepalive then does detect a cut link is spec/transports/half-open-spec.ts's.)
 */
import * as net from 'node:net';
import { firstValueFrom } from 'rxjs';
import { connect, listen, type Comm } from '../../lib';
import { daskFramed } from '../helpers/bytes';

/** Dask 2022.12.1's handshake: no `rxcomm-heartbeat` key. */
const DASK_HANDSHAKE = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5 };

describe('TCP keepalive on tcp comms', () => {
  let setKeepAlive: jest.SpyInstance;
  const opened: Array<{ close(): unknown }> = [];

  beforeEach(() => {
    setKeepAlive = jest.spyOn(net.Socket.prototype, 'setKeepAlive');
  });

  afterEach(async () => {
    setKeepAlive.mockRestore();
    for (const item of opened.splice(0).reverse()) await item.close(); // last opened, first closed
  });

  /** An rxcomm listener; resolves with its address and the comms it accepts. */
  async function rxcommListener(deadPeerTimeout?: number): Promise<{ address: string; accepted: Comm[] }> {
    const accepted: Comm[] = [];
    const listener = listen('tcp://127.0.0.1:0', { deadPeerTimeout });
    const subscription = listener.subscribe((comm) => accepted.push(comm));
    opened.push({ close: () => (subscription.unsubscribe(), Promise.all(accepted.map((comm) => comm.close()))) });
    const { contactAddress } = await firstValueFrom(listener.bound$);
    return { address: contactAddress, accepted };
  }

  it('should make no keepalive call on either side between two rxcomm peers', async () => {
    const { address, accepted } = await rxcommListener();
    const comm = await firstValueFrom(connect(address));
    opened.push(comm);
    await comm.write({ op: 'ping' });
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(setKeepAlive).not.toHaveBeenCalled();
  });

  it('should set keepalive with idle deadPeerTimeout − 10 s on a comm to a peer without heartbeats (Dask)', async () => {
    const server = net.createServer((socket) => {
      socket.on('error', () => undefined);
      socket.on('end', () => socket.end()).resume(); // reads and drops, and closes when the comm does
      socket.write(daskFramed(DASK_HANDSHAKE));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sockets: net.Socket[] = [];
    server.on('connection', (socket) => sockets.push(socket));
    opened.push({ close: () => (sockets.forEach((socket) => socket.destroy()), new Promise((resolve) => server.close(resolve))) });
    const { port } = server.address() as net.AddressInfo;
    const comm = await firstValueFrom(connect(`tcp://127.0.0.1:${port}`, { deadPeerTimeout: 25_000 }));
    opened.push(comm);
    expect(setKeepAlive).toHaveBeenCalledTimes(1);
    expect(setKeepAlive).toHaveBeenCalledWith(true, 15_000);
  });

  it('should set keepalive on an accepted comm whose peer sends no heartbeats (Dask)', async () => {
    const { address, accepted } = await rxcommListener(12_000);
    const [host, port] = address.replace('tcp://', '').split(':');
    const socket = net.connect(Number(port), host);
    socket.on('error', () => undefined);
    socket.on('end', () => socket.end()).resume();
    opened.push({ close: () => socket.destroy() });
    socket.write(daskFramed(DASK_HANDSHAKE));
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(setKeepAlive).toHaveBeenCalledTimes(1);
    expect(setKeepAlive).toHaveBeenCalledWith(true, 2_000);
  });

  it('should keep keepalive on (kernel idle time) with deadPeerTimeout 0, even between rxcomm peers', async () => {
    const { address, accepted } = await rxcommListener(0);
    const comm = await firstValueFrom(connect(address, { deadPeerTimeout: 0 }));
    opened.push(comm);
    while (accepted.length === 0) await new Promise((resolve) => setImmediate(resolve));
    expect(setKeepAlive).toHaveBeenCalledTimes(2);
    expect(setKeepAlive).toHaveBeenNthCalledWith(1, true, 0);
    expect(setKeepAlive).toHaveBeenNthCalledWith(2, true, 0);
  });
});
