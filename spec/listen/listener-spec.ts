import * as net from 'node:net';
import { filter, firstValueFrom, take } from 'rxjs';
import { CommClosedError, connect, getBackend, listen, ListenError, status$, type Comm, type CommStatus } from 'rxcomm';
import { createConnectionPair } from 'rxcomm/testing';
import { transports } from '../helpers/transports';

describe.each(transports)('Listener over $name', (transport) => {
  it('should bind when subscribed and emit handshaken comms', async () => {
    const listener = listen(transport.listenAddress, transport.config());
    const accepted = firstValueFrom(listener);
    const { listenAddress, contactAddress } = await firstValueFrom(listener.bound$);
    expect(listener.listenAddress).toBe(listenAddress);
    expect(listener.contactAddress).toBe(contactAddress);
    const client = await firstValueFrom(connect(contactAddress, transport.config()));
    const server = await accepted; // firstValueFrom unsubscribed: the listener stopped accepting
    expect(server.remoteInfo['pickle-protocol']).toBe(5);
    // the established comms outlive the listener
    await client.write('still open');
    expect(await server.read()).toBe('still open');
    await expect(firstValueFrom(connect(contactAddress, { ...transport.config(), timeout: 300 }))).rejects.toThrow(
      `Timed out trying to connect to ${contactAddress} after 0.3 s`,
    );
    await Promise.all([client.close(), server.close()]);
  });

  it('should serve comms to handleComm with start() and stop()', async () => {
    const listener = listen(
      transport.listenAddress,
      (comm: Comm) => {
        comm.read$.subscribe(comm);
      },
      transport.config(),
    );
    expect(() => listener.contactAddress).toThrow('not bound yet');
    expect(await listener.start()).toBe(listener);
    const client = await firstValueFrom(connect(listener.contactAddress, transport.config()));
    await client.write({ hello: 'world' });
    expect(await client.read()).toEqual({ hello: 'world' });
    listener.stop();
    await client.close();
  });

  it('should take a handler that returns what it likes (a Subscription), and abort comms whose handler rejects', async () => {
    // Compiles under strict TypeScript: the handler's return type is unknown.
    const echo = listen(transport.listenAddress, (comm) => comm.read$.subscribe(comm), transport.config());
    await echo.start();
    const client = await firstValueFrom(connect(echo.contactAddress, transport.config()));
    await client.write('echo');
    expect(await client.read()).toBe('echo');
    await client.close();
    echo.stop();

    const failing = listen(
      transport.listenAddress,
      async (comm) => {
        await comm.read();
        throw new Error('handler failed');
      },
      transport.config(),
    );
    await failing.start();
    const doomed = await firstValueFrom(connect(failing.contactAddress, transport.config()));
    await doomed.write('trigger');
    await expect(doomed.read()).rejects.toBeInstanceOf(CommClosedError); // the server side aborted
    failing.stop();
  });

  it('should give 100 listeners distinct addresses', async () => {
    const listeners = Array.from({ length: 100 }, () => listen(transport.listenAddress, transport.config()));
    const subscriptions = listeners.map((l) => l.subscribe());
    const addresses = await Promise.all(listeners.map((l) => firstValueFrom(l.bound$)));
    expect(new Set(addresses.map((a) => a.contactAddress)).size).toBe(100);
    subscriptions.forEach((s) => s.unsubscribe());
  });

  it('should error with a clear message when the address is taken', async () => {
    const first = listen(transport.listenAddress, transport.config());
    const sub = first.subscribe();
    const { listenAddress } = await firstValueFrom(first.bound$);
    const second = listen(listenAddress, transport.config());
    await expect(second.start()).rejects.toThrow(/already in use|EADDRINUSE/);
    sub.unsubscribe();
  });

  it('should report a failed handshake and keep serving others', async () => {
    const events: CommStatus[] = [];
    const statusSub = status$.pipe(filter((e) => e.type === 'listen:rejected')).subscribe((e) => events.push(e));
    const listener = listen(transport.listenAddress, { ...transport.config(), handshakeTimeout: 2000 });
    const comms: Comm[] = [];
    const sub = listener.subscribe((comm) => comms.push(comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);

    // A peer that sends something that is not a handshake.
    const rejection = firstValueFrom(status$.pipe(filter((e) => e.type === 'listen:rejected'), take(1)));
    const [scheme, location] = contactAddress.split('://');
    const raw = await firstValueFrom(getBackend(scheme).connect(location, {
      codec: { encode: (m: unknown) => [Buffer.from(JSON.stringify(m))], decode: (f: Uint8Array[]) => JSON.parse(Buffer.from(f[0]).toString()) },
      maxMessageSize: 1 << 20,
      writeHighWaterMark: 1 << 20,
      ...transport.config(),
    } as never));
    raw.open({ next: () => undefined, complete: () => undefined, error: () => undefined });
    await raw.write(scheme === 'inproc' ? 'not a handshake' : { not: 'a handshake' });

    const rejected = await rejection;
    expect(rejected).toMatchObject({ type: 'listen:rejected', listenAddress: listener.listenAddress });
    raw.abort();

    const client = await firstValueFrom(connect(contactAddress, transport.config()));
    await client.write('fine');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(comms).toHaveLength(1);
    expect(await comms[0].read()).toBe('fine');
    await Promise.all([client.close(), comms[0].close()]);
    sub.unsubscribe();
    statusSub.unsubscribe();
    expect(events.length).toBeGreaterThanOrEqual(1);
  });
});

describe('Listener over tcp', () => {
  it('should listen on all interfaces with tcp:// and give a connectable contact address', async () => {
    const listener = listen('tcp://', { contactHost: '127.0.0.1' });
    const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const { listenAddress, contactAddress } = await firstValueFrom(listener.bound$);
    expect(listenAddress).toMatch(/^tcp:\/\/(\[::\]|0\.0\.0\.0):\d+$/);
    const port = Number(listenAddress.split(':').pop());
    expect(port).toBeGreaterThan(0);
    expect(contactAddress).toBe(`tcp://127.0.0.1:${port}`);
    for (const target of [contactAddress, `tcp://[::1]:${port}`]) {
      const comm = await firstValueFrom(connect(target));
      await comm.write(target);
      expect(await comm.read()).toBe(target);
      await comm.close();
    }
    sub.unsubscribe();
  });

  it("should advertise one of this machine's addresses for a wildcard bind by default", async () => {
    const os = await import('node:os');
    const mine = Object.values(os.networkInterfaces()).flat().map((a) => a!.address);
    const listener = listen('tcp://0.0.0.0:0');
    const sub = listener.subscribe();
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const host = contactAddress.slice('tcp://'.length, contactAddress.lastIndexOf(':'));
    expect(mine).toContain(host);
    sub.unsubscribe();
  });

  it('should keep serving while a client connects and never handshakes', async () => {
    const listener = listen('tcp://127.0.0.1:0', { handshakeTimeout: 300 });
    const rejected = firstValueFrom(status$.pipe(filter((e) => e.type === 'listen:rejected')));
    const sub = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const [host, port] = [contactAddress.slice(6, contactAddress.lastIndexOf(':')), Number(contactAddress.split(':').pop())];
    const silent = net.connect({ host, port });
    silent.on('error', () => undefined);
    const closedByServer = new Promise((resolve) => silent.on('close', resolve));
    const event = await rejected;
    expect(event).toMatchObject({ type: 'listen:rejected' });
    expect(String((event as { error: Error }).error.message)).toMatch(/no handshake .* within 300 ms/);
    await closedByServer;
    const comm = await firstValueFrom(connect(contactAddress));
    await comm.write(1);
    expect(await comm.read()).toBe(1);
    await comm.close();
    sub.unsubscribe();
  });

  it('should error with ListenError on a bad bind', async () => {
    const listener = listen('tcp://127.0.0.1:0');
    const sub = listener.subscribe();
    const { listenAddress } = await firstValueFrom(listener.bound$);
    const clash = listen(listenAddress);
    await expect(firstValueFrom(clash)).rejects.toBeInstanceOf(ListenError);
    sub.unsubscribe();
  });
});

describe('createConnectionPair', () => {
  it('should be usable as raw connections', async () => {
    const [a, b] = createConnectionPair();
    const got: unknown[] = [];
    b.open({ next: (m) => got.push(m), complete: () => got.push('end'), error: () => undefined });
    a.open({ next: () => undefined, complete: () => undefined, error: () => undefined });
    await a.write(1);
    await a.close();
    await new Promise((resolve) => setTimeout(resolve, 0));
    expect(got).toEqual([1, 'end']);
  });
});
