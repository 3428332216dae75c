/**
 * `writeTo(comm)`: pipes a stream into a comm, one write at a time, so the source is
 * consumed no faster than the comm's transport takes messages (a write that meets the
 * high-water mark holds back the next).
 */
import { concatMap, type OperatorFunction } from 'rxjs';
import type { Comm } from './comm';

/**
 * Writes every value of the source to `comm` in order and emits the bytes each write
 * took. Errors if a write fails. It does not close the comm when the source completes;
 * subscribe the comm itself (`source$.subscribe(comm)`) for that.
 *
 * ## Example
 * ```ts
 * interval(10).pipe(take(5), map((i) => ({ op: 'tick', i })), writeTo(comm)).subscribe();
 * ```
 */
export function writeTo<T>(comm: Comm): OperatorFunction<T, number> {
  return concatMap((message: T) => comm.write(message));
}
