import * as net from 'node:net';
import { filter, firstValueFrom, toArray, take } from 'rxjs';
import {
  AbortError,
  AddressError,
  CommClosedError,
  connect,
  ConfigError,
  ConnectTimeoutError,
  listen,
  status$,
  UnknownSchemeError,
} from 'rxcomm';
import { inprocAddress } from '../helpers/transports';

describe('connect', () => {
  it('should retry an inproc address nobody listens on until the timeout', async () => {
    const addr = inprocAddress();
    const retries = firstValueFrom(status$.pipe(filter((e) => e.type === 'connect:retry' && e.address === addr), take(3), toArray()));
    const error = await firstValueFrom(connect(addr, { timeout: 500 })).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectTimeoutError);
    expect(error.message).toBe(`Timed out trying to connect to ${addr} after 0.5 s`);
    expect(error.code).toBe('ERR_CONNECT_TIMEOUT');
    expect(error.cause).toBeInstanceOf(CommClosedError);
    expect(error.cause.message).toMatch(/no endpoint for inproc address/);
    expect((await retries).map((e) => (e as { attempt: number }).attempt)).toEqual([1, 2, 3]);
  });

  it('should connect once a listener appears while it retries', async () => {
    const addr = inprocAddress();
    const pending = firstValueFrom(connect(addr, { timeout: 5000 }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    const listener = listen(addr);
    const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const comm = await pending;
    await comm.write('late');
    expect(await comm.read()).toBe('late');
    await comm.close();
    sub.unsubscribe();
  });

  it('should fail at once on a bad address or an unknown scheme', async () => {
    await expect(firstValueFrom(connect('tcp://::1:80'))).rejects.toBeInstanceOf(AddressError);
    await expect(firstValueFrom(connect('tcp://localhost'))).rejects.toThrow("missing port number in address 'localhost'");
    await expect(firstValueFrom(connect('udp://127.0.0.1:80'))).rejects.toBeInstanceOf(UnknownSchemeError);
  });

  it('should throw a ConfigError at the call for bad options, before anything is opened', () => {
    expect(() => connect('tcp://127.0.0.1:80', { timeout: -1 })).toThrow(ConfigError);
  });

  it('should retry a closed tcp port, then time out with the refusal as cause', async () => {
    const port = await freePort();
    const error = await firstValueFrom(connect(`tcp://127.0.0.1:${port}`, { timeout: 400 })).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectTimeoutError);
    expect(error.message).toBe(`Timed out trying to connect to tcp://127.0.0.1:${port} after 0.4 s`);
    expect(error.cause).toBeInstanceOf(CommClosedError);
    expect(error.cause.message).toMatch(/ECONNREFUSED/);
  });

  it('should time out an attempt whose server accepts and never handshakes, closing its socket', async () => {
    const server = await silentServer();
    const error = await firstValueFrom(connect(server.address, { timeout: 500 })).catch((e) => e);
    expect(error).toBeInstanceOf(ConnectTimeoutError);
    expect(server.sockets.length).toBeGreaterThanOrEqual(2); // first attempt capped at 100 ms, then retried
    await server.expectAllClosed();
  });

  it('should end the attempt with an AbortError when its signal aborts, closing its socket', async () => {
    const server = await silentServer();
    const controller = new AbortController();
    const pending = firstValueFrom(connect(server.address, { signal: controller.signal })).catch((e: Error) => e);
    await new Promise((resolve) => setTimeout(resolve, 100));
    controller.abort(new Error('shutting down'));
    const error = (await pending) as AbortError;
    expect(error).toBeInstanceOf(AbortError);
    expect(error.code).toBe('ABORT_ERR');
    expect((error.cause as Error).message).toBe('shutting down');
    expect(server.sockets).toHaveLength(1);
    await server.expectAllClosed();
  });

  it('should abort the attempt when unsubscribed before it connects', async () => {
    const server = await silentServer();
    const sub = connect(server.address).subscribe();
    await new Promise((resolve) => setTimeout(resolve, 100));
    sub.unsubscribe();
    expect(server.sockets).toHaveLength(1);
    await server.expectAllClosed();
  });
});

/** A TCP server on loopback that accepts and never answers; it records its sockets. */
async function silentServer() {
  const sockets: net.Socket[] = [];
  const server = net.createServer((socket) => {
    socket.on('error', () => undefined); // the client resets it
    sockets.push(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  return {
    address: `tcp://127.0.0.1:${port}`,
    sockets,
    /** Checks the client left no socket open, then stops the server. */
    async expectAllClosed() {
      await new Promise((resolve) => setTimeout(resolve, 50));
      for (const socket of sockets) expect(socket.destroyed || socket.readableEnded).toBe(true);
      sockets.forEach((s) => s.destroy());
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}
