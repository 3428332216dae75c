/**
 * A request/reply protocol built on comms, tested in virtual time with the pair from
 * `rxcomm/testing`: each delivery takes one frame.
 */
import { defer, filter, map, mergeMap, type Observable, take } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import type { Comm } from 'rxcomm';
import { createCommPair } from 'rxcomm/testing';

interface Request {
  id: number;
  x: number;
}
interface Reply {
  id: number;
  result: number;
}

/** The server half: answers every request with its double. */
function doubler(comm: Comm): void {
  comm.read$.pipe(map((req) => ({ id: (req as Request).id, result: (req as Request).x * 2 }))).subscribe(comm);
}

/** The client half: sends a request, emits its reply. */
function request(comm: Comm, req: Request): Observable<number> {
  return defer(() => {
    comm.next(req);
    return comm.read$.pipe(
      filter((reply) => (reply as Reply).id === req.id),
      take(1),
      map((reply) => (reply as Reply).result),
    );
  });
}

describe('request/reply protocol (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('should answer each request two frames later, in order', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [client, server] = createCommPair({ scheduler: testScheduler, delay: 1 });
      doubler(server);
      const requests = cold<Request>('a-b---c|', { a: { id: 1, x: 1 }, b: { id: 2, x: 5 }, c: { id: 3, x: 21 } });
      const replies = requests.pipe(mergeMap((req) => request(client, req)));
      expectObservable(replies).toBe('--x-y---(z|)', { x: 2, y: 10, z: 42 });
    });
  });

  it('should run the README example', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [client, server] = createCommPair({ scheduler: testScheduler, delay: 1 });
      server.read$.pipe(map((n) => (n as number) * 2)).subscribe(server);
      cold('a-b--|', { a: 1, b: 5 }).subscribe(client);
      expectObservable(client.read$).toBe('--x-y|', { x: 2, y: 10 });
    });
  });

  it('should complete the server stream one frame after the client closes', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [client, server] = createCommPair({ scheduler: testScheduler, delay: 1 });
      cold('a-b|', { a: 'hello', b: 'world' }).subscribe(client);
      expectObservable(server.read$).toBe('-a-b|', { a: 'hello', b: 'world' });
    });
  });

  it('should error the server stream one frame after the client aborts', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [client, server] = createCommPair({ scheduler: testScheduler, delay: 1 });
      cold('a-#', { a: 'hello' }, new Error('source failed')).subscribe(client);
      const seen = server.read$.pipe(map(String));
      expectObservable(seen).toBe('-a-#', { a: 'hello' }, expect.objectContaining({ name: 'CommClosedError' }));
    });
  });
});
