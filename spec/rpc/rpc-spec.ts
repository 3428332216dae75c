/**
 * `rpc(address)`: Dask's request and reply over comms to one address, one call per comm
 * at a time, idle comms reused. Run over every transport; the server is a raw peer where
 * the exact message on the wire matters, `serve()` elsewhere.
 */
import { config, defer, firstValueFrom, lastValueFrom } from 'rxjs';
import { CommClosedError, ConfigError, MessageTooLargeError, Pickled, RemoteError, rpc, Serialized, type Handler, type Rpc, type ServeConfig } from 'rxcomm';
import { collect, transports } from '../helpers/transports';
import { gate, nextTimerTurn, recordStatus, startRaw, startServe, until, type RawServer, type Served } from './helpers';

describe.each(transports)('rpc over $name', (transport) => {
  const opened: { close(): Promise<void> }[] = [];
  /** Closed after the test, rpcs first. */
  const track = <T extends { close(): Promise<void> }>(thing: T): T => {
    opened.unshift(thing);
    return thing;
  };
  const rpcTo = (address: string): Rpc => track(rpc(address, { ...transport.config(), timeout: 10_000 }));
  const raw = async (onMessage: Parameters<typeof startRaw>[1]): Promise<RawServer> => track(await startRaw(transport, onMessage));
  const served = async (handlers: Record<string, Handler>, serveConfig?: ServeConfig): Promise<Served> =>
    track(await startServe(transport, handlers, serveConfig));

  afterEach(async () => {
    for (const thing of opened.splice(0)) await thing.close();
  });

  /** A raw server that answers every request asking for a reply with `{ echo: request }`. */
  const echoing = () =>
    raw((peer, message) => {
      if ((message as { reply?: unknown }).reply === true) void peer.comm.write({ echo: message });
    });

  it('should write {op, reply: true, ...args} for a call, emit the reply and complete', async () => {
    const server = await echoing();
    const scheduler = rpcTo(server.address);
    const { values, error } = await collect(scheduler.call('add', { x: 1, y: [2, 'three'], nested: { z: null } }));
    expect(error).toBeUndefined();
    const sent = { op: 'add', reply: true, x: 1, y: [2, 'three'], nested: { z: null } };
    expect(values).toEqual([{ echo: sent }]);
    expect(server.peers).toHaveLength(1);
    expect(server.peers[0].messages).toEqual([sent]);
  });

  it('should write {op, reply: true} for a call without arguments', async () => {
    const server = await echoing();
    const scheduler = rpcTo(server.address);
    expect(await lastValueFrom(scheduler.call('identity'))).toEqual({ echo: { op: 'identity', reply: true } });
  });

  it('should write {op, reply: false, ...args} for a send and complete once written, reading no reply', async () => {
    const server = await echoing(); // answers only requests that ask for a reply
    const scheduler = rpcTo(server.address);
    const { values, error } = await collect(scheduler.send('log_event', { topic: 't', msg: 'hello' }));
    expect(error).toBeUndefined();
    expect(values).toEqual([]); // completes, emitting nothing
    // the comm goes back idle with nothing pending: the next call gets its own reply, on the same comm
    expect(await lastValueFrom(scheduler.call('identity'))).toEqual({ echo: { op: 'identity', reply: true } });
    expect(server.peers).toHaveLength(1);
    expect(server.peers[0].messages).toEqual([
      { op: 'log_event', reply: false, topic: 't', msg: 'hello' },
      { op: 'identity', reply: true },
    ]);
  });

  it('should open one comm per concurrent call', async () => {
    const release = gate();
    let inHandler = 0;
    const server = await served({
      wait: async ({ i }) => {
        inHandler++;
        await release.promise;
        return i;
      },
    });
    const scheduler = rpcTo(server.address);
    const replies = Promise.all([0, 1, 2, 3, 4].map((i) => lastValueFrom(scheduler.call('wait', { i }))));
    await until(() => inHandler === 5, 'five calls in their handlers');
    expect(scheduler.openComms).toBe(5);
    expect(server.accepted).toHaveLength(5);
    release.open();
    expect(await replies).toEqual([0, 1, 2, 3, 4]);
    expect(scheduler.openComms).toBe(5); // all idle now, kept for reuse
  });

  it('should reuse one comm for sequential calls', async () => {
    const server = await served({ double: ({ x }) => (x as number) * 2 });
    const scheduler = rpcTo(server.address);
    for (let x = 0; x < 10; x++) expect(await lastValueFrom(scheduler.call('double', { x }))).toBe(2 * x);
    expect(server.accepted).toHaveLength(1);
    expect(scheduler.openComms).toBe(1);
  });

  it('should error with RemoteError on an error reply, and keep using the comm', async () => {
    const server = await served({
      missing: ({ key }) => {
        throw new Error(`no such key: ${String(key)}`);
      },
      fine: () => 'fine',
    });
    const scheduler = rpcTo(server.address);
    const { values, error } = await collect(scheduler.call('missing', { key: 'x' }));
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(RemoteError);
    const remote = error as RemoteError;
    expect(remote.name).toBe('RemoteError');
    expect(remote.code).toBe('ERR_REMOTE');
    expect(remote.op).toBe('missing');
    expect(remote.address).toBe(server.address);
    expect(remote.exceptionText).toBe('Error: no such key: x');
    expect(remote.tracebackText).toContain('no such key: x');
    expect(remote.message).toContain('Error: no such key: x');
    expect(await lastValueFrom(scheduler.call('fine'))).toBe('fine');
    expect(server.accepted).toHaveLength(1);
  });

  it("should take only the texts of a Dask error reply, never decoding its pickled fields", async () => {
    // What a Dask handler's failure looks like: pickles in exception/traceback, texts beside them.
    const pickleHeader = { serializer: 'pickle', writeable: [], 'split-num-sub-frames': [1], 'split-offsets': [0], compression: [null] };
    const server = await raw((peer) => {
      void peer.comm.write({
        status: 'uncaught-error',
        exception: new Serialized(pickleHeader, [Uint8Array.from([0x80, 0x05, 0x95, 0xff, 0xff, 0x2e])]),
        traceback: new Pickled({ 'pickled-obj': Uint8Array.from([0x80, 0x05, 0x63, 0x6f, 0x73, 0x2e]) }, []),
        exception_text: "KeyError('x')",
        traceback_text: '  File "scheduler.py", line 1, in get_metadata\n',
      });
    });
    const scheduler = rpcTo(server.address);
    const { error } = await collect(scheduler.call('get_metadata', { keys: ['x'] }));
    expect(error).toBeInstanceOf(RemoteError);
    const remote = error as RemoteError;
    expect(remote.exceptionText).toBe("KeyError('x')");
    expect(remote.tracebackText).toBe('  File "scheduler.py", line 1, in get_metadata\n');
    expect(remote.op).toBe('get_metadata');
    expect(remote.address).toBe(server.address);
    expect(remote.cause).toBeUndefined();
  });

  it('should still error with RemoteError when a bare error reply has no texts', async () => {
    const server = await raw((peer) => void peer.comm.write({ status: 'uncaught-error', exception: new Uint8Array([0x80]), traceback: null }));
    const scheduler = rpcTo(server.address);
    const { error } = await collect(scheduler.call('boom'));
    expect(error).toBeInstanceOf(RemoteError);
    expect(typeof (error as RemoteError).exceptionText).toBe('string');
    expect((error as RemoteError).tracebackText).toBe('');
  });

  it('should abort the comm when a call is unsubscribed before its reply, and make the next call on a fresh comm', async () => {
    const server = await raw((peer, message) => {
      if ((message as { op: string }).op === 'fast') void peer.comm.write('fast reply');
      // 'slow' is never answered
    });
    const scheduler = rpcTo(server.address);
    const slow = scheduler.call('slow').subscribe();
    await until(() => server.peers[0]?.messages.length === 1, 'the slow request at the server');
    slow.unsubscribe();
    const { error } = await server.peers[0].whenEnded;
    expect(error).toBeInstanceOf(CommClosedError); // aborted, not closed cleanly
    expect(scheduler.openComms).toBe(0);
    expect(await lastValueFrom(scheduler.call('fast'))).toBe('fast reply');
    expect(server.peers).toHaveLength(2);
    expect(server.peers[1].messages).toEqual([{ op: 'fast', reply: true }]);
    expect(scheduler.openComms).toBe(1);
  });

  it('should close its idle comms on close(), and error later calls with CommClosedError', async () => {
    const server = await served({ ping: () => 'pong' });
    const scheduler = rpcTo(server.address);
    expect(await lastValueFrom(scheduler.call('ping'))).toBe('pong');
    const serverEnd = collect(server.accepted[0].read$);
    await scheduler.close();
    expect(await serverEnd).toEqual({ values: [] }); // a clean close, not an abort
    expect(scheduler.openComms).toBe(0);
    const { error } = await collect(scheduler.call('ping'));
    expect(error).toBeInstanceOf(CommClosedError);
    expect((await collect(scheduler.send('ping'))).error).toBeInstanceOf(CommClosedError);
    expect(server.accepted).toHaveLength(1);
  });

  it('should error a call in flight with CommClosedError on close()', async () => {
    const release = gate();
    const server = await served({ wait: () => release.promise });
    const scheduler = rpcTo(server.address);
    const call = collect(scheduler.call('wait'));
    await until(() => server.accepted.length === 1, 'the connection');
    await scheduler.close();
    expect((await call).error).toBeInstanceOf(CommClosedError);
    release.open();
  });

  it("should refuse 'op' or 'reply' among the arguments with ConfigError, opening nothing", async () => {
    const server = await served({ ping: () => 'pong' });
    const scheduler = rpcTo(server.address);
    for (const args of [{ op: 'other' }, { reply: false }, { x: 1, op: 'x', reply: true }]) {
      await expect(lastValueFrom(defer(() => scheduler.call('ping', args)))).rejects.toBeInstanceOf(ConfigError);
      await expect(lastValueFrom(defer(() => scheduler.send('ping', args)))).rejects.toBeInstanceOf(ConfigError);
    }
    expect(scheduler.openComms).toBe(0);
    expect(server.accepted).toHaveLength(0);
  });

  it('should drop an idle comm that the server closes, and open a new one for the next call', async () => {
    // close: true asks serve() to close the comm after its reply
    const server = await served({ ping: () => 'pong' });
    const scheduler = rpcTo(server.address);
    expect(await lastValueFrom(scheduler.call('ping', { close: true }))).toBe('pong');
    await until(() => scheduler.openComms === 0, 'the closed comm to leave the idle set');
    expect(await lastValueFrom(scheduler.call('ping'))).toBe('pong');
    expect(server.accepted).toHaveLength(2);
    expect(scheduler.openComms).toBe(1);
  });

  it('should drop an idle comm whose peer talks out of turn, without an unhandled error', async () => {
    const unhandled = jest.fn();
    const previous = config.onUnhandledError;
    config.onUnhandledError = unhandled;
    try {
      // a confused server: two messages for one request
      const server = await raw((peer) => {
        void peer.comm.write('the reply');
        void peer.comm.write('out of turn');
      });
      const scheduler = rpcTo(server.address);
      expect(await lastValueFrom(scheduler.call('ping'))).toBe('the reply');
      const { error } = await server.peers[0].whenEnded;
      expect(error).toBeInstanceOf(CommClosedError); // the client aborted it
      await nextTimerTurn();
      expect(unhandled).not.toHaveBeenCalled();
      expect(scheduler.openComms).toBe(0);
      expect(await lastValueFrom(scheduler.call('ping'))).toBe('the reply');
      expect(server.peers).toHaveLength(2);
    } finally {
      config.onUnhandledError = previous;
    }
  });

  it('should retry once, on a fresh comm, a call whose reused comm turns out dead', async () => {
    // Each comm answers its first request and closes on the second, unanswered: to the
    // client, a comm that looked idle and fine dies under the call.
    const server = await raw((peer, message, index) => {
      if (index === 0) void peer.comm.write({ answeredBy: server.peers.indexOf(peer), op: (message as { op: string }).op });
      else void peer.comm.close();
    });
    const scheduler = rpcTo(server.address);
    expect(await lastValueFrom(scheduler.call('first'))).toEqual({ answeredBy: 0, op: 'first' });
    expect(await lastValueFrom(scheduler.call('second'))).toEqual({ answeredBy: 1, op: 'second' });
    expect(server.peers.map((peer) => peer.messages)).toEqual([
      [
        { op: 'first', reply: true },
        { op: 'second', reply: true },
      ],
      [{ op: 'second', reply: true }],
    ]);
  });

  it('should end a comm its peer closed under a call at once, leaving no socket behind', async () => {
    const sockets = () => process.getActiveResourcesInfo().filter((resource) => resource === 'TCPSocketWrap').length;
    const before = sockets();
    const timeouts = recordStatus('comm:close-timeout');
    try {
      // as in the retry above: the server closes each comm on its second request
      const server = await raw((peer, _message, index) => {
        if (index === 0) void peer.comm.write('first');
        else void peer.comm.close();
      });
      const scheduler = track(rpc(server.address, { ...transport.config(), timeout: 10_000, closeTimeout: 1000 }));
      expect(await lastValueFrom(scheduler.call('ping'))).toBe('first');
      expect(await lastValueFrom(scheduler.call('ping'))).toBe('first'); // retried on a second comm
      await scheduler.close();
      await server.close();
      // A socket reset after its FIN was sent fails with EINVAL in Node and is never
      // released (and spins the event loop): every socket must be gone, not just closed.
      await until(() => sockets() <= before, 'every socket of the test to be released', 3000);
      expect(timeouts.events).toEqual([]);
    } finally {
      timeouts.stop();
    }
  });

  it('should not retry a call whose fresh comm dies', async () => {
    const server = await raw((peer) => void peer.comm.close());
    const scheduler = rpcTo(server.address);
    const { error } = await collect(scheduler.call('ping'));
    expect(error).toBeInstanceOf(CommClosedError);
    expect(server.peers).toHaveLength(1);
    expect(scheduler.openComms).toBe(0);
  });

  // inproc passes references: there is no size to exceed
  if (transport.name !== 'inproc') {
    it('should fail a request larger than maxMessageSize with MessageTooLargeError, and keep the comm it never wrote to', async () => {
      const server = await served({ echo: ({ data }) => (data as string).length });
      const scheduler = track(rpc(server.address, { ...transport.config(), timeout: 10_000, maxMessageSize: 10_000 }));
      expect(await lastValueFrom(scheduler.call('echo', { data: 'small' }))).toBe(5);
      const { error } = await collect(scheduler.call('echo', { data: 'x'.repeat(100_000) }));
      expect(error).toBeInstanceOf(MessageTooLargeError);
      // nothing reached the wire: the comm is as good as before, and no other comm was opened
      expect(await lastValueFrom(scheduler.call('echo', { data: 'small again' }))).toBe(11);
      expect(server.accepted).toHaveLength(1);
    });
  }

  it('should be cold: nothing is sent until subscribed, and each subscription is one call', async () => {
    let calls = 0;
    const server = await served({ count: () => ++calls });
    const scheduler = rpcTo(server.address);
    const call = scheduler.call<number>('count');
    expect(server.accepted).toHaveLength(0);
    expect(await firstValueFrom(call)).toBe(1);
    expect(await firstValueFrom(call)).toBe(2);
    expect(scheduler.address).toBe(server.address);
  });

  it('should error a call with the connect failure when nobody listens', async () => {
    const server = await served({});
    const address = server.address;
    await server.close();
    const scheduler = track(rpc(address, { ...transport.config(), timeout: 300 }));
    const { error } = await collect(scheduler.call('ping'));
    expect(error).toBeInstanceOf(CommClosedError);
    expect(scheduler.openComms).toBe(0);
  });
});
