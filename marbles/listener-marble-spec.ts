/**
 * The listener lifecycle in virtual time, over a fake backend (`marblelisten://`)
 * whose listen Observable is a cold marble of backend events.
 */
import { map, Observable } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { getBackend, listen, registerBackend, status$, type Connection, type ListenEvent, type CommStatus } from 'rxcomm';
import { acceptHandshake, createConnectionPair } from 'rxcomm/testing';

describe('listener lifecycle (marbles)', () => {
  let testScheduler: TestScheduler;
  let events$: Observable<ListenEvent>;

  beforeAll(() => {
    registerBackend('marblelisten', { ...getBackend('inproc'), listen: () => events$ });
  });

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  const bound: ListenEvent = { type: 'bound', listenAddress: 'marblelisten://l', contactAddress: 'marblelisten://l' };

  /** The listener's end of a connection whose client handshakes like Dask. */
  function incoming(name: string): ListenEvent {
    const [client, server] = createConnectionPair({ scheduler: testScheduler, addresses: [`client://${name}`, 'marblelisten://l'] });
    acceptHandshake(client).subscribe();
    return { type: 'connection', connection: server };
  }

  /** A connection whose client sends garbage instead of a handshake. */
  function rude(): ListenEvent {
    const [client, server] = createConnectionPair({ scheduler: testScheduler, addresses: ['client://rude', 'marblelisten://l'] });
    client.open({ next: () => undefined, complete: () => undefined, error: () => undefined });
    void client.write('hello?');
    return { type: 'connection', connection: server as Connection };
  }

  it('should bind on subscribe, emit each comm once handshaken, and unbind on unsubscribe', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const backend = cold<ListenEvent>('b-x--y-', { b: bound, x: incoming('x'), y: incoming('y') });
      events$ = backend;
      const peers = listen('marblelisten://l').pipe(map((comm) => comm.peerAddress));
      expectObservable(peers, '^ 5ms !').toBe('--x--y', { x: 'client://x', y: 'client://y' });
      expectSubscriptions(backend.subscriptions).toBe('^ 5ms !');
    });
  });

  it('should share one binding between subscribers', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const backend = cold<ListenEvent>('b-x-', { b: bound, x: incoming('x') });
      events$ = backend;
      const listener = listen('marblelisten://l');
      expectObservable(listener.pipe(map(() => 'c')), '^--!').toBe('--c');
      expectObservable(listener.bound$.pipe(map((b) => b.contactAddress))).toBe('(a|)', { a: 'marblelisten://l' });
      expectSubscriptions(backend.subscriptions).toBe('^--!');
    });
  });

  it('should drop a connection whose handshake fails and keep serving', () => {
    const rejected: CommStatus[] = [];
    const sub = status$.subscribe((e) => e.type === 'listen:rejected' && rejected.push(e));
    testScheduler.run(({ cold, expectObservable }) => {
      events$ = cold<ListenEvent>('b-r-y-', { b: bound, r: rude(), y: incoming('y') });
      expectObservable(listen('marblelisten://l').pipe(map((c) => c.peerAddress)), '^ 5ms !').toBe('----y', { y: 'client://y' });
    });
    sub.unsubscribe();
    expect(rejected).toEqual([expect.objectContaining({ type: 'listen:rejected', peerAddress: 'client://rude' })]);
  });

  it('should drop a connection that never handshakes after handshakeTimeout', () => {
    const rejected: CommStatus[] = [];
    const sub = status$.subscribe((e) => e.type === 'listen:rejected' && rejected.push(e));
    testScheduler.run(({ cold, expectObservable }) => {
      const [, silentServerEnd] = createConnectionPair({ scheduler: testScheduler });
      events$ = cold<ListenEvent>('b-s', { b: bound, s: { type: 'connection', connection: silentServerEnd } });
      expectObservable(listen('marblelisten://l', { handshakeTimeout: 50 }), '^ 99ms !').toBe('');
    });
    sub.unsubscribe();
    expect(rejected).toHaveLength(1);
    expect((rejected[0] as { error: Error }).error.message).toMatch(/within 50 ms/);
  });

  it('should run the handshake timeout on the scheduler given as an option', () => {
    // Outside run(): only the scheduler passed in `scheduler` is virtual, so flush()
    // reaching the timeout proves the listener's timer runs there.
    const rejected: CommStatus[] = [];
    const sub = status$.subscribe((e) => e.type === 'listen:rejected' && rejected.push(e));
    const [, silentServerEnd] = createConnectionPair({ scheduler: testScheduler });
    events$ = new Observable<ListenEvent>((subscriber) => {
      subscriber.next(bound);
      subscriber.next({ type: 'connection', connection: silentServerEnd });
    });
    const serving = listen('marblelisten://l', { handshakeTimeout: 50, scheduler: testScheduler }).subscribe();
    expect(rejected).toHaveLength(0);
    testScheduler.flush();
    expect(testScheduler.now()).toBe(50);
    expect(rejected).toHaveLength(1);
    expect((rejected[0] as { error: Error }).error.message).toMatch(/within 50 ms/);
    serving.unsubscribe();
    sub.unsubscribe();
  });

  it('should error when binding fails', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      events$ = cold<ListenEvent>('--#', undefined, new Error('EADDRINUSE'));
      expectObservable(listen('marblelisten://l')).toBe('--#', undefined, new Error('EADDRINUSE'));
    });
  });
});
