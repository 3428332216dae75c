/**
 * `writeTo(comm)`: pipes a stream into a comm in order, holding back what the comm's
 * transport cannot take yet, in a buffer of bounded size.
 */
import { Observable, type OperatorFunction } from 'rxjs';
import { BufferOverflowError, ConfigError } from '../errors';
import type { Comm } from './comm';

/**
 * What `writeTo` does with a value that finds its buffer full (see `WriteToConfig.overflow`).
 *
 * ## Example
 * ```ts
 * // A live feed: when the peer falls behind, the newest values matter most.
 * const overflow: OverflowPolicy = 'drop-oldest';
 * source$.pipe(writeTo(comm, { bufferSize: 100, overflow })).subscribe();
 * ```
 *
 * @group Comms
 */
export type OverflowPolicy = 'error' | 'drop-newest' | 'drop-oldest';

/**
 * Options of `writeTo`: how many values may wait for the transport, and what happens to
 * one more.
 *
 * ## Example
 * ```ts
 * const config: WriteToConfig = { bufferSize: 10, overflow: 'error' };
 * source$.pipe(writeTo(comm, config)).subscribe({
 *   error: (err) => console.log(err instanceof BufferOverflowError), // the peer fell 10 behind
 * });
 * ```
 *
 * @group Comms
 */
export interface WriteToConfig {
  /**
   * Values that may wait, in messages, while the comm's transport is at its
   * `writeHighWaterMark`. Counted in messages because they are not encoded yet.
   * @default 1024
   */
  bufferSize?: number;
  /**
   * What happens to a value that arrives with `bufferSize` values already waiting:
   * `'error'` errors the output with `BufferOverflowError` (the comm is left open; what
   * was written stays written), `'drop-newest'` drops that value, `'drop-oldest'` drops
   * the longest-waiting one to make room. Dropped values get no output.
   * @default 'error'
   */
  overflow?: OverflowPolicy;
}

const POLICIES: readonly OverflowPolicy[] = ['error', 'drop-newest', 'drop-oldest'];

/**
 * Writes every value of the source to `comm`, in order, and emits the bytes each write
 * took. Errors if a write fails or the source errors. It does not close the comm when the
 * source completes (it completes once the last write is taken); subscribe the comm
 * itself (`source$.subscribe(comm)`) for that.
 *
 * What it does with a fast source: RxJS cannot make a source wait, so each value is
 * written at once while the transport is under its `writeHighWaterMark`, and waits in a
 * buffer of `bufferSize` values while it is not (the peer reads slower than the source
 * emits). A full buffer applies the `overflow` policy, `'error'` by default, so memory
 * stays bounded whatever the source does. A synchronous source (`from(array)`) of more
 * values than fit under the high-water mark plus `bufferSize` overflows too: write such
 * a collection with `for (const m of array) await comm.write(m)`, which waits instead.
 *
 * ## Example
 * ```ts
 * interval(10).pipe(take(5), map((i) => ({ op: 'tick', i })), writeTo(comm)).subscribe();
 * // A feed that may outpace a slow peer: keep the latest 100 waiting, drop older ones.
 * interval(1).pipe(writeTo(comm, { bufferSize: 100, overflow: 'drop-oldest' })).subscribe();
 * ```
 *
 * @group Comms
 */
export function writeTo<T>(comm: Comm, config: WriteToConfig = {}): OperatorFunction<T, number> {
  const { bufferSize = 1024, overflow = 'error' } = config;
  if (typeof bufferSize !== 'number' || !Number.isInteger(bufferSize) || bufferSize < 0) {
    throw new ConfigError(`writeTo bufferSize must be a whole number of messages (0 or more), got ${String(bufferSize)}`);
  }
  if (!POLICIES.includes(overflow)) {
    throw new ConfigError(`writeTo overflow must be one of ${POLICIES.map((p) => `'${p}'`).join(', ')}, got ${String(overflow)}`);
  }
  return (source) =>
    new Observable<number>((subscriber) => {
      const waiting: T[] = [];
      let head = 0; // waiting[head..] wait; shifting an array is O(n)
      let inFlight = 0; // writes given to the comm and not yet taken
      let blocker: Promise<number> | undefined; // the write that met the high-water mark
      let sourceDone = false;

      const write = (value: T): void => {
        inFlight++;
        const written = comm.write(value);
        if (comm.needsDrain) blocker = written;
        written.then(
          (size) => {
            inFlight--;
            if (blocker === written) blocker = undefined;
            subscriber.next(size);
            pump();
          },
          (error: unknown) => subscriber.error(error),
        );
      };

      const pump = (): void => {
        while (blocker === undefined && head < waiting.length && !subscriber.closed) {
          const value = waiting[head];
          waiting[head++] = undefined as T; // let it go once written
          write(value);
        }
        if (head === waiting.length) {
          waiting.length = 0;
          head = 0;
        }
        if (sourceDone && inFlight === 0 && head === waiting.length) subscriber.complete();
      };

      const hold = (value: T): void => {
        if (waiting.length - head < bufferSize) {
          waiting.push(value);
        } else if (overflow === 'drop-oldest' && bufferSize > 0) {
          waiting[head++] = undefined as T;
          waiting.push(value);
          if (head >= bufferSize) {
            waiting.splice(0, head); // the dropped slots: keep the array bounded too
            head = 0;
          }
        } else if (overflow === 'error') {
          subscriber.error(new BufferOverflowError('writeTo', bufferSize));
        } // 'drop-newest' (or drop-oldest of nothing): this value goes
      };

      const subscription = source.subscribe({
        next: (value) => {
          if (blocker === undefined && head === waiting.length) write(value);
          else hold(value);
        },
        error: (error: unknown) => subscriber.error(error),
        complete: () => {
          sourceDone = true;
          pump();
        },
      });
      return () => {
        subscription.unsubscribe();
        waiting.length = 0;
      };
    });
}
