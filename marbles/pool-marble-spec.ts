/**
 * The ConnectionPool's waiting in virtual time. A fake backend (`poolmarble://`) connects
 * in one frame over a comm pair from `rxcomm/testing`, and `serve()` answers at the far
 * end, each reply `ms` frames after its request. Delivery takes no time (delay 0), so the
 * frames below are connects and handler times only.
 *
 * Calls and `serve()` settle Promises between reading and writing, and Promises resolve
 * outside `TestScheduler.run`. So the scheduler is stepped by hand: run a frame's actions,
 * let Promises settle, repeat until the frame is quiet, then the next frame. What each
 * caller saw is recorded with its frame and compared with marbles.
 */
import { map, timer, type Observable, type Subscription } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { ConnectionPool, getBackend, registerBackend, serve, type Connection } from 'rxcomm';
import { acceptHandshake, createConnectionPair } from 'rxcomm/testing';

/** What TestScheduler.parseMarbles makes, and what a recorded caller is compared with. */
interface Recorded {
  frame: number;
  notification: { kind: 'N' | 'E' | 'C'; value?: unknown; error?: unknown };
}

describe('ConnectionPool waiting (marbles)', () => {
  let testScheduler: TestScheduler;
  let servers: Subscription[];
  let connects: string[];

  beforeAll(() => {
    registerBackend('poolmarble', {
      ...getBackend('inproc'),
      connect: (location) => {
        connects.push(`${location}@${testScheduler.now()}`);
        return timer(1, testScheduler).pipe(map(() => servedConnection(location)));
      },
    });
  });

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    servers = [];
    connects = [];
  });

  afterEach(() => {
    for (const server of servers) server.unsubscribe();
  });

  /**
   * The client end of a fresh connection whose far end handshakes and serves `work`:
   * the reply `<id>@<location>` comes `ms` frames after the request.
   */
  function servedConnection(location: string): Connection {
    const [client, server] = createConnectionPair({ scheduler: testScheduler });
    servers.push(
      serve(acceptHandshake(server), {
        work: ({ id, ms }) => timer(ms as number, testScheduler).pipe(map(() => `${id as string}@${location}`)),
      }),
    );
    return client;
  }

  /**
   * Runs frames from the current one through `last`, letting Promises settle in between;
   * `afterEach` samples the state at the end of each frame.
   */
  async function runThrough(last: number, afterEach: () => void): Promise<void> {
    for (let frame = testScheduler.frame; frame <= last; frame++) {
      await runFrame(frame);
      afterEach();
    }
  }

  /** Runs one frame's actions, and those its settling Promises schedule in it, until it is quiet. */
  async function runFrame(frame: number): Promise<void> {
    do {
      testScheduler.maxFrames = frame;
      testScheduler.flush();
      testScheduler.frame = frame; // what Promises schedule now counts from this frame
      await new Promise((resolve) => setImmediate(resolve)); // every pending Promise settles
    } while (testScheduler.actions.some((action) => action.delay <= frame));
  }

  /** Subscribes at the current frame and records what `source` emits, frame by frame. */
  function record(source: Observable<unknown>): Recorded[] {
    const seen: Recorded[] = [];
    source.subscribe({
      next: (value) => seen.push({ frame: testScheduler.now(), notification: { kind: 'N', value, error: undefined } }),
      error: (error) => seen.push({ frame: testScheduler.now(), notification: { kind: 'E', value: undefined, error } }),
      complete: () => seen.push({ frame: testScheduler.now(), notification: { kind: 'C', value: undefined, error: undefined } }),
    });
    return seen;
  }

  const marbles = (diagram: string, values?: Record<string, unknown>) =>
    TestScheduler.parseMarbles(diagram, values, undefined, undefined, true) as Recorded[];

  it("should make the 3rd caller wait, with limit 2, until the first call's reply frees a comm", async () => {
    const pool = new ConnectionPool({ limit: 2, scheduler: testScheduler });
    const scheduler = pool.rpc('poolmarble://s');
    // both comms connect from 0 to 1, when the requests arrive
    const first = record(scheduler.call('work', { id: 'first', ms: 5 }));
    const second = record(scheduler.call('work', { id: 'second', ms: 6 }));
    const third = record(scheduler.call('work', { id: 'third', ms: 5 }));
    const waiting: number[] = [];
    const open: number[] = [];
    await runThrough(20, () => {
      waiting.push(pool.waiting);
      open.push(pool.open);
    });
    expect(first).toEqual(marbles('6ms (r|)', { r: 'first@s' }));
    expect(second).toEqual(marbles('7ms (r|)', { r: 'second@s' }));
    // the first comm comes back at 6 and is the third caller's at once: 6 + 5
    expect(third).toEqual(marbles('11ms (r|)', { r: 'third@s' }));
    expect(waiting.slice(0, 8)).toEqual([1, 1, 1, 1, 1, 1, 0, 0]);
    expect(Math.max(...open)).toBe(2);
    expect(connects).toEqual(['s@0', 's@0']); // the third caller opened nothing
    await pool.close();
  });

  it('should close an idle comm to another address for a caller at the limit', async () => {
    const pool = new ConnectionPool({ limit: 1, scheduler: testScheduler });
    const toA = pool.rpc('poolmarble://a');
    const toB = pool.rpc('poolmarble://b');
    const first = record(toA.call('work', { id: 'first', ms: 2 }));
    const second = record(toB.call('work', { id: 'second', ms: 2 }));
    const openToA: number[] = [];
    await runThrough(20, () => openToA.push(toA.openComms));
    // a: connects 0 to 1, replies 2 frames later
    expect(first).toEqual(marbles('3ms (r|)', { r: 'first@a' }));
    // b waits until a's comm goes idle at 3 and is closed to make room: connects 3 to 4
    expect(second).toEqual(marbles('6ms (r|)', { r: 'second@b' }));
    expect(connects).toEqual(['a@0', 'b@3']);
    expect(openToA.slice(0, 5)).toEqual([1, 1, 1, 0, 0]);
    expect([pool.open, pool.idle, toB.openComms]).toEqual([1, 1, 1]);
    await pool.close();
  });

  it('should let a waiting caller that unsubscribes leave the queue, for the next to go first', async () => {
    const pool = new ConnectionPool({ limit: 1, scheduler: testScheduler });
    const scheduler = pool.rpc('poolmarble://s');
    const first = record(scheduler.call('work', { id: 'first', ms: 5 }));
    const leaving = scheduler.call('work', { id: 'leaving', ms: 1 }).subscribe();
    const third = record(scheduler.call('work', { id: 'third', ms: 1 }));
    testScheduler.schedule(() => leaving.unsubscribe(), 4);
    const waiting: number[] = [];
    await runThrough(20, () => waiting.push(pool.waiting));
    expect(first).toEqual(marbles('6ms (r|)', { r: 'first@s' }));
    expect(third).toEqual(marbles('7ms (r|)', { r: 'third@s' }));
    expect(waiting.slice(0, 8)).toEqual([2, 2, 2, 2, 1, 1, 0, 0]);
    expect(connects).toEqual(['s@0']);
    await pool.close();
  });
});
