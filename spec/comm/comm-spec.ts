import { config, firstValueFrom, from, map, Subscription, take, toArray, filter } from 'rxjs';
import { CommClosedError, status$, writeTo, type CommStatus } from 'rxcomm';
import { collect, connectPair, transports, type Connected } from '../helpers/transports';

describe.each(transports)('Comm over $name', (transport) => {
  let pair: Connected;

  beforeEach(async () => {
    pair = await connectPair(transport);
  });

  afterEach(async () => {
    await pair.close();
  });

  it('should have matching addresses on both ends', () => {
    const { client, server } = pair;
    expect(client.localAddress.startsWith(`${transport.name}://`)).toBe(true);
    expect(client.peerAddress).toBe(server.localAddress);
    expect(server.peerAddress).toBe(client.localAddress);
    expect(client.localAddress).not.toBe(client.peerAddress);
  });

  it("should keep both handshakes, with each side's address added", () => {
    const { client, server } = pair;
    expect(client.localInfo).toMatchObject({ 'pickle-protocol': 5, compression: null, address: client.localAddress });
    expect(client.remoteInfo).toMatchObject({ 'pickle-protocol': 5, compression: null, address: client.peerAddress });
    expect(server.remoteInfo.address).toBe(client.localAddress);
    expect(client.handshakeOptions).toEqual({ 'pickle-protocol': 5, compression: null });
  });

  it('should deliver every message once, in order', async () => {
    const received = firstValueFrom(pair.server.read$.pipe(take(2000), toArray()));
    for (let i = 0; i < 2000; i++) void pair.client.write({ i });
    expect((await received).map((m) => (m as { i: number }).i)).toEqual([...Array(2000).keys()]);
  });

  it('should keep messages that arrive before anyone subscribes', async () => {
    for (let i = 0; i < 10; i++) await pair.client.write({ i });
    await pair.client.write('last');
    expect(await pair.server.read()).toEqual({ i: 0 }); // pull one
    const rest = await firstValueFrom(pair.server.read$.pipe(take(10), toArray()));
    expect(rest).toEqual([...[...Array(9).keys()].map((i) => ({ i: i + 1 })), 'last']);
  });

  it('should resolve write with a number and work as an echo server', async () => {
    pair.server.read$.subscribe(pair.server);
    const written = await pair.client.write({ op: 'ping', data: [1, 'two', null] });
    expect(typeof written).toBe('number');
    expect(await pair.client.read()).toEqual({ op: 'ping', data: [1, 'two', null] });
  });

  it('should pipe a stream through operators both ways', async () => {
    pair.server.read$.pipe(map((n) => (n as number) * 2)).subscribe(pair.server);
    from([1, 2, 3]).pipe(writeTo(pair.client)).subscribe();
    expect(await firstValueFrom(pair.client.read$.pipe(take(3), toArray()))).toEqual([2, 4, 6]);
  });

  it('should write a source subscribed to it, then close when it completes', async () => {
    from(['a', 'b', 'c']).subscribe(pair.client);
    const { values, error } = await collect(pair.server.read$);
    expect(values).toEqual(['a', 'b', 'c']);
    expect(error).toBeUndefined();
    expect(pair.client.closed).toBe(true);
  });

  it('should end the stream on both sides on close', async () => {
    const serverEnd = collect(pair.server.read$);
    const clientEnd = collect(pair.client.read$);
    await pair.client.write('bye');
    await pair.client.close();
    expect(await serverEnd).toEqual({ values: ['bye'] });
    expect(await clientEnd).toEqual({ values: [] });
    expect(pair.client.closed).toBe(true);
    expect(pair.server.closed).toBe(true);
    expect(String(pair.client)).toContain('(closed)');
  });

  it('should show both addresses and the state in its string form', () => {
    const text = String(pair.client);
    expect(text).toContain(pair.client.localAddress);
    expect(text).toContain(pair.client.peerAddress);
    expect(text).not.toContain('closed');
  });

  it('should reject writes after close, on both ends, without throwing', async () => {
    await pair.client.close();
    await expect(pair.client.write('x')).rejects.toBeInstanceOf(CommClosedError);
    await collect(pair.server.read$);
    await expect(pair.server.write('x')).rejects.toBeInstanceOf(CommClosedError);
    await expect(pair.client.read()).rejects.toBeInstanceOf(CommClosedError);
  });

  it('should error the peer reader with CommClosedError on abort, and complete its own', async () => {
    const serverEnd = collect(pair.server.read$);
    const clientEnd = collect(pair.client.read$);
    pair.client.abort();
    const { error } = await serverEnd;
    expect(error).toBeInstanceOf(CommClosedError);
    expect((await clientEnd).error).toBeUndefined(); // this side asked for the end: no error
    await expect(pair.client.read()).rejects.toBeInstanceOf(CommClosedError);
    expect(pair.server.closed).toBe(true);
    await expect(pair.server.write('x')).rejects.toBeInstanceOf(CommClosedError);
  });

  it('should not crash a reader without an error handler when its own comm aborts', async () => {
    const unhandled = jest.fn();
    const previous = config.onUnhandledError;
    config.onUnhandledError = unhandled;
    try {
      const seen: unknown[] = [];
      let completed = false;
      pair.client.read$.subscribe({ next: (m) => seen.push(m), complete: () => (completed = true) });
      pair.client.read$.subscribe((m) => seen.push(m)); // the usual first-hour code: no error handler
      pair.client.abort();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(completed).toBe(true);
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      config.onUnhandledError = previous;
    }
  });

  it('should make a fast writer wait for a slow reader, then deliver everything', async () => {
    await pair.close();
    pair = await connectPair(transport, { readHighWaterMark: 4, writeHighWaterMark: 64 * 1024 });
    const payload = 'x'.repeat(16 * 1024);
    let settled = 0;
    const count = 2000; // 32 MiB on the wire: more than socket buffers hold
    const writes = Array.from({ length: count }, (_, i) => pair.client.write({ i, payload }).then(() => settled++));
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(settled).toBeLessThan(count); // the reader has taken nothing: writers are held back
    const received = await firstValueFrom(pair.server.read$.pipe(take(count), toArray()));
    await Promise.all(writes);
    expect(received.map((m) => (m as { i: number }).i)).toEqual([...Array(count).keys()]);
  });

  it('should settle every pending write when the comm aborts', async () => {
    await pair.close();
    pair = await connectPair(transport, { readHighWaterMark: 2, writeHighWaterMark: 64 * 1024 });
    const payload = 'y'.repeat(16 * 1024);
    const writes = Array.from({ length: 2000 }, () => pair.client.write({ payload }));
    await new Promise((resolve) => setTimeout(resolve, 100));
    pair.client.abort();
    const results = await Promise.allSettled(writes);
    const rejected = results.filter((r) => r.status === 'rejected');
    expect(rejected.length).toBeGreaterThan(0);
    for (const r of rejected) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(CommClosedError);
  });

  it('should report a failed Observer write on status$ instead of throwing', async () => {
    const events: CommStatus[] = [];
    const sub: Subscription = status$.pipe(filter((e) => e.type === 'comm:write-failed')).subscribe((e) => events.push(e));
    await pair.client.close();
    pair.client.next('too late');
    await new Promise((resolve) => setTimeout(resolve, 10));
    sub.unsubscribe();
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ type: 'comm:write-failed', localAddress: pair.client.localAddress });
  });
});

describe('Comm over inproc', () => {
  it('should pass messages by reference, without a copy', async () => {
    const pair = await connectPair(transports[0]);
    const message = { big: new Uint8Array(1024), nested: { list: [1, 2] } };
    await pair.client.write(message);
    expect(await pair.server.read()).toBe(message);
    await pair.close();
  });
});
