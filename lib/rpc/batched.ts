/**
 * Dask's `BatchedSend` and the reading side of `handle_stream`: messages sent on a stream
 * are buffered and written as one array per `interval`, and arrays read are flattened.
 */
import { asyncScheduler, concatMap, from, type Observable, type Observer, of, type SchedulerLike, type Subscription } from 'rxjs';
import type { Comm } from '../comm/comm';
import { BufferOverflowError, CommClosedError, ConfigError } from '../errors';
import { reportStatus } from '../status';

/**
 * Options of `batched()`: the interval between batches, where its timer runs, and how
 * many messages may wait.
 *
 * ## Example
 * ```ts
 * const config: BatchedConfig = { interval: 2, bufferSize: 10_000 };
 * const stream = batched(comm, config);
 * ```
 *
 * @group Requests, handlers and streams
 */
export interface BatchedConfig {
  /** Milliseconds between two batches (Dask's `BatchedSend(interval)`; required, as there). */
  interval: number;
  /**
   * Where the batching timer runs: a `TestScheduler` runs it in virtual time.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * Messages that may wait for the next batch. A batch is written only once the comm has
   * taken the previous one, so a peer that reads slowly makes messages wait here; past
   * this many, `send()` throws `BufferOverflowError` and `next()` reports it on
   * `status$` (`comm:write-failed`), and the message is not sent.
   * @default 100000
   */
  bufferSize?: number;
}

/**
 * A batched stream over a comm. The first message after a quiet `interval` leaves at once;
 * those that follow within the interval leave together, as one array, when it ends. Never
 * drops or reorders; `close()` writes what is buffered, then closes the comm.
 *
 * A batch is written once the comm has taken the previous one (as Dask's BatchedSend
 * waits for its write), so a slow peer makes the batches larger, not the transport's
 * queue longer; the buffer itself holds at most `bufferSize` messages.
 *
 * ## Example
 * ```ts
 * // It is an Observer: pipe a source into it, and it closes the comm when the source completes.
 * const stream: BatchedStream = batched(comm, { interval: 10 });
 * interval(1).pipe(take(100), map((i) => ({ op: 'tick', i }))).subscribe(stream);
 * stream.messages$.subscribe((message) => console.log(message));
 * ```
 *
 * @group Requests, handlers and streams
 */
export class BatchedStream implements Observer<unknown> {
  /**
   * Every message the peer sends, one by one: its batches (arrays) flattened, in order;
   * a message that is not an array passes as it is.
   */
  readonly messages$: Observable<unknown>;
  private buffer: unknown[] = [];
  private timer: Subscription | undefined;
  private lastBatchAt = -Infinity;
  private closing: Promise<void> | undefined;
  private readonly interval: number;
  private readonly scheduler: SchedulerLike;
  private readonly bufferSize: number;
  /** The last batch's write, until the comm has taken it. */
  private writing: Promise<unknown> | undefined;

  /** Use `batched(comm, config)`. @internal */
  constructor(
    /** The comm the batches travel on. */
    readonly comm: Comm,
    config: BatchedConfig,
  ) {
    const { interval, scheduler = asyncScheduler, bufferSize = 100_000 } = config ?? ({} as BatchedConfig);
    if (typeof interval !== 'number' || !(interval >= 0) || !Number.isFinite(interval)) {
      throw new ConfigError(`interval must be a number of milliseconds (0 or more), got ${String(interval)}`);
    }
    if (typeof bufferSize !== 'number' || !Number.isInteger(bufferSize) || bufferSize < 1) {
      throw new ConfigError(`bufferSize must be a whole number of messages (1 or more), got ${String(bufferSize)}`);
    }
    this.interval = interval;
    this.bufferSize = bufferSize;
    this.scheduler = scheduler;
    this.messages$ = comm.read$.pipe(concatMap((batch) => (Array.isArray(batch) ? from(batch) : of(batch))));
  }

  /**
   * Buffers one message for the next batch. Throws `CommClosedError` once closing, and
   * `BufferOverflowError` when `bufferSize` messages already wait.
   */
  send(message: unknown): void {
    if (this.closing || this.comm.closed) throw new CommClosedError(`send on closed batched stream ${this.comm}`);
    if (this.buffer.length >= this.bufferSize) throw new BufferOverflowError('batched', this.bufferSize);
    this.buffer.push(message);
    this.schedule();
  }

  /** `send()`, as an Observer: a message after close is reported on `status$`, not thrown. */
  next(message: unknown): void {
    try {
      this.send(message);
    } catch (error) {
      const { localAddress, peerAddress } = this.comm;
      reportStatus({ type: 'comm:write-failed', localAddress, peerAddress, error: error as Error });
    }
  }

  /** The source failed: abort the comm (what is buffered is dropped with it). */
  error(err: unknown): void {
    this.cancelTimer();
    this.buffer = [];
    this.comm.abort(err instanceof Error ? err : new Error(String(err)));
  }

  /** The source completed: write what is buffered, then close. */
  complete(): void {
    void this.close();
  }

  /** Writes what is buffered at once, then closes the comm. The same promise each time. */
  close(): Promise<void> {
    if (!this.closing) {
      this.cancelTimer();
      this.writeBatch();
      this.closing = this.comm.close();
    }
    return this.closing;
  }

  private schedule(): void {
    if (this.timer || this.writing) return; // the write's end schedules the next batch
    const wait = Math.max(0, this.lastBatchAt + this.interval - this.scheduler.now());
    this.timer = this.scheduler.schedule(() => {
      this.timer = undefined;
      this.writeBatch();
    }, wait);
  }

  private writeBatch(): void {
    if (this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.lastBatchAt = this.scheduler.now();
    const written = this.comm.write(batch);
    // Taken at once unless the transport is at its high-water mark: deciding that now,
    // not in a promise callback, keeps batching in virtual time under a TestScheduler.
    if (!this.comm.needsDrain) {
      written.catch(() => undefined);
      return;
    }
    this.writing = written;
    const taken = () => {
      if (this.writing !== written) return;
      this.writing = undefined;
      if (this.buffer.length > 0 && !this.closing) this.schedule();
    };
    // A failed write ends the comm, which its reader and status$ learn of: nothing to add.
    written.then(taken, taken);
  }

  private cancelTimer(): void {
    this.timer?.unsubscribe();
    this.timer = undefined;
  }
}

/**
 * Makes `comm` a batched stream.
 *
 * ## Example
 * ```ts
 * const stream = batched(comm, { interval: 2 });
 * stream.send({ op: 'heartbeat-client' });
 * stream.messages$.subscribe((message) => console.log(message));
 * await stream.close();
 * ```
 *
 * @group Requests, handlers and streams
 */
export function batched(comm: Comm, config: BatchedConfig): BatchedStream {
  return new BatchedStream(comm, config);
}
