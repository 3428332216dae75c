/**
 * The dead-peer policy in virtual time: when a comm pings its peer and when it gives up.
 * A fake backend (`watch://`) hands out in-process connections with a scripted
 * `PeerProbe`: `received` grows at the frames a test says the peer sent something, and
 * each `ping()` is recorded with its frame. The far end answers the handshake with its
 * own `deadPeerTimeout`, as an rxcomm listener does.
 */
import { catchError, map, Observable, of } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { connect, DeadPeerError, getBackend, registerBackend, type Comm, type Connection, type PeerProbe } from 'rxcomm';
import { acceptHandshake, createConnectionPair } from 'rxcomm/testing';

describe('dead-peer watch (marbles)', () => {
  let testScheduler: TestScheduler;
  /** What the next connection's peer does: frames at which something arrives from it. */
  let peerSends: number[];
  /** The far end's deadPeerTimeout, advertised in its handshake. */
  let peerTimeout: number | undefined;
  let pings: number[];
  /** The far end's comm, once its handshake is done. */
  let farEnd: Comm | undefined;

  beforeAll(() => {
    registerBackend('watch', {
      ...getBackend('inproc'),
      connect: () =>
        new Observable<Connection>((subscriber) => {
          subscriber.next(probedConnection());
          subscriber.complete();
        }),
    });
  });

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    peerSends = [];
    peerTimeout = 3000;
    pings = [];
    farEnd = undefined;
  });

  /** A client end whose far end answers the handshake, with the scripted probe attached. */
  function probedConnection(): Connection {
    const [client, server] = createConnectionPair({ scheduler: testScheduler });
    if (peerTimeout === undefined) {
      // A Dask peer: its handshake has no 'rxcomm-heartbeat'.
      const daskHandshake = { compression: null, python: [3, 11, 2], 'pickle-protocol': 5 };
      server.open({ next: () => void server.write(daskHandshake), complete: () => undefined, error: () => undefined });
    } else {
      acceptHandshake(server, { deadPeerTimeout: peerTimeout }).subscribe((comm) => (farEnd = comm));
    }
    let received = 0;
    for (const frame of peerSends) testScheduler.schedule(() => received++, frame);
    const probe: PeerProbe = {
      get received() {
        return received;
      },
      sent: 0,
      ping: () => pings.push(testScheduler.now()),
    };
    // As tcp's: a probe only for a peer that understands heartbeats.
    return Object.assign(client, { peerProbe: (understands: boolean) => (understands ? probe : undefined) });
  }

  /** How the comm's stream ended, as a marble value. */
  function ending(comm$: Observable<Comm>, keepReading = true): Observable<string> {
    return new Observable<string>((subscriber) => {
      const inner = comm$.subscribe((comm) => {
        if (!keepReading) return;
        comm.read$
          .pipe(
            map(() => 'm'),
            catchError((error: Error) => of(error instanceof DeadPeerError ? `dead after ${error.silentFor}` : error.name)),
          )
          .subscribe((v) => {
            subscriber.next(v);
            subscriber.complete();
          });
      });
      return () => inner.unsubscribe();
    });
  }

  it('should fail a silent peer with DeadPeerError once deadPeerTimeout has passed', () => {
    testScheduler.run(({ expectObservable }) => {
      const comm$ = connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 300 });
      // Ticks every 10 ms (a tenth of the 100 ms ping interval); silent since the handshake at 0.
      expectObservable(ending(comm$)).toBe('300ms (d|)', { d: 'dead after 300' });
    });
    // A third of the shorter timeout without a sound: ping, then again each interval.
    expect(pings).toEqual([100, 200]);
  });

  it('should keep a peer that sends something within each timeout', () => {
    testScheduler.run(({ expectObservable }) => {
      peerSends = [250, 500, 750, 1000];
      const comm$ = connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 300 });
      // The last sign of life at 1000: dead 300 ms later, at the first tick past it.
      expectObservable(ending(comm$)).toBe('1300ms (d|)', { d: 'dead after 300' });
    });
  });

  it('should ping at a third of the peer timeout when that is the shorter one', () => {
    testScheduler.run(({ expectObservable }) => {
      peerTimeout = 150;
      const comm$ = connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 600 });
      expectObservable(ending(comm$)).toBe('600ms (d|)', { d: 'dead after 600' });
    });
    expect(pings).toEqual([50, 100, 150, 200, 250, 300, 350, 400, 450, 500, 550]);
  });

  it('should never judge the peer with deadPeerTimeout 0, only answer its wish for heartbeats', () => {
    let client: Comm | undefined;
    testScheduler.run(() => {
      peerTimeout = 300;
      connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 0 }).subscribe((comm) => (client = comm));
      testScheduler.schedule(() => expect(client!.closed).toBe(false), 1999);
      testScheduler.schedule(() => client!.abort(), 2000); // a watch runs as long as its comm
    });
    expect(pings.slice(0, 3)).toEqual([100, 200, 300]);
  });

  it('should not watch a peer that does not speak heartbeats (a Dask peer over tcp)', () => {
    testScheduler.run(({ expectObservable }) => {
      peerTimeout = undefined;
      const comm$ = connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 300 });
      expectObservable(ending(comm$), '^ 2000ms !').toBe('');
    });
    expect(pings).toEqual([]);
  });

  it('should not judge a peer while this side has stopped reading', () => {
    let client: Comm | undefined;
    testScheduler.run(() => {
      // Nobody reads on this side, which stops reading after one unread message.
      connect('watch://x', { scheduler: testScheduler, deadPeerTimeout: 300, readHighWaterMark: 1 }).subscribe((comm) => (client = comm));
      testScheduler.schedule(() => void farEnd!.write('unread'), 5);
      testScheduler.schedule(() => client!.abort(), 2000);
      testScheduler.schedule(() => expect(client!.closed).toBe(false), 1999);
    });
    expect(pings.length).toBeGreaterThan(0); // it still asks the peer for signs of life
  });
});
