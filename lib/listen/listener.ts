/**
 * `Listener`: an Observable of accepted, handshaken comms, with Dask's Listener surface
 * (`start`, `stop`, `listenAddress`, `contactAddress`) on top.
 *
 * All subscribers share one bound socket (`share()`: the first subscriber binds, the
 * last one's unsubscribe unbinds, a later subscriber binds again), so `start()` and Rx
 * subscriptions coexist. The binding's phase is one state, which `bound$` and the
 * address getters read. Handshakes run per connection under `handshakeTimeout`; one that
 * fails is reported on `status$` and never errors the listener.
 */
import {
  BehaviorSubject,
  concatMap,
  defer,
  filter,
  firstValueFrom,
  from,
  map,
  Observable,
  share,
  type Subscriber,
  type Subscription,
  take,
  tap,
} from 'rxjs';
import { parseAddress } from '../addresses';
import { Comm } from '../comm/comm';
import { scheduleDeadline } from '../comm/deadline';
import { refuse, runHandshake } from '../comm/handshake';
import { CommClosedError, ConfigError, FatalCommClosedError, HandshakeError } from '../errors';
import { checkEncryption, compressorReady, resolveListenConfig, type ListenConfig, type ListenSettings } from '../options';
import { getBackend, type ListenEvent } from '../registry';
import { reportStatus, status$, type CommStatus } from '../status';

/**
 * The addresses of a bound listener.
 *
 * ## Example
 * ```ts
 * const listener = listen('tcp://0.0.0.0:0');
 * listener.subscribe((comm) => comm.read$.subscribe(comm));
 * const { listenAddress, contactAddress }: BoundAddresses = await firstValueFrom(listener.bound$);
 * console.log(listenAddress, contactAddress); // tcp://0.0.0.0:41234 tcp://192.0.2.7:41234
 * ```
 *
 * @group Connect and listen
 */
export interface BoundAddresses {
  /** The address the socket is bound to, e.g. `tcp://[::]:41234`. */
  listenAddress: string;
  /** An address peers can connect to, e.g. `tcp://192.0.2.7:41234` for a wildcard bind. */
  contactAddress: string;
}

/**
 * What `listen()` hands each comm to, when started with `start()`. It may return
 * anything; a rejected promise aborts the comm.
 *
 * ## Example
 * ```ts
 * const greet: CommHandler = async (comm) => {
 *   await comm.write({ op: 'hello', from: comm.localAddress });
 *   await comm.close();
 * };
 * const listener = await listen('tcp://127.0.0.1:0', greet).start();
 * ```
 *
 * @group Connect and listen
 */
export type CommHandler = (comm: Comm) => unknown;

/** One subscription's output of accepted comms, and its handshakes still in flight. */
interface AcceptOutput {
  subscriber: Subscriber<Comm>;
  inFlight: number;
  /** The binding's events have completed: the output completes once none is in flight. */
  ended: boolean;
  /** The output was unsubscribed: handshakes finishing now are orphans. */
  unsubscribed: boolean;
}

/** Where the shared binding is: not subscribed, binding, bound, or its bind failed. */
type BindingState =
  | { phase: 'unbound' }
  | { phase: 'binding' }
  | { phase: 'bound'; addresses: BoundAddresses }
  | { phase: 'failed'; error: unknown };

/**
 * What `listen()` returns: an Observable of accepted, handshaken comms, with Dask's
 * Listener surface (`start`, `stop`, `listenAddress`, `contactAddress`) on top. All
 * subscribers share one bound socket: the first subscriber binds, the last one's
 * unsubscribe unbinds. A handshake that fails is reported on `status$` and never errors
 * the listener.
 *
 * ## Example
 * ```ts
 * // The Rx way: subscribing binds, unsubscribing stops accepting.
 * const echo = listen('tcp://127.0.0.1:0').subscribe((comm) => comm.read$.subscribe(comm));
 *
 * // Dask's way: start() binds and hands each comm to the handler.
 * const listener = await listen('tcp://127.0.0.1:0', (comm) => comm.read$.subscribe(comm)).start();
 * console.log(listener.contactAddress);
 * listener.stop();
 * echo.unsubscribe();
 * ```
 *
 * @group Connect and listen
 */
export class Listener extends Observable<Comm> {
  private readonly settings: ListenSettings;
  private readonly state$ = new BehaviorSubject<BindingState>({ phase: 'unbound' });
  /** What `start()` subscribed. */
  private started: Subscription | undefined;

  /**
   * Emits the bound addresses once the listener is bound (at once if it is), then
   * completes; errors if that bind fails. It does not bind by itself: subscribe to the
   * listener, or call `start()`.
   */
  readonly bound$: Observable<BoundAddresses> = this.state$.pipe(
    filter((state) => state.phase === 'bound' || state.phase === 'failed'),
    take(1),
    map((state) => {
      if (state.phase === 'failed') throw state.error;
      return (state as { addresses: BoundAddresses }).addresses;
    }),
  );

  /** The same as `listen(address, handleComm, config)`, which reads better. */
  constructor(
    /** The address given to `listen()`, e.g. `tcp://127.0.0.1:0` before the port is bound. */
    readonly address: string,
    private readonly handleComm: CommHandler | undefined,
    config: ListenConfig = {},
  ) {
    super((subscriber) => this.comms$.subscribe(subscriber));
    this.settings = resolveListenConfig(config);
  }

  /** The bound address, while bound. */
  get listenAddress(): string {
    return this.boundAddresses().listenAddress;
  }

  /** An address peers can connect to, while bound. */
  get contactAddress(): string {
    return this.boundAddresses().contactAddress;
  }

  /** This listener's events on `status$`: bound, rejected connections, stopped. */
  get status$(): Observable<CommStatus> {
    return status$.pipe(filter((event) => 'listenAddress' in event && event.listenAddress === this.currentListenAddress()));
  }

  /**
   * Dask's way: binds, and hands each comm to `handleComm`. Resolves once bound;
   * rejects if binding fails, after which `start()` may be called again.
   */
  async start(): Promise<this> {
    if (!this.started || this.started.closed) {
      this.started = this.subscribe({
        next: (comm) => this.runHandler(comm),
        error: () => undefined, // surfaced through bound$ below
      });
    }
    await firstValueFrom(this.bound$);
    return this;
  }

  /**
   * Stops accepting (what `start()` began). Established comms stay open, and so do those
   * whose handshake is in flight: they finish it and go to `handleComm`, as in Dask.
   */
  stop(): void {
    this.started?.unsubscribe();
    this.started = undefined;
  }

  private boundAddresses(): BoundAddresses {
    const state = this.state$.value;
    if (state.phase !== 'bound') throw new ConfigError(`listener for ${this.address} is not bound yet (or was stopped)`);
    return state.addresses;
  }

  private currentListenAddress(): string {
    const state = this.state$.value;
    return state.phase === 'bound' ? state.addresses.listenAddress : this.address;
  }

  private runHandler(comm: Comm): void {
    if (!this.handleComm) return;
    // A handler that throws or rejects gets its comm aborted, as Dask's listener does.
    const abort = (error: unknown) => comm.abort(error instanceof Error ? error : new Error(String(error)));
    try {
      const result = this.handleComm(comm);
      if (typeof (result as PromiseLike<unknown> | undefined)?.then === 'function') {
        (result as PromiseLike<unknown>).then(undefined, abort);
      }
    } catch (error) {
      abort(error);
    }
  }

  /** The shared pipeline: bind, accept, handshake each connection, emit comms. */
  private readonly comms$: Observable<Comm> = defer(() => {
    this.state$.next({ phase: 'binding' });
    const [scheme, location] = parseAddress(this.address);
    const backend = getBackend(scheme);
    checkEncryption(backend, this.address, this.settings.backend.security);
    const bind$ = backend.listen(location, this.settings.backend);
    // zstd's encoder is WebAssembly: loaded before binding, so every comm can compress.
    const ready = compressorReady(this.settings.comm);
    return ready === undefined ? bind$ : from(ready).pipe(concatMap(() => bind$));
  }).pipe(
    tap({
      error: (error: unknown) => this.state$.next({ phase: 'failed', error }),
      finalize: () => this.unbound(),
    }),
    (events$) => this.acceptAll(events$),
    share(),
  );

  /**
   * The comms of the binding's events: what `mergeMap(event => accept(event))` did, with
   * no Observable, inner subscriber and closures per accepted connection (the handshakes
   * in flight are counted instead). Events error or complete the output as mergeMap
   * would: an error at once, the end once the last handshake in flight has settled.
   */
  private acceptAll(events$: Observable<ListenEvent>): Observable<Comm> {
    return new Observable<Comm>((subscriber) => {
      const output: AcceptOutput = { subscriber, inFlight: 0, ended: false, unsubscribed: false };
      const events = events$.subscribe({
        next: (event) => {
          try {
            this.accept(event, output);
          } catch (error) {
            subscriber.error(error); // as mergeMap does when its project throws
          }
        },
        error: (error) => subscriber.error(error),
        complete: () => {
          output.ended = true;
          if (output.inFlight === 0) subscriber.complete();
        },
      });
      return () => {
        // Handshakes in flight are not ended: see `handshaken`.
        output.unsubscribed = true;
        events.unsubscribe();
      };
    });
  }

  private accept(event: ListenEvent, output: AcceptOutput): void {
    switch (event.type) {
      case 'bound': {
        const addresses = { listenAddress: event.listenAddress, contactAddress: event.contactAddress };
        this.state$.next({ phase: 'bound', addresses });
        reportStatus({ type: 'listen:bound', ...addresses });
        return;
      }
      case 'rejected':
        this.rejected(event.peerAddress, event.error);
        return;
      case 'refused': {
        const comm = new Comm(event.connection, this.settings.comm);
        this.rejected(comm.peerAddress, new FatalCommClosedError(event.reason));
        void refuse(comm, event.reason);
        return;
      }
      case 'connection':
        this.handshaken(new Comm(event.connection, this.settings.comm), output);
    }
  }

  /**
   * Emits the comm on `output` once its handshake is done; nothing if it fails or times
   * out (reported).
   *
   * The handshake outlives an unsubscribe (the listener stopping): by then the peer may
   * have read our half of the handshake and its `connect()` succeeded, so aborting would
   * kill a comm the peer already holds. It finishes and goes to `handleComm`; with no
   * handler to take it, it is closed cleanly (the peer's `read$` completes) and reported
   * as rejected.
   */
  private handshaken(comm: Comm, output: AcceptOutput): void {
    const { scheduler, backend } = this.settings;
    output.inFlight++;
    const settled = () => {
      output.inFlight--;
      if (output.ended && output.inFlight === 0 && !output.unsubscribed) output.subscriber.complete();
    };
    const failed = (error: Error) => {
      this.rejected(comm.peerAddress, error);
      settled();
    };
    const timeLimit = scheduleDeadline(scheduler, () => {
      cancelHandshake(); // aborts the comm
      comm.abort();
      failed(new HandshakeError(`no handshake from ${comm.peerAddress} within ${backend.handshakeTimeout} ms`));
    }, backend.handshakeTimeout);
    const cancelHandshake = runHandshake(comm, {
      next: (handshaken) => {
        timeLimit.unsubscribe();
        if (output.unsubscribed) {
          this.orphaned(handshaken);
          return;
        }
        output.subscriber.next(handshaken);
        settled();
      },
      error: (error: Error) => {
        timeLimit.unsubscribe();
        failed(error);
      },
    });
  }

  /** A comm whose handshake finished after the listener stopped. */
  private orphaned(comm: Comm): void {
    if (this.handleComm) {
      this.runHandler(comm);
      return;
    }
    this.rejected(comm.peerAddress, new CommClosedError('the listener stopped while this handshake was in flight'));
    void comm.close();
  }

  private rejected(peerAddress: string, error: Error): void {
    reportStatus({ type: 'listen:rejected', listenAddress: this.currentListenAddress(), peerAddress, error });
  }

  /** The binding ended (last unsubscribe, or the backend completed); a failure stays visible. */
  private unbound(): void {
    const state = this.state$.value;
    if (state.phase === 'failed') return;
    if (state.phase === 'bound') reportStatus({ type: 'listen:stopped', listenAddress: state.addresses.listenAddress });
    this.state$.next({ phase: 'unbound' });
  }
}

/**
 * Listens on `addr`. The returned `Listener` is an Observable of comms: subscribing
 * binds, each accepted connection is emitted once its handshake is done, and
 * unsubscribing stops accepting (established comms stay open). Or call `start()` to
 * bind and hand each comm to `handleComm`, as in Dask. A bad address or option throws
 * at once (`AddressError`, `ConfigError`).
 *
 * ## Example
 * ```ts
 * const listener = listen('tcp://127.0.0.1:0');
 * listener.subscribe((comm) => comm.read$.subscribe(comm)); // an echo server
 * const { contactAddress } = await firstValueFrom(listener.bound$);
 * ```
 *
 * @group Connect and listen
 */
export function listen(addr: string, config?: ListenConfig): Listener;
export function listen(addr: string, handleComm: CommHandler | undefined, config?: ListenConfig): Listener;
export function listen(addr: string, handleComm?: CommHandler | ListenConfig, config?: ListenConfig): Listener {
  parseAddress(addr); // bad addresses fail at once, as in Dask
  if (typeof handleComm === 'function' || handleComm === undefined) return new Listener(addr, handleComm, config);
  return new Listener(addr, undefined, handleComm);
}
