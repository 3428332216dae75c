/**
 * One end of an in-process connection. Messages pass by reference, with no copy and no
 * serialization, through the receiving end's inbox; delivery happens on a scheduler
 * (a microtask by default) so that an echo never recurses and order is kept.
 */
import { CommClosedError } from '../../errors';
import type { Connection, ConnectionSink } from '../../comm/connection';

/** Runs `work` later: in a microtask by default, at a virtual frame under test. */
export type Deliver = (work: () => void) => void;

/**
 * `batch`: one delivery drains everything queued (fast; the default). `each`: every
 * message gets its own delivery, so under a TestScheduler each one takes its own time.
 */
export type DeliveryMode = 'batch' | 'each';

const END = Symbol('end of stream');

interface Waiter {
  resolve(nbytes: number): void;
  reject(error: Error): void;
}

/**
 * Messages written and not yet delivered past which writers wait: delivery runs later
 * than the write, so without this bound a writer in a loop would queue without limit.
 */
const INBOX_HIGH_WATER_MARK = 1024;

/**
 * What one undelivered message counts for against `writeBufferLimit`: inproc holds
 * references, whose size it cannot know, so a comm aborts past 65,536 of them by default.
 */
const MESSAGE_COST = 1024;

/** The one resolved write result inproc returns: no bytes, nothing to wait for. */
const WRITTEN: Promise<number> = Promise.resolve(0);

export class InprocConnection implements Connection {
  readonly extraInfo: Record<string, unknown> = {};
  peer!: InprocConnection;

  private sink: ConnectionSink | undefined;
  private inbox: unknown[] = [];
  private inboxHead = 0;
  private abortedBy: Error | undefined;
  private flushScheduled = false;
  private paused = false;
  /** Writers on the peer waiting for this end to resume reading. */
  private waiters: Waiter[] = [];
  /** This end has closed or aborted: it neither writes nor reads any more. */
  private done = false;

  constructor(
    readonly localAddress: string,
    readonly peerAddress: string,
    private readonly deliver: Deliver,
    private readonly mode: DeliveryMode = 'batch',
  ) {}

  /** Makes two connected ends; `a` is the connecting side, `b` the accepting side. */
  static pair(
    aAddress: string,
    bAddress: string,
    deliver: Deliver,
    mode: DeliveryMode = 'batch',
  ): [InprocConnection, InprocConnection] {
    const a = new InprocConnection(aAddress, bAddress, deliver, mode);
    const b = new InprocConnection(bAddress, aAddress, deliver, mode);
    a.peer = b;
    b.peer = a;
    return [a, b];
  }

  open(sink: ConnectionSink): void {
    this.sink = sink;
    this.scheduleFlush();
  }

  write(message: unknown): Promise<number> {
    const peer = this.peer;
    if (this.done || peer.done) {
      return Promise.reject(new CommClosedError(`write to closed inproc comm ${this.peerAddress}`));
    }
    peer.enqueue(message);
    if (!peer.paused && peer.backlog < INBOX_HIGH_WATER_MARK) return WRITTEN;
    return new Promise<number>((resolve, reject) => peer.waiters.push({ resolve, reject }));
  }

  get bufferedBytes(): number {
    return this.peer.backlog * MESSAGE_COST;
  }

  get needsDrain(): boolean {
    return this.peer.paused || this.peer.backlog >= INBOX_HIGH_WATER_MARK;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.scheduleFlush();
  }

  /** Messages queued here and not yet delivered. */
  private get backlog(): number {
    return this.inbox.length - this.inboxHead;
  }

  close(): void {
    if (this.done) return;
    this.done = true;
    this.rejectWaiters(new CommClosedError(`inproc comm ${this.localAddress} closed`));
    this.peer.enqueue(END); // after everything already written: flush, then close
  }

  abort(reason?: Error): void {
    if (this.done) return;
    this.done = true;
    const error = new CommClosedError(`inproc comm ${this.localAddress} aborted`, { cause: reason });
    // Writes still waiting here reject with this comm's own failure when it is one.
    this.rejectWaiters(reason instanceof CommClosedError ? reason : error);
    this.peer.rejectWaiters(error);
    this.peer.receiveAbort(error);
  }

  private rejectWaiters(error: Error): void {
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  private enqueue(item: unknown): void {
    this.inbox.push(item);
    if (this.mode === 'each' && this.sink) this.deliver(this.flushOne);
    else this.scheduleFlush();
  }

  private readonly flushOne = (): void => this.drain(1);

  /** The peer aborted: unread messages are dropped and the reader errors. */
  private receiveAbort(error: Error): void {
    if (this.done) return; // this end already finished: nobody is reading
    this.inbox = [];
    this.inboxHead = 0;
    this.abortedBy = error;
    if (this.mode === 'each' && this.sink) this.deliver(this.flushOne);
    else this.scheduleFlush();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled || !this.sink) return;
    this.flushScheduled = true;
    this.deliver(this.flush);
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    this.drain(Infinity);
  };

  /** Delivers up to `max` queued messages, or the end of the stream. */
  private drain(max: number): void {
    const sink = this.sink;
    if (!sink) return;
    let delivered = 0;
    while (!this.paused && this.inboxHead < this.inbox.length && delivered++ < max) {
      const item = this.inbox[this.inboxHead];
      this.inbox[this.inboxHead++] = undefined;
      if (item === END) {
        this.done = true;
        this.rejectWaiters(new CommClosedError(`inproc comm ${this.localAddress} closed`));
        sink.complete();
        return;
      }
      sink.next(item, 0);
    }
    if (this.inboxHead >= this.inbox.length) {
      this.inbox = [];
      this.inboxHead = 0;
    }
    if (!this.paused && this.waiters.length > 0 && this.backlog < INBOX_HIGH_WATER_MARK / 2) {
      for (const waiter of this.waiters.splice(0)) waiter.resolve(0);
    }
    if (this.abortedBy) {
      const error = this.abortedBy;
      this.abortedBy = undefined;
      this.done = true;
      sink.error(error);
    }
  }
}
