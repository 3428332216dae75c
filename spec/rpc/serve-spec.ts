/**
 * `serve(listener, handlers)`: Dask's `Server.handle_comm`. The client side is a raw comm,
 * so every message on the wire is seen as Dask would see it.
 */
import { config, defer, EMPTY, firstValueFrom, of, take, throwError, timer, toArray } from 'rxjs';
import {
  AddressError,
  batched,
  CommClosedError,
  connect,
  listen,
  serve,
  type Comm,
  type CommStatus,
  type Handler,
  type ServeConfig,
} from 'rxcomm';
import { collect, connectPair, inprocAddress, transports } from '../helpers/transports';
import { ask, gate, nextTimerTurn, only, recordStatus, startServe, until, type Served } from './helpers';

/** Dask's error reply for a failed handler, with texts where Dask puts pickles. */
const errorReplyOf = (text: string) => ({
  status: 'uncaught-error',
  exception: text,
  traceback: expect.stringContaining(text.replace(/^\w+: /, '')),
  exception_text: text,
  traceback_text: expect.stringContaining(text.replace(/^\w+: /, '')),
});

describe.each(transports)('serve over $name', (transport) => {
  let server: Served | undefined;
  const clients: Comm[] = [];
  let status: ReturnType<typeof recordStatus>;

  beforeEach(() => {
    status = recordStatus('serve:handler-error', 'serve:unknown-op');
  });

  afterEach(async () => {
    status.stop();
    await Promise.all(clients.splice(0).map((comm) => comm.close()));
    await server?.close();
    server = undefined;
  });

  async function start(handlers: Record<string, Handler>, serveConfig?: ServeConfig): Promise<Served> {
    server = await startServe(transport, handlers, serveConfig);
    return server;
  }

  async function client(address = server!.address): Promise<Comm> {
    const comm = await firstValueFrom(connect(address, { ...transport.config(), timeout: 10_000 }));
    clients.push(comm);
    return comm;
  }

  it("should reply with a handler's value, a Promise's value, or an Observable's last value", async () => {
    await start({
      value: () => 42,
      promise: async () => ({ a: [1, 2] }),
      observable: () => of('first', 'second', 'last'),
      delayed: () => timer(5).pipe(take(1)),
      empty: () => EMPTY,
      nothing: () => undefined,
    });
    const comm = await client();
    expect(await ask(comm, { op: 'value', reply: true })).toBe(42);
    expect(await ask(comm, { op: 'promise', reply: true })).toEqual({ a: [1, 2] });
    expect(await ask(comm, { op: 'observable', reply: true })).toBe('last');
    expect(await ask(comm, { op: 'delayed', reply: true })).toBe(0);
    expect(await ask(comm, { op: 'empty', reply: true })).toBeNull();
    expect(await ask(comm, { op: 'nothing' })).toBeNull(); // reply defaults to true, as in Dask
    expect(server!.accepted).toHaveLength(1);
  });

  it('should pass the handler the message without op, reply and close, and the comm', async () => {
    const seen: { args: Record<string, unknown>; peer: string }[] = [];
    await start({
      look: (args, comm) => {
        seen.push({ args, peer: comm.peerAddress });
        return 'seen';
      },
    });
    const comm = await client();
    expect(await ask(comm, { op: 'look', reply: true, x: 1, keys: ['a', 'b'] })).toBe('seen');
    expect(seen).toEqual([{ args: { x: 1, keys: ['a', 'b'] }, peer: comm.localAddress }]);
  });

  it('should write nothing for a request with reply: false, and go on serving', async () => {
    const calls: unknown[] = [];
    await start({
      record: (args) => {
        calls.push(args);
        return 'not sent';
      },
      ping: () => 'pong',
    });
    const comm = await client();
    await comm.write({ op: 'record', reply: false, n: 1 });
    await comm.write({ op: 'record', reply: false, n: 2 });
    expect(await ask(comm, { op: 'ping', reply: true })).toBe('pong'); // the first message back
    expect(calls).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("should answer a throwing handler with Dask's error reply, report it, and go on serving", async () => {
    await start({
      boom: () => {
        throw new Error('kaboom');
      },
      ping: () => 'pong',
    });
    const comm = await client();
    const reply = await ask(comm, { op: 'boom', reply: true });
    expect(reply).toEqual(errorReplyOf('Error: kaboom'));
    expect(Object.keys(reply as object).sort()).toEqual(['exception', 'exception_text', 'status', 'traceback', 'traceback_text']);
    expect(await ask(comm, { op: 'ping', reply: true })).toBe('pong');
    expect(status.events).toEqual([{ type: 'serve:handler-error', op: 'boom', peerAddress: comm.localAddress, error: expect.any(Error) }]);
    expect((status.events[0] as { error: Error }).error.message).toBe('kaboom');
  });

  it('should answer a rejecting Promise and an erroring Observable likewise', async () => {
    await start({
      rejects: async () => {
        throw new TypeError('bad argument');
      },
      errors: () => throwError(() => new RangeError('out of range')),
      failsLater: () => defer(() => timer(2)).pipe(() => throwError(() => new Error('later'))),
      throwsString: () => {
        throw 'a bare string'; // eslint-disable-line no-throw-literal
      },
    });
    const comm = await client();
    expect(await ask(comm, { op: 'rejects' })).toEqual(errorReplyOf('TypeError: bad argument'));
    expect(await ask(comm, { op: 'errors' })).toEqual(errorReplyOf('RangeError: out of range'));
    expect(await ask(comm, { op: 'failsLater' })).toEqual(errorReplyOf('Error: later'));
    expect(await ask(comm, { op: 'throwsString' })).toMatchObject({ status: 'uncaught-error', exception_text: expect.stringContaining('a bare string') });
    expect(status.events.map((event) => (event as { op: string }).op)).toEqual(['rejects', 'errors', 'failsLater', 'throwsString']);
    expect(status.events.every((event) => event.type === 'serve:handler-error')).toBe(true);
  });

  it('should answer an unknown op with null and report it', async () => {
    await start({ ping: () => 'pong' });
    const comm = await client();
    expect(await ask(comm, { op: 'no_such_op', reply: true, x: 1 })).toBeNull();
    // names that objects inherit are not handlers either
    expect(await ask(comm, { op: 'toString', reply: true })).toBeNull();
    expect(await ask(comm, { op: 'constructor', reply: true })).toBeNull();
    expect(await ask(comm, { op: 'ping', reply: true })).toBe('pong');
    const expected: CommStatus[] = ['no_such_op', 'toString', 'constructor'].map((op) => ({ type: 'serve:unknown-op', op, peerAddress: comm.localAddress }));
    expect(status.events).toEqual(expected);
  });

  it("should answer {op: 'close'} with 'OK', then close the comm", async () => {
    await start({});
    const comm = await client();
    await comm.write({ op: 'close', reply: true });
    expect(await collect(comm.read$)).toEqual({ values: ['OK'] });
  });

  it("should close the comm on {op: 'close', reply: false} without a word", async () => {
    await start({});
    const comm = await client();
    await comm.write({ op: 'close', reply: false });
    expect(await collect(comm.read$)).toEqual({ values: [] });
  });

  it('should close the comm after the reply of a request with close: true', async () => {
    const calls: unknown[] = [];
    await start({
      ping: (args) => {
        calls.push(args);
        return 'pong';
      },
    });
    const comm = await client();
    await comm.write({ op: 'ping', reply: true, close: true, x: 1 });
    expect(await collect(comm.read$)).toEqual({ values: ['pong'] });
    expect(calls).toEqual([{ x: 1 }]);
  });

  it("should handle one comm's requests one at a time, in order", async () => {
    const events: string[] = [];
    const release = gate();
    await start({
      slow: async () => {
        events.push('slow started');
        await release.promise;
        events.push('slow done');
        return 'slow';
      },
      fast: () => {
        events.push('fast started');
        return 'fast';
      },
      other: () => 'other',
    });
    const comm = await client();
    const replies = firstValueFrom(comm.read$.pipe(take(2), toArray()));
    await comm.write({ op: 'slow', reply: true });
    await comm.write({ op: 'fast', reply: true });
    await until(() => events.length > 0, 'the slow handler to start');
    // a round trip on another comm: time enough for the fast request to arrive, and wait
    expect(await ask(await client(), { op: 'other' })).toBe('other');
    expect(events).toEqual(['slow started']);
    release.open();
    expect(await replies).toEqual(['slow', 'fast']);
    expect(events).toEqual(['slow started', 'slow done', 'fast started']);
  });

  it('should handle different comms concurrently', async () => {
    const release = gate();
    await start({ slow: () => release.promise.then(() => 'slow'), fast: () => 'fast' });
    const blocked = await client();
    const slowReply = ask(blocked, { op: 'slow', reply: true });
    const free = await client();
    expect(await ask(free, { op: 'fast', reply: true })).toBe('fast');
    release.open();
    expect(await slowReply).toBe('slow');
  });

  it.each([
    ['a string', 'hello'],
    ['an array', [{ op: 'ping' }]],
    ['a map without op', { reply: true }],
    ['a map whose op is not a string', { op: 7 }],
    ['null', null],
  ])('should answer %s with an error reply, then close the comm', async (_what, message) => {
    await start({ ping: () => 'pong' });
    const comm = await client();
    await comm.write(message);
    const { values, error } = await collect(comm.read$);
    expect(error).toBeUndefined();
    expect(values).toEqual([
      {
        status: 'uncaught-error',
        exception: expect.stringContaining('Bad message type'),
        traceback: expect.any(String),
        exception_text: expect.stringContaining('Bad message type'),
        traceback_text: expect.any(String),
      },
    ]);
  });

  it('should hand a stream op\'s comm to its handler with the first message, and every later message, however late it subscribes', async () => {
    const subscribeNow = gate();
    const received: unknown[] = [];
    let firstMessage: unknown;
    let handedComm: Comm | undefined;
    const ended = gate();
    const replies: unknown[] = [];
    await start(
      { ping: () => 'pong' },
      {
        streams: {
          'register-client': async (comm, first) => {
            handedComm = comm;
            firstMessage = first;
            await subscribeNow.promise; // the client has sent everything by now
            batched(comm, { interval: 2 }).messages$.subscribe({
              next: (message) => received.push(message),
              complete: () => ended.open(),
            });
          },
        },
      },
    );
    const comm = await client();
    comm.read$.subscribe((message) => replies.push(message));
    await comm.write({ op: 'register-client', client: 'c-1', reply: false });
    // batches as BatchedSend writes them, with a lone request-shaped map among them
    const sent = Array.from({ length: 100 }, (_, i) => ({ op: 'heartbeat-client', i }));
    for (let i = 0; i < 50; i += 10) await comm.write(sent.slice(i, i + 10));
    await comm.write({ op: 'ping', reply: true }); // not a request any more: a message for the stream
    for (let i = 50; i < 100; i += 10) await comm.write(sent.slice(i, i + 10));
    await comm.close(); // resolves once everything is flushed (and, on sockets, the peer closed too)
    subscribeNow.open();
    await ended.promise;
    expect(firstMessage).toEqual({ op: 'register-client', client: 'c-1', reply: false });
    expect(handedComm?.peerAddress).toBe(comm.localAddress);
    expect(received).toEqual([...sent.slice(0, 50), { op: 'ping', reply: true }, ...sent.slice(50)]);
    expect(replies).toEqual([]); // serve() wrote nothing on a comm it handed over
  });

  it('should abort the comm of a stream handler that throws, and report it', async () => {
    await start(
      {},
      {
        streams: {
          broken: () => {
            throw new Error('cannot stream');
          },
        },
      },
    );
    const comm = await client();
    await comm.write({ op: 'broken' });
    const { error } = await collect(comm.read$);
    expect(error).toBeInstanceOf(CommClosedError);
    expect(status.events).toEqual([{ type: 'serve:handler-error', op: 'broken', peerAddress: comm.localAddress, error: expect.any(Error) }]);
  });

  it('should stop accepting and close the comms it serves when unsubscribed', async () => {
    const release = gate();
    await start(
      { ping: () => 'pong', wait: () => release.promise },
      { streams: { stream: (comm) => void comm.read$.subscribe() } },
    );
    const idle = await client();
    expect(await ask(idle, { op: 'ping' })).toBe('pong');
    const busy = await client();
    await busy.write({ op: 'wait' });
    const streaming = await client();
    await streaming.write({ op: 'stream' });
    await until(() => server!.accepted.length === 3, 'three comms at the server');
    const ends = [idle, busy, streaming].map((comm) => collect(comm.read$));
    server!.serving.unsubscribe();
    for (const end of await Promise.all(ends)) expect(end.error).toBeUndefined(); // closed cleanly
    release.open();
    await expect(firstValueFrom(connect(server!.address, { ...transport.config(), timeout: 300 }))).rejects.toBeInstanceOf(CommClosedError);
  });
});

describe('serve with a listener that cannot bind', () => {
  it('should leave the bind failure to listener.bound$, with no unhandled error', async () => {
    const unhandled = jest.fn();
    const previous = config.onUnhandledError;
    config.onUnhandledError = unhandled;
    const address = inprocAddress();
    const first = listen(address);
    const holding = first.subscribe();
    try {
      await firstValueFrom(first.bound$);
      const second = listen(address);
      const serving = serve(second, { ping: () => 'pong' });
      await expect(firstValueFrom(second.bound$)).rejects.toBeInstanceOf(AddressError);
      await nextTimerTurn();
      expect(unhandled).not.toHaveBeenCalled();
      serving.unsubscribe();
    } finally {
      holding.unsubscribe();
      config.onUnhandledError = previous;
    }
  });
});

describe.each(only(transports, 'inproc', 'tcp'))('serve over $name, of a source that completes', (transport) => {
  it('should keep serving the comms a source emitted after it completes', async () => {
    const pair = await connectPair(transport);
    const serving = serve(of(pair.server), { ping: () => 'pong' });
    try {
      // like a listener that stops: the comms it gave stay open, and served
      expect(await ask(pair.client, { op: 'ping' })).toBe('pong');
      expect(await ask(pair.client, { op: 'ping' })).toBe('pong');
    } finally {
      serving.unsubscribe();
      await pair.close();
    }
  });
});

describe.each(transports.filter((transport) => transport.name !== 'inproc'))('serve over $name, with a reply it cannot write', (transport) => {
  it('should not leave the caller waiting when a reply is larger than maxMessageSize', async () => {
    const server = await startServe(transport, { big: () => 'x'.repeat(100_000), ping: () => 'pong' }, {}, { maxMessageSize: 10_000 });
    const comm = await firstValueFrom(connect(server.address, { ...transport.config(), timeout: 10_000 }));
    try {
      // Dask's handle_comm gives up on a comm whose reply fails to write, and aborts it;
      // an error reply would do too. Either way the caller hears something.
      let heard: string | undefined;
      comm.read$.subscribe({
        next: (message) => (heard ??= `reply ${JSON.stringify(message).slice(0, 60)}`),
        error: () => (heard ??= 'aborted'),
        complete: () => (heard ??= 'closed'),
      });
      await comm.write({ op: 'big', reply: true });
      await until(() => heard !== undefined, 'a reply, or the end of the comm', 3000);
      expect(heard).not.toContain('xxxx');
    } finally {
      await comm.close();
      await server.close();
    }
  });
});
