/**
 * Dask's `BatchedSend` and the reading side of `handle_stream`: messages sent on a stream
 * are buffered and written as one array per `interval`, and arrays read are flattened.
 */
import { asyncScheduler, concatMap, from, type Observable, type Observer, of, type SchedulerLike, type Subscription } from 'rxjs';
import type { Comm } from '../comm/comm';
import { CommClosedError, ConfigError } from '../errors';
import { reportStatus } from '../status';

export interface BatchedConfig {
  /** Milliseconds between two batches (Dask's `BatchedSend(interval)`; required, as there). */
  interval: number;
  /**
   * Where the batching timer runs: a `TestScheduler` runs it in virtual time.
   * @default asyncScheduler
   */
  scheduler?: SchedulerLike;
}

/**
 * A batched stream over a comm. The first message after a quiet `interval` leaves at once;
 * those that follow within the interval leave together, as one array, when it ends. Never
 * drops or reorders; `close()` writes what is buffered, then closes the comm.
 *
 * Batches are written without waiting for the previous one to be taken (as `comm.next`
 * does), so the buffer is bounded by the interval, and what the transport holds by the
 * comm's own limits.
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

  /** Use `batched(comm, config)`. @internal */
  constructor(
    /** The comm the batches travel on. */
    readonly comm: Comm,
    config: BatchedConfig,
  ) {
    const { interval, scheduler = asyncScheduler } = config ?? ({} as BatchedConfig);
    if (typeof interval !== 'number' || !(interval >= 0) || !Number.isFinite(interval)) {
      throw new ConfigError(`interval must be a number of milliseconds (0 or more), got ${String(interval)}`);
    }
    this.interval = interval;
    this.scheduler = scheduler;
    this.messages$ = comm.read$.pipe(concatMap((batch) => (Array.isArray(batch) ? from(batch) : of(batch))));
  }

  /** Buffers one message for the next batch. Throws `CommClosedError` once closing. */
  send(message: unknown): void {
    if (this.closing || this.comm.closed) throw new CommClosedError(`send on closed batched stream ${this.comm}`);
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
    if (this.timer) return;
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
    // A failed write ends the comm, which its reader and status$ learn of: nothing to add.
    this.comm.write(batch).catch(() => undefined);
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
 */
export function batched(comm: Comm, config: BatchedConfig): BatchedStream {
  return new BatchedStream(comm, config);
}
