/**
 * `Comm`: one message-passing connection, the same on every transport.
 *
 * Data flows one way through it: the transport (`Connection`) delivers whole messages
 * to the comm's sink; the comm hands each to its `read$` subscribers, else to a pending
 * `read()`, else keeps it as unread (pausing the transport past the high-water marks).
 * Writes go straight to the transport, which owns write buffering and backpressure.
 *
 * Memory stays bounded whichever way a user writes: a write made while a comm is
 * delivering a message (`a.read$.subscribe(b)`, the echo `comm.read$.subscribe(comm)`)
 * that finds its transport at the high-water mark pauses the delivering comm's reading
 * until that write is taken; and a write made while more than `writeBufferLimit` bytes
 * wait unsent aborts the comm instead of growing.
 */
import { asyncScheduler, Observable, type Observer, type SchedulerLike, type Subscriber } from 'rxjs';
import { CommClosedError, DeadPeerError, toCommClosedError, WriteBufferOverflowError } from '../errors';
import { reportStatus } from '../status';
import type { Connection, ConnectionSink } from './connection';
import { watchPeer, type PeerWatch } from './peer-watch';
import { UnreadMessages } from './unread-messages';

/**
 * The comm whose messages are being delivered right now, if any: a write made
 * synchronously inside that delivery is fed by it, so it is the reader to slow down.
 */
let delivering: Comm | undefined;

/**
 * A Comm's settings, resolved from `CommConfig` (see the options for their meaning):
 * what the `Comm` constructor takes, every one given.
 *
 * ## Example
 * ```ts
 * // A comm on a connection of your own (here a test pair), as a fake backend makes one.
 * const [end] = createConnectionPair();
 * const settings: CommSettings = {
 *   readHighWaterMark: 1024,
 *   readHighWaterMarkBytes: 64 * 1024 * 1024,
 *   writeBufferLimit: 64 * 1024 * 1024,
 *   closeTimeout: 10_000,
 *   deadPeerTimeout: 0,
 *   compression: null,
 * };
 * const comm = new Comm(end, settings);
 * ```
 *
 * @group Comms
 */
export interface CommSettings {
  /** {@link CommConfig.readHighWaterMark}. */
  readHighWaterMark: number;
  /** {@link CommConfig.readHighWaterMarkBytes}. */
  readHighWaterMarkBytes: number;
  /** {@link CommConfig.writeBufferLimit}. */
  writeBufferLimit: number;
  /** {@link CommConfig.closeTimeout}. */
  closeTimeout: number;
  /** {@link CommConfig.deadPeerTimeout}; 0: no dead-peer watch. */
  deadPeerTimeout: number;
  /** What the handshake advertises (`'auto'` already resolved): a label, or null for none. */
  compression: string | null;
  /** Where the dead-peer watch keeps time. @default asyncScheduler */
  scheduler?: SchedulerLike;
}

/**
 * The handshake map each side sends (`{compression, python, 'pickle-protocol'}` and extras).
 *
 * ## Example
 * ```ts
 * const peer: HandshakeInfo = comm.remoteInfo;
 * console.log(peer.address, peer.python, peer['pickle-protocol']);
 * ```
 *
 * @group Comms
 */
export type HandshakeInfo = Record<string, unknown>;

/**
 * What the two handshakes agreed on.
 *
 * ## Example
 * ```ts
 * const { compression } = comm.handshakeOptions;
 * console.log(compression === null ? 'uncompressed' : `payloads compressed with ${compression}`);
 * ```
 *
 * @group Comms
 */
export interface HandshakeOptions {
  /** The compression both sides advertised, or null: what this side writes payloads with. */
  compression: string | null;
  /** The lower of the two sides' pickle protocols, as Dask picks it. */
  'pickle-protocol': number;
}

/** How the message stream ended: cleanly, or with the peer's failure. */
type EndOfStream = { error?: CommClosedError };

/**
 * The comm's lifecycle. `closing`: `close()` is flushing; `closed`: done, by a flushed
 * close, an abort, or the peer's failure. Reading ends separately (see `endStream`):
 * a peer's clean close ends it while this side may still be flushing.
 */
type CommState = 'open' | 'closing' | 'closed';

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
 *
 * @group Comms
 */
export class Comm implements Observer<unknown> {
  /**
   * The messages from the peer, each exactly once and in order. Messages that arrived
   * before anyone subscribed are kept and delivered first. Completes when this side
   * closes or aborts, or the peer closes cleanly; errors with `CommClosedError` only when
   * the peer fails (it aborted, the connection was reset, a protocol error).
   * Subscribers present at the same time all see the same messages.
   */
  get read$(): Observable<unknown> {
    // Made when first asked for: a comm read only by its handshake and `read()` (a client's
    // rpc comm) never needs one.
    return (this.readObservable ??= new Observable<unknown>((subscriber) => this.addSubscriber(subscriber)));
  }

  /** What the handshakes agreed on. */
  handshakeOptions: HandshakeOptions = DEFAULT_HANDSHAKE_OPTIONS;

  private readonly settings: CommSettings;
  private readObservable: Observable<unknown> | undefined = undefined;
  /**
   * Messages that arrived while nobody was reading, in order. Made when one first does,
   * dropped when emptied: most comms are read as messages arrive and never hold one.
   */
  private unread: UnreadMessages | null = null;
  private readonly subscribers: CommReader[] = [];
  /** `read()` calls waiting for a message; made at the first that waits. */
  private pendingReads: PendingRead[] | null = null;
  /** The two handshake maps as exchanged; `localInfo` and `remoteInfo` are made from them when asked for. */
  private localHandshake: HandshakeInfo | undefined;
  private remoteHandshake: HandshakeInfo | undefined;
  private localInfoValue: HandshakeInfo | undefined;
  private remoteInfoValue: HandshakeInfo | undefined;
  private state: CommState = 'open';
  /** Set once by `endStream`: how reading ended. */
  private ended: EndOfStream | undefined;
  /** Too much is unread: the transport is paused until the reader catches up. */
  private unreadFull = false;
  /** Writes fed by this comm's messages that wait for their transport (see `holdReading`). */
  private holds = 0;
  /** Whether the transport is paused, for either reason above. */
  private transportPaused = false;
  /** The dead-peer watch, once the handshake has started it. */
  private watch: PeerWatch | undefined;
  /** What `close()` returns, the same promise each time. */
  private closed$: Promise<void> | undefined;
  /** Ends a `close()` in progress: its timer cleared, its promise resolved. */
  private settleClose: (() => void) | undefined;

  /**
   * Wraps a connected transport end. `connect()`, `listen()` and `rxcomm/testing` make
   * comms; call this only for a `Connection` of your own (a fake backend), with every
   * setting given. The handshake is not run: see `acceptHandshake` in `rxcomm/testing`.
   */
  constructor(
    private readonly connection: Connection,
    settings: CommSettings,
  ) {
    this.settings = settings;
    this.sink = new CommSink(this);
    connection.open(this.sink);
  }

  /** This side's handshake, plus `address`. */
  get localInfo(): HandshakeInfo {
    if (this.localInfoValue === undefined && this.localHandshake) this.localInfoValue = { ...this.localHandshake, address: this.localAddress };
    return (this.localInfoValue ??= {});
  }

  /** Replaces what `localInfo` returns: `rxcomm/testing` sets it on comms that skip the handshake. */
  set localInfo(info: HandshakeInfo) {
    this.localInfoValue = info;
  }

  /** The peer's handshake, plus `address`. */
  get remoteInfo(): HandshakeInfo {
    if (this.remoteInfoValue === undefined && this.remoteHandshake) this.remoteInfoValue = { ...this.remoteHandshake, address: this.peerAddress };
    return (this.remoteInfoValue ??= {});
  }

  /** Replaces what `remoteInfo` returns, as `localInfo`'s setter does. */
  set remoteInfo(info: HandshakeInfo) {
    this.remoteInfoValue = info;
  }

  /**
   * The handshake's outcome: the maps exchanged and what they agreed on. `localInfo` and
   * `remoteInfo` are made from the maps when first read, as few comms ever read them.
   * @internal
   */
  handshaken(local: HandshakeInfo, remote: HandshakeInfo, options: HandshakeOptions): void {
    this.localHandshake = local;
    this.remoteHandshake = remote;
    this.localInfoValue = this.remoteInfoValue = undefined;
    this.handshakeOptions = options;
    this.connection.useCompression?.(options.compression);
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

  /**
   * True while the transport holds `writeHighWaterMark` or more unsent: a `write()` now
   * would wait for the peer to read. `writeTo` reads it to hold values back.
   */
  get needsDrain(): boolean {
    return this.state === 'open' && this.connection.needsDrain;
  }

  /** The next message. Rejects with `CommClosedError` once the stream has ended. */
  read(): Promise<unknown> {
    if (this.unread !== null) return Promise.resolve(this.takeUnread());
    if (this.ended) return Promise.reject(this.endError('read'));
    return new Promise((resolve, reject) => (this.pendingReads ??= []).push({ resolve, reject }));
  }

  /**
   * Sends one message. Resolves with its size on the wire once the transport has taken it
   * within its high-water mark, so a fast writer waits for a slow reader. Rejects with
   * `CommClosedError` when the comm is closed or aborted; never throws.
   */
  write(message: unknown): Promise<number> {
    if (this.state !== 'open') {
      // A comm that failed says why (a dead peer, say) to every later writer too.
      return Promise.reject(this.ended?.error ?? new CommClosedError(`write to closed comm ${this}`));
    }
    const connection = this.connection;
    const buffered = connection.bufferedBytes;
    if (buffered > this.settings.writeBufferLimit) {
      const error = new WriteBufferOverflowError(buffered, this.settings.writeBufferLimit, this.peerAddress);
      this.fail(error);
      return Promise.reject(error);
    }
    const written = connection.write(message);
    // Fed by a comm's delivery and meeting the high-water mark: slow that reader down.
    if (delivering !== undefined && connection.needsDrain) delivering.holdReading(written);
    return written;
  }

  /**
   * Flushes pending writes, then closes; this side's `read$` and the peer's complete.
   * Takes at most `closeTimeout` ms, then aborts. Never rejects. Calling it again
   * returns the same promise.
   */
  close(): Promise<void> {
    if (this.closed$) return this.closed$;
    if (this.state === 'closed') return Promise.resolve();
    this.state = 'closing';
    const flushed = this.connection.close();
    if (!flushed) {
      // Done at once (inproc): stay synchronous, so closing runs in virtual time.
      this.closeFlushed();
      this.closed$ = Promise.resolve();
      return this.closed$;
    }
    this.closed$ = new Promise<void>((resolve) => {
      const { closeTimeout } = this.settings;
      const timer = setTimeout(() => {
        reportStatus({ type: 'comm:close-timeout', localAddress: this.localAddress, peerAddress: this.peerAddress, timeout: closeTimeout });
        this.abort(new CommClosedError(`close timed out after ${closeTimeout} ms`));
      }, closeTimeout);
      // Settled once: by the flush, by the timeout, or by an abort that ends the close early.
      this.settleClose = () => {
        this.settleClose = undefined;
        clearTimeout(timer);
        resolve();
      };
      const done = () => {
        if (!this.settleClose) return;
        this.closeFlushed();
        this.settleClose();
      };
      flushed.then(done, done);
    });
    return this.closed$;
  }

  /**
   * Closes now, dropping unsent data: pending writes reject, this side's `read$`
   * completes (you asked for the end), and the peer's `read$` errors.
   */
  abort(reason?: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.stopWatch();
    this.connection.abort(reason);
    this.endStream({});
    this.settleClose?.(); // a close in progress ends here: nothing is left to flush
  }

  /**
   * Observer: writes `message` without waiting. A failure is reported on `status$`, as
   * nobody awaits it. Bounded all the same: fed by another comm's `read$`, it pauses that
   * comm's reading while this one's transport is full; otherwise past `writeBufferLimit`
   * the comm aborts with `WriteBufferOverflowError`.
   */
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

  /** Where the connection delivers (a `CommSink`). */
  private readonly sink: ConnectionSink;

  /** The peer closed cleanly: reading is over, and our writes have nowhere to go. @internal (CommSink) */
  peerClosed(): void {
    this.endStream({});
    void this.close();
  }

  /** The connection failed. @internal (CommSink) */
  connectionFailed(err: Error): void {
    this.fail(toCommClosedError(err, 'connection lost'));
  }

  /**
   * The comm failed (the peer's failure, a dead peer, a write buffer overflow): reported
   * on `status$`, the transport dropped, `read$` errors and writes reject with `error`.
   */
  private fail(error: CommClosedError): void {
    reportStatus({ type: 'comm:aborted', localAddress: this.localAddress, peerAddress: this.peerAddress, error });
    this.stopWatch();
    if (this.state !== 'closed') {
      this.state = 'closed';
      this.connection.abort(error);
      this.settleClose?.();
    }
    this.endStream({ error });
  }

  /** One message from the connection. @internal (CommSink) */
  receive(message: unknown, nbytes: number): void {
    const subscribers = this.subscribers;
    const previous = delivering;
    delivering = this;
    try {
      if (subscribers.length === 1) {
        subscribers[0].next(message);
      } else if (subscribers.length > 1) {
        for (const subscriber of subscribers.slice()) subscriber.next(message);
      } else if (this.pendingReads !== null && this.pendingReads.length > 0) {
        this.pendingReads.shift()!.resolve(message);
      } else {
        const unread = (this.unread ??= new UnreadMessages());
        unread.push(message, nbytes);
        const { readHighWaterMark, readHighWaterMarkBytes } = this.settings;
        if (!this.unreadFull && (unread.length >= readHighWaterMark || unread.bytes >= readHighWaterMarkBytes)) {
          this.unreadFull = true;
          this.syncPause();
        }
      }
    } finally {
      delivering = previous;
    }
  }

  /** The oldest unread message; only while there is one (`unread` is never left empty). */
  private takeUnread(): unknown {
    const unread = this.unread!;
    const message = unread.shift();
    if (unread.length === 0) this.unread = null; // an idle comm keeps no queue
    const { readHighWaterMark, readHighWaterMarkBytes } = this.settings;
    if (this.unreadFull && unread.length < readHighWaterMark / 2 && unread.bytes < readHighWaterMarkBytes / 2) {
      this.unreadFull = false;
      this.syncPause();
    }
    return message;
  }

  /**
   * A write that this comm's delivery fed waits for its transport: read no more until it
   * is taken, so that an echo (or any synchronous pipe from `read$` into a comm) moves at
   * the pace of the slower side instead of queueing what the peer sends.
   */
  private holdReading(written: Promise<unknown>): void {
    this.holds++;
    this.syncPause();
    const release = () => {
      this.holds--;
      this.syncPause();
    };
    written.then(release, release);
  }

  /** Pauses or resumes the transport to match why it should be paused; none once ended. */
  private syncPause(): void {
    const pause = !this.ended && (this.unreadFull || this.holds > 0);
    if (pause === this.transportPaused) return;
    this.transportPaused = pause;
    if (pause) this.connection.pause();
    else this.connection.resume();
  }

  // ---- dead-peer detection ----

  /** The compression this side advertises in its handshake (null: none). @internal */
  get compression(): string | null {
    return this.settings.compression;
  }

  /** This side's `deadPeerTimeout` (0: off), which the handshake advertises. @internal */
  get deadPeerTimeout(): number {
    return this.settings.deadPeerTimeout;
  }

  /**
   * Starts watching for a dead peer, once the handshake has said what the peer
   * understands (`peerTimeout`: the peer's own deadPeerTimeout, `undefined` when it does
   * not understand rxcomm heartbeats). A no-op where the transport cannot tell. @internal
   */
  startPeerWatch(peerTimeout: number | undefined): void {
    if (this.watch || this.state !== 'open' || this.ended) return;
    const probe = this.connection.peerProbe?.(peerTimeout !== undefined);
    if (!probe) return;
    this.watch = watchPeer(
      probe,
      {
        ownTimeout: this.settings.deadPeerTimeout,
        peerTimeout: peerTimeout ?? 0,
        readingPaused: () => (this.unreadFull ? 'unread' : this.holds > 0 ? 'held' : undefined),
        dead: (silentFor) => this.fail(new DeadPeerError(this.peerAddress, silentFor)),
      },
      this.settings.scheduler ?? asyncScheduler,
    );
  }

  private stopWatch(): void {
    this.watch?.stop();
    this.watch = undefined;
  }

  /**
   * Reads as a `read$` subscriber would, without one: the handshake's reader, one per
   * connect and accept, is a plain object (no rxjs Subscriber, Subscription and teardown).
   * It stops being called once `closed` is true, or once the returned function removed it.
   * @internal
   */
  addReader(reader: CommReader): () => void {
    return this.addSubscriber(reader);
  }

  private addSubscriber(subscriber: CommReader): () => void {
    // Unread messages go to the first subscriber, before anything new arrives.
    while (this.unread !== null && !subscriber.closed) subscriber.next(this.takeUnread());
    if (subscriber.closed) return () => undefined;
    if (this.ended) {
      endSubscriber(subscriber, this.ended);
      return () => undefined;
    }
    this.subscribers.push(subscriber);
    return () => {
      const at = this.subscribers.indexOf(subscriber);
      if (at >= 0) this.subscribers.splice(at, 1);
    };
  }

  private endError(what: string): CommClosedError {
    return this.ended?.error ?? new CommClosedError(`${what} on closed comm ${this}`);
  }

  private closeFlushed(): void {
    this.state = 'closed';
    this.stopWatch();
    this.endStream({});
  }

  /**
   * The end of the message stream: the one transition every ending goes through. A
   * flushed `close()`, an `abort()` and the peer's clean close complete `read$`; only the
   * peer's failure (reset, protocol error, its abort) errors it. Runs once: subscribers
   * end, pending reads reject, and a paused transport resumes to see its own end.
   */
  private endStream(end: EndOfStream): void {
    if (this.ended) return;
    this.ended = end;
    this.stopWatch();
    this.syncPause(); // resumes: a paused transport must see its own end
    for (const subscriber of this.subscribers.splice(0)) endSubscriber(subscriber, end);
    const pendingReads = this.pendingReads;
    this.pendingReads = null;
    if (pendingReads !== null) for (const pending of pendingReads) pending.reject(this.endError('read'));
  }
}

/** Until a handshake says otherwise. Shared by every comm: one object less per comm. */
const DEFAULT_HANDSHAKE_OPTIONS: HandshakeOptions = Object.freeze({ compression: null, 'pickle-protocol': 5 });

/** Where the connection delivers: one small object per comm rather than three closures. */
class CommSink implements ConnectionSink {
  constructor(private readonly comm: Comm) {}

  next(message: unknown, nbytes: number): void {
    this.comm.receive(message, nbytes);
  }

  complete(): void {
    this.comm.peerClosed();
  }

  error(err: Error): void {
    this.comm.connectionFailed(err);
  }
}

/**
 * What the comm hands messages and its end to: a `read$` subscriber, or a reader of
 * `addReader`. `closed`: it takes nothing more.
 * @internal
 */
export interface CommReader {
  readonly closed: boolean;
  next(message: unknown): void;
  error(error: unknown): void;
  complete(): void;
}

function endSubscriber(subscriber: CommReader, end: EndOfStream): void {
  if (end.error) subscriber.error(end.error);
  else subscriber.complete();
}
