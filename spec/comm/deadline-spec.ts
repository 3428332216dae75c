/**
 * The time limits of connect attempts and accepted handshakes (lib/comm/deadline.ts): on
 * `asyncScheduler` they share one timer, which must still fire each limit in due order,
 * never fire a cancelled one, and never keep the process alive once nothing is pending.
 */
import { asyncScheduler } from 'rxjs';
import { TestScheduler } from 'rxjs/testing';
import { scheduleDeadline } from '../../lib/comm/deadline';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Timers that keep the process alive right now. */
const refTimers = () => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length;

describe('scheduleDeadline on asyncScheduler', () => {
  it('should run the work once, no earlier than its time (less a millisecond of timer slack)', async () => {
    const started = Date.now();
    const fired: number[] = [];
    scheduleDeadline(asyncScheduler, () => fired.push(Date.now() - started), 30);
    await sleep(80);
    expect(fired).toHaveLength(1);
    expect(fired[0]).toBeGreaterThanOrEqual(29);
  });

  it('should never run a cancelled limit, and cancelling twice or after firing is harmless', async () => {
    const fired: string[] = [];
    const a = scheduleDeadline(asyncScheduler, () => fired.push('a'), 10);
    const b = scheduleDeadline(asyncScheduler, () => fired.push('b'), 20);
    a.unsubscribe();
    a.unsubscribe();
    await sleep(60);
    b.unsubscribe();
    expect(fired).toEqual(['b']);
  });

  it('should fire limits of different lengths in the order they fall due', async () => {
    const fired: number[] = [];
    for (const ms of [60, 20, 40, 20, 5]) scheduleDeadline(asyncScheduler, () => fired.push(ms), ms);
    await sleep(120);
    expect(fired).toEqual([5, 20, 20, 40, 60]);
  });

  it('should fire a limit set by another limit’s work, and one set earlier than the armed timer', async () => {
    const fired: string[] = [];
    scheduleDeadline(asyncScheduler, () => {
      fired.push('outer');
      scheduleDeadline(asyncScheduler, () => fired.push('inner'), 10);
    }, 10);
    scheduleDeadline(asyncScheduler, () => fired.push('late'), 200);
    scheduleDeadline(asyncScheduler, () => fired.push('early'), 1);
    await sleep(80);
    expect(fired).toEqual(['early', 'outer', 'inner']);
    await sleep(160);
    expect(fired).toEqual(['early', 'outer', 'inner', 'late']);
  });

  it('should not delay a pending limit behind a later one that another limit’s work set', async () => {
    const started = Date.now();
    const fired: Array<[string, number]> = [];
    const at = (name: string) => () => fired.push([name, Date.now() - started]);
    scheduleDeadline(asyncScheduler, () => {
      at('first')();
      scheduleDeadline(asyncScheduler, at('set by first'), 150);
    }, 10);
    scheduleDeadline(asyncScheduler, at('second'), 40);
    await sleep(100);
    expect(fired.map(([name]) => name)).toEqual(['first', 'second']);
    expect(fired[1][1]).toBeLessThan(90); // at ~40 ms, not at the 160 ms the later limit is due
    await sleep(120);
    expect(fired.map(([name]) => name)).toEqual(['first', 'second', 'set by first']);
  });

  it('should keep the process alive only while a limit is pending', async () => {
    await sleep(5); // earlier tests' timers are done
    const before = refTimers();
    const limits = Array.from({ length: 100 }, (_, i) => scheduleDeadline(asyncScheduler, () => undefined, 1000 + i));
    expect(refTimers()).toBe(before + 1); // one timer for all of them
    for (const limit of limits) limit.unsubscribe();
    expect(refTimers()).toBe(before);
    // The next limit reuses the armed timer and holds the process again until cancelled.
    const next = scheduleDeadline(asyncScheduler, () => undefined, 5000);
    expect(refTimers()).toBe(before + 1);
    next.unsubscribe();
    expect(refTimers()).toBe(before);
  });
});

describe('scheduleDeadline in virtual time', () => {
  it('should run on the TestScheduler’s clock inside run()', () => {
    const testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
    testScheduler.run(({ flush }) => {
      const fired: number[] = [];
      scheduleDeadline(asyncScheduler, () => fired.push(testScheduler.now()), 5000);
      const cancelled = scheduleDeadline(asyncScheduler, () => fired.push(-1), 100);
      cancelled.unsubscribe();
      flush();
      expect(fired).toEqual([5000]);
    });
  });
});
