/**
 * Dask's BatchedSend policy in virtual time: the first message after a quiet interval
 * leaves at once, those within the interval leave together when it ends. The comm pair
 * from `rxcomm/testing` delivers in the same frame (delay 0), so the peer's `read$` shows
 * when each batch was written.
 */
import { map } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { batched, CommClosedError, status$, type CommStatus } from 'rxcomm';
import { createCommPair } from 'rxcomm/testing';

describe('batched stream (marbles)', () => {
  let testScheduler: TestScheduler;

  beforeEach(() => {
    testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
  });

  it('should write the first message at once and the rest of the interval as one array', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a-b-c', { a: 1, b: 2, c: 3 }).subscribe((n) => stream.send(n));
      expectObservable(peer.read$).toBe('x 9ms y', { x: [1], y: [2, 3] });
    });
  });

  it('should write the first message after a quiet interval at once', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a 24ms b 2ms c', { a: 1, b: 2, c: 3 }).subscribe((n) => stream.send(n));
      // a at 0; b at 25, more than an interval later: at once; c at 28 waits for 35
      expectObservable(peer.read$).toBe('x 24ms y 9ms z', { x: [1], y: [2], z: [3] });
    });
  });

  it('should write messages sent in one frame as one array', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 5, scheduler: testScheduler });
      cold('(abc)', { a: 'a', b: 'b', c: 'c' }).subscribe((m) => stream.send(m));
      expectObservable(peer.read$).toBe('x', { x: ['a', 'b', 'c'] });
    });
  });

  it('should never drop or reorder messages, however they fall across intervals', () => {
    const sent: number[] = [];
    const batches: { frame: number; messages: number[] }[] = [];
    testScheduler.run(() => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 7, scheduler: testScheduler });
      peer.read$.subscribe((batch) => batches.push({ frame: testScheduler.now(), messages: batch as number[] }));
      // 500 messages at irregular frames: bursts, gaps shorter and longer than the interval
      let frame = 0;
      for (let i = 0; i < 500; i++) {
        frame += [0, 0, 1, 3, 0, 9, 2, 0, 15, 1][i % 10];
        testScheduler.schedule(() => {
          sent.push(i);
          stream.send(i);
        }, frame);
      }
      testScheduler.schedule(() => void stream.close(), frame + 1);
    });
    expect(batches.flatMap((batch) => batch.messages)).toEqual(sent);
    expect(sent).toHaveLength(500);
    for (let b = 1; b < batches.length - 1; b++) {
      expect(batches[b].frame - batches[b - 1].frame).toBeGreaterThanOrEqual(7); // one batch per interval at most
    }
    expect(batches.length).toBeLessThan(500);
  });

  it('should flush what is buffered on close(), then close the comm', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a-b-c', { a: 1, b: 2, c: 3 }).subscribe((n) => stream.send(n));
      testScheduler.schedule(() => void stream.close(), 5);
      // the last batch at 5, at once, and the end right after it; nothing at 10
      expectObservable(peer.read$).toBe('x 4ms (y|)', { x: [1], y: [2, 3] });
    });
  });

  it('should close at once, writing nothing more, when nothing is buffered', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a', { a: 1 }).subscribe((n) => stream.send(n));
      testScheduler.schedule(() => void stream.close(), 3);
      expectObservable(peer.read$).toBe('x 2ms |', { x: [1] });
    });
  });

  it('should flush and close on complete(), as an Observer', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a-b-c-|', { a: 1, b: 2, c: 3 }).subscribe(stream);
      expectObservable(peer.read$).toBe('x 5ms (y|)', { x: [1], y: [2, 3] });
    });
  });

  it('should abort the comm on error(), dropping what is buffered', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(sender, { interval: 10, scheduler: testScheduler });
      cold('a-b-#', { a: 1, b: 2 }, new Error('source failed')).subscribe(stream);
      expectObservable(peer.read$).toBe('x 3ms #', { x: [1] }, expect.any(CommClosedError));
      testScheduler.schedule(() => expect(sender.closed).toBe(true), 5);
    });
  });

  it('should throw CommClosedError from send() after close(), and report next() on status$ instead', () => {
    const [sender] = createCommPair({ scheduler: testScheduler });
    const stream = batched(sender, { interval: 10, scheduler: testScheduler });
    const events: CommStatus[] = [];
    const watching = status$.subscribe((event) => events.push(event));
    try {
      void stream.close();
      expect(() => stream.send('late')).toThrow(CommClosedError);
      expect(() => stream.next('late')).not.toThrow();
      expect(events).toEqual([
        { type: 'comm:write-failed', localAddress: sender.localAddress, peerAddress: sender.peerAddress, error: expect.any(CommClosedError) },
      ]);
    } finally {
      watching.unsubscribe();
    }
    testScheduler.flush();
  });

  it('should return the same promise from every close()', () => {
    const [sender] = createCommPair({ scheduler: testScheduler });
    const stream = batched(sender, { interval: 10, scheduler: testScheduler });
    expect(stream.close()).toBe(stream.close());
    expect(stream.comm).toBe(sender);
    testScheduler.flush();
  });

  it('should flatten the batches it reads into single messages, and pass other messages as they are', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler });
      const stream = batched(peer, { interval: 10, scheduler: testScheduler });
      cold('a 9ms b 9ms c 9ms d 9ms |', { a: [1, 2], b: 'alone', c: [], d: [{ op: 'x' }] }).subscribe(sender);
      expectObservable(stream.messages$).toBe('(pq) 6ms r 19ms s 9ms |', { p: 1, q: 2, r: 'alone', s: { op: 'x' } });
    });
  });

  it('should flush a batch in the frame its interval ends with a delivery delay too', () => {
    testScheduler.run(({ cold, expectObservable }) => {
      const [sender, peer] = createCommPair({ scheduler: testScheduler, delay: 2 });
      const stream = batched(sender, { interval: 4, scheduler: testScheduler });
      cold('ab', { a: 'a', b: 'b' }).subscribe((m) => stream.send(m));
      expectObservable(peer.read$.pipe(map((batch) => (batch as string[]).join('')))).toBe('--x 3ms y', { x: 'a', y: 'b' });
    });
  });
});
