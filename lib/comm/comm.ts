/**
 * `Comm`: one message-passing connection, the same on every transport.
 *
 * Data flows one way through it: the transport (`Connection`) delivers whole messages
 * to the comm's sink; the comm hands each to its `read$` subscribers, else to a pending
 * `read()`, else keeps it (pausing the transport past the high-water marks). Writes go
 * straight to the transport, which owns write buffering and backpressure.
 */
import { Observable, type Observer, type Subscriber } from 'rxjs';
import { CommClosedError, toCommClosedError } from '../errors';
import { reportStatus } from '../status';
import { COMM_DEFAULTS, type CommConfig } from './config';
import type { Connection, ConnectionSink } from './connection';
import { MessageQueue } from './message-queue';

/** The handshake map each side sends (`{compression, python, 'pickle-protocol'}` and extras). */
export type HandshakeInfo = Record<string, unknown>;

/** What the two handshakes agreed on. */
export interface HandshakeOptions {
  compression: string | null;
  'pickle-protocol': number;
}

type EndOfStream = { error?: CommClosedError };

interface PendingRead {
  resolve(message: unknown): void;
  reject(error: Error): void;
}

/**
 * A connected, handshaken comm. Read with `read$` (or `read()`), write with `write()`
 * (or use the comm as an Observer), end with `close()` or `abort()`.
 *
 * ## Example
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786'));
 * await comm.write({ op: 'identity', reply: true });
 * console.log(await comm.read());
 * await comm.close();
 * ```
 */
export class Comm implements Observer<unknown> {
  /**
   * The messages from the peer, each exactly once and in order. Messages that arrived
   * before anyone subscribed are kept and delivered first. Completes when the peer (or
   * this side) closes cleanly; errors with `CommClosedError` on abort or reset.
   * Subscribers present at the same time all see the same messages.
   */
  readonly read$: Observable<unknown>;

  /** This side's handshake, plus `address`. */
  localInfo: HandshakeInfo = {};
  /** The peer's handshake, plus `address`. */
  remoteInfo: HandshakeInfo = {};
  /** What the handshakes agreed on. */
  handshakeOptions: HandshakeOptions = { compression: null, 'pickle-protocol': 5 };

  private readonly config: Required<CommConfig>;
  private readonly kept = new MessageQueue();
  private readonly subscribers: Subscriber<unknown>[] = [];
  private readonly readers: PendingRead[] = [];
  private ended: EndOfStream | undefined;
  private paused = false;
  private state: 'open' | 'closing' | 'closed' = 'open';
  private closing: Promise<void> | undefined;

  /** @internal Comms are made by `connect()`, `listen()` and `rxcomm/testing`. */
  constructor(
    private readonly connection: Connection,
    config: CommConfig = {},
  ) {
    this.config = { ...COMM_DEFAULTS };
    for (const [key, value] of Object.entries(config) as [keyof CommConfig, number | undefined][]) {
      if (value !== undefined) this.config[key] = value; // an explicit undefined keeps the default
    }
    this.read$ = new Observable<unknown>((subscriber) => this.addSubscriber(subscriber));
    connection.open(this.sink);
  }

  /** This end's address, e.g. `tcp://127.0.0.1:50000`. */
  get localAddress(): string {
    return this.connection.localAddress;
  }

  /** The other end's address. */
  get peerAddress(): string {
    return this.connection.peerAddress;
  }

  /** Transport details: for tls, `peercert` and `cipher`. */
  get extraInfo(): Record<string, unknown> {
    return this.connection.extraInfo;
  }

  /** True once the comm is closed or aborted, or closing. */
  get closed(): boolean {
    return this.state !== 'open';
  }

  /** The next message. Rejects with `CommClosedError` once the stream has ended. */
  read(): Promise<unknown> {
    if (this.kept.length > 0) return Promise.resolve(this.takeKept());
    if (this.ended) return Promise.reject(this.endError('read'));
    return new Promise((resolve, reject) => this.readers.push({ resolve, reject }));
  }

  /**
   * Sends one message. Resolves with its size on the wire once the transport has taken it
   * within its high-water mark, so a fast writer waits for a slow reader. Rejects with
   * `CommClosedError` when the comm is closed or aborted; never throws.
   */
  write(message: unknown): Promise<number> {
    if (this.state !== 'open') {
      return Promise.reject(new CommClosedError(`write to closed comm ${this}`));
    }
    return this.connection.write(message);
  }

  /**
   * Flushes pending writes, then closes; the peer's `read$` completes. Takes at most
   * `closeTimeout` ms, then aborts. Never rejects. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closing';
    const flushed = this.connection.close();
    if (!flushed) {
      this.finish({});
      this.closing = Promise.resolve();
      return this.closing;
    }
    this.closing = new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        reportStatus({
          type: 'comm:close-timeout',
          localAddress: this.localAddress,
          peerAddress: this.peerAddress,
          timeout: this.config.closeTimeout,
        });
        this.abort(new CommClosedError(`close timed out after ${this.config.closeTimeout} ms`));
        resolve();
      }, this.config.closeTimeout);
      const done = () => {
        clearTimeout(timer);
        this.finish({});
        resolve();
      };
      flushed.then(done, done);
    });
    return this.closing;
  }

  /** Closes now, dropping unsent data; pending writes reject and the peer's `read$` errors. */
  abort(reason?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.connection.abort(reason);
    this.finish({ error: toCommClosedError(reason ?? new CommClosedError(`comm ${this} aborted`), 'comm aborted') });
  }

  /** Observer: writes `message`. A failure is reported on `status$`, as nobody awaits it. */
  next(message: unknown): void {
    this.write(message).then(undefined, (error: Error) => {
      reportStatus({ type: 'comm:write-failed', localAddress: this.localAddress, peerAddress: this.peerAddress, error });
    });
  }

  /** Observer: the source failed, so the comm is aborted. */
  error(err: unknown): void {
    this.abort(err instanceof Error ? err : new Error(String(err)));
  }

  /** Observer: the source completed, so the comm is closed after its writes. */
  complete(): void {
    void this.close();
  }

  toString(): string {
    const closed = this.closed ? ' (closed)' : '';
    return `<Comm${closed} local=${this.localAddress} remote=${this.peerAddress}>`;
  }

  // ---- receiving ----

  private readonly sink: ConnectionSink = {
    next: (message, nbytes) => this.receive(message, nbytes),
    complete: () => this.peerEnded({}),
    error: (err) => {
      const error = toCommClosedError(err, 'connection lost');
      reportStatus({ type: 'comm:aborted', localAddress: this.localAddress, peerAddress: this.peerAddress, error });
      this.peerEnded({ error });
    },
  };

  private receive(message: unknown, nbytes: number): void {
    const subscribers = this.subscribers;
    if (subscribers.length === 1) {
      subscribers[0].next(message);
    } else if (subscribers.length > 1) {
      for (const subscriber of subscribers.slice()) subscriber.next(message);
    } else if (this.readers.length > 0) {
      this.readers.shift()!.resolve(message);
    } else {
      this.kept.push(message, nbytes);
      if (
        !this.paused &&
        (this.kept.length >= this.config.readHighWaterMark || this.kept.bytes >= this.config.readHighWaterMarkBytes)
      ) {
        this.paused = true;
        this.connection.pause();
      }
    }
  }

  private takeKept(): unknown {
    const message = this.kept.shift();
    if (this.paused && this.kept.length < this.config.readHighWaterMark / 2 && this.kept.bytes < this.config.readHighWaterMarkBytes / 2) {
      this.paused = false;
      this.connection.resume();
    }
    return message;
  }

  private addSubscriber(subscriber: Subscriber<unknown>): () => void {
    // Kept messages go to the first subscriber, before anything new arrives.
    while (this.kept.length > 0 && !subscriber.closed) subscriber.next(this.takeKept());
    if (subscriber.closed) return () => undefined;
    if (this.ended) {
      this.endSubscriber(subscriber, this.ended);
      return () => undefined;
    }
    this.subscribers.push(subscriber);
    return () => {
      const at = this.subscribers.indexOf(subscriber);
      if (at >= 0) this.subscribers.splice(at, 1);
    };
  }

  private endSubscriber(subscriber: Subscriber<unknown>, end: EndOfStream): void {
    if (end.error) subscriber.error(end.error);
    else subscriber.complete();
  }

  private endError(what: string): CommClosedError {
    return this.ended?.error ?? new CommClosedError(`${what} on closed comm ${this}`);
  }

  /** The stream ended from the peer's side: clean close or failure. */
  private peerEnded(end: EndOfStream): void {
    if (end.error) {
      if (this.state !== 'closed') {
        this.state = 'closed';
        this.connection.abort(end.error);
      }
      this.finish(end);
    } else {
      // The peer closed cleanly: finish our side too (its writes have nowhere to go).
      this.endStream(end);
      void this.close();
    }
  }

  /** Our side is done: end the stream for everyone still reading. */
  private finish(end: EndOfStream): void {
    this.state = 'closed';
    this.endStream(end);
  }

  private endStream(end: EndOfStream): void {
    if (this.ended) return;
    this.ended = end;
    if (this.paused) {
      this.paused = false;
      this.connection.resume();
    }
    for (const subscriber of this.subscribers.splice(0)) this.endSubscriber(subscriber, end);
    for (const reader of this.readers.splice(0)) reader.reject(this.endError('read'));
  }
}
