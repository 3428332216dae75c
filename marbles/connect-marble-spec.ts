/**
 * Dask's connect policy in virtual time. A fake backend (`marble://`) hands out one
 * cold Observable per attempt; with `random = () => 1` every backoff is its cap:
 * 10, 20, 40 ... ms after each failure.
 */
import { catchError, map, Observable, of } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { CommClosedError, connect, FatalCommClosedError, getBackend, registerBackend, type Connection } from 'rxcomm';
import { acceptHandshake, createConnectionPair } from 'rxcomm/testing';

describe('connect policy (marbles)', () => {
  let testScheduler: TestScheduler;
  let attempts: Observable<Connection>[];

  beforeAll(() => {
    registerBackend('marble', {
      ...getBackend('inproc'),
      connect: () => attempts.shift() ?? new Observable<Connection>(),
    });
  });

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    attempts = [];
  });

  /** A connection whose far end answers the handshake, as a listener would. */
  function answeringConnection(): Connection {
    const [client, server] = createConnectionPair({ scheduler: testScheduler });
    acceptHandshake(server).subscribe();
    return client;
  }

  /** The outcome as a marble value: 'c' for a comm, or the error's class and message. */
  function outcome(source: Observable<unknown>): Observable<string> {
    return source.pipe(
      map(() => 'c'),
      catchError((err: Error) => of(`${err.name}: ${err.message}`)),
    );
  }

  const refused = () => new CommClosedError('connection refused');

  it('should retry refusals at the frames the backoff predicts, then emit the comm', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const a1 = cold<Connection>('-#', undefined, refused());
      const a2 = cold<Connection>('-#', undefined, refused());
      const a3 = cold<Connection>('-#', undefined, refused());
      const a4 = cold<Connection>('-(c|)', { c: answeringConnection() });
      attempts = [a1, a2, a3, a4];

      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler, random: () => 1 }))).toBe('74ms (c|)');
      // failure at 1, +10 → 11; failure at 12, +20 → 32; failure at 33, +40 → 73
      expectSubscriptions(a1.subscriptions).toBe('^!');
      expectSubscriptions(a2.subscriptions).toBe('11ms ^!');
      expectSubscriptions(a3.subscriptions).toBe('32ms ^!');
      expectSubscriptions(a4.subscriptions).toBe('73ms ^!');
    });
  });

  it('should draw each backoff uniformly below its cap', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      attempts = [cold<Connection>('-#', undefined, refused()), cold<Connection>('-(c|)', { c: answeringConnection() })];
      // half of the 10 ms cap
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler, random: () => 0.5 }))).toBe('7ms (c|)');
    });
  });

  it('should cap the first attempt at a fifth of the timeout and tear it down', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const hanging = cold<Connection>('-');
      const next = cold<Connection>('-(c|)', { c: answeringConnection() });
      attempts = [hanging, next];

      expectObservable(outcome(connect('marble://x', { timeout: 1000, scheduler: testScheduler, random: () => 1 }))).toBe(
        '211ms (c|)',
      );
      expectSubscriptions(hanging.subscriptions).toBe('^ 199ms !');
      expectSubscriptions(next.subscriptions).toBe('210ms ^!');
    });
  });

  it('should count a handshake that never comes inside the attempt timeout', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [silentClient] = createConnectionPair({ scheduler: testScheduler }); // nobody answers
      attempts = [cold<Connection>('-(c|)', { c: silentClient }), cold<Connection>('-(c|)', { c: answeringConnection() })];
      expectObservable(outcome(connect('marble://x', { timeout: 1000, scheduler: testScheduler, random: () => 1 }))).toBe(
        '211ms (c|)',
      );
    });
  });

  it('should not retry a fatal error', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const fatal = cold<Connection>('--#', undefined, new FatalCommClosedError('certificate has expired'));
      const never = cold<Connection>('-(c|)', { c: answeringConnection() });
      attempts = [fatal, never];
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler }))).toBe('--(e|)', {
        e: 'FatalCommClosedError: certificate has expired',
      });
      expectSubscriptions(fatal.subscriptions).toBe('^-!');
      expectSubscriptions(never.subscriptions).toBe([]);
    });
  });

  it('should not retry an error that is not a comm error', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      attempts = [cold<Connection>('-#', undefined, new TypeError('bad option'))];
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler }))).toBe('-(e|)', { e: 'TypeError: bad option' });
    });
  });

  it('should give up at the overall deadline, with no cause when every attempt hung', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const first = cold<Connection>('-');
      const second = cold<Connection>('-');
      attempts = [first, second];
      let cause: unknown;
      const result$ = connect('marble://x', { timeout: 100, scheduler: testScheduler, random: () => 1 }).pipe(
        catchError((err: Error) => {
          cause = err.cause;
          return of(`${err.name}: ${err.message}`);
        }),
      );
      expectObservable(result$).toBe('100ms (e|)', {
        e: 'ConnectTimeoutError: Timed out trying to connect to marble://x after 0.1 s',
      });
      // the first attempt gets 20 ms; the second, from 30, gets the 70 left
      expectSubscriptions(first.subscriptions).toBe('^ 19ms !');
      expectSubscriptions(second.subscriptions).toBe('30ms ^ 69ms !');
      testScheduler.flush();
      expect(cause).toBeUndefined(); // the per-attempt timer is policy, not a failure

    });
  });

  it('should give up at the overall deadline with the last real failure as cause, not the attempt timer', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const refused = new CommClosedError('connection refused');
      const first = cold<Connection>('5ms #', undefined, refused);
      const second = cold<Connection>('-');
      attempts = [first, second];
      let cause: unknown;
      const result$ = connect('marble://x', { timeout: 100, scheduler: testScheduler, random: () => 1 }).pipe(
        catchError((err: Error) => {
          cause = err.cause;
          return of(err.name);
        }),
      );
      expectObservable(result$).toBe('100ms (e|)', { e: 'ConnectTimeoutError' });
      // refused at 5; backoff 10 ms; the second attempt hangs from 15 to the deadline
      expectSubscriptions(first.subscriptions).toBe('^ 4ms !');
      expectSubscriptions(second.subscriptions).toBe('15ms ^ 84ms !');
      testScheduler.flush();
      expect(cause).toBe(refused);
    });
  });

  it('should end the attempt in flight with an AbortError when its signal aborts', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const hanging = cold<Connection>('-');
      attempts = [hanging];
      const controller = new AbortController();
      testScheduler.schedule(() => controller.abort(new Error('user left')), 7);
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler, signal: controller.signal }))).toBe(
        '7ms (e|)',
        { e: 'AbortError: connect() was aborted' },
      );
      expectSubscriptions(hanging.subscriptions).toBe('^ 6ms !');
    });
  });

  it('should fail at once with an AbortError when the signal has already aborted, opening nothing', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const never = cold<Connection>('-');
      attempts = [never];
      const controller = new AbortController();
      controller.abort();
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler, signal: controller.signal }))).toBe('(e|)', {
        e: 'AbortError: connect() was aborted',
      });
      expectSubscriptions(never.subscriptions).toBe([]);
    });
  });

  it('should ignore an abort after the comm was emitted', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      attempts = [cold<Connection>('-(c|)', { c: answeringConnection() })];
      const controller = new AbortController();
      testScheduler.schedule(() => controller.abort(), 20);
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler, signal: controller.signal }))).toBe('-(c|)');
    });
  });

  it('should tear down the attempt in flight when unsubscribed', () => {
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const slow = cold<Connection>('-');
      attempts = [slow];
      expectObservable(outcome(connect('marble://x', { scheduler: testScheduler })), '^ 49ms !').toBe('');
      expectSubscriptions(slow.subscriptions).toBe('^ 49ms !');
    });
  });
});
