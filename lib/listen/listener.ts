/**
 * `Listener`: an Observable of accepted, handshaken comms, with Dask's Listener surface
 * (`start`, `stop`, `listenAddress`, `contactAddress`) on top.
 *
 * All subscribers share one bound socket (refcounted), so `start()` and an Rx
 * subscription can coexist. Handshakes run per connection under `handshakeTimeout`;
 * one that fails is reported on `status$` and never errors the listener.
 */
import {
  catchError,
  defer,
  EMPTY,
  filter,
  mergeMap,
  Observable,
  ReplaySubject,
  share,
  type Subscription,
  take,
  tap,
  timeout,
  firstValueFrom,
} from 'rxjs';
import { parseAddress } from '../addresses/parse';
import { Comm } from '../comm/comm';
import { handshake } from '../comm/handshake';
import { resolveTransportConfig } from '../connect/backend-options';
import type { TransportConfig } from '../connect/config';
import { checkEncryption } from '../connect/encryption';
import { ConfigError, HandshakeError } from '../errors';
import { getBackend, type ListenEvent } from '../registry';
import { reportStatus, status$, type CommStatus } from '../status';

/** Options of `listen()`. */
export interface ListenConfig extends TransportConfig {
  /**
   * How long an accepted connection may take to complete its handshake (and, for tls,
   * the TLS handshake) before it is dropped, in milliseconds.
   * @default 30000
   */
  handshakeTimeout?: number;
}

/** The addresses of a bound listener. */
export interface BoundAddresses {
  /** The address the socket is bound to, e.g. `tcp://[::]:41234`. */
  listenAddress: string;
  /** An address peers can connect to, e.g. `tcp://192.0.2.7:41234` for a wildcard bind. */
  contactAddress: string;
}

export const LISTEN_DEFAULTS = { handshakeTimeout: 30_000 } as const;

/** The outcome of one bind: its addresses once bound, or its error. */
type Binding = ReplaySubject<BoundAddresses>;

export class Listener extends Observable<Comm> {
  private binding: Binding = new ReplaySubject<BoundAddresses>(1);
  private bindingUsed = false;
  private started: Subscription | undefined;
  private addresses: BoundAddresses | undefined;

  /**
   * Emits the bound addresses once the listener is bound (at once if it is), then
   * completes; errors if binding fails. It does not bind by itself: subscribe to the
   * listener, or call `start()`.
   */
  readonly bound$: Observable<BoundAddresses> = defer(() => this.binding.pipe(take(1)));

  /** @internal Use `listen()`. */
  constructor(
    readonly address: string,
    private readonly handleComm?: (comm: Comm) => void | Promise<void>,
    private readonly config: ListenConfig = {},
  ) {
    super((subscriber) => this.comms$.subscribe(subscriber));
  }

  /** The bound address, once bound. */
  get listenAddress(): string {
    if (!this.addresses) throw new ConfigError(`listener for ${this.address} is not bound yet`);
    return this.addresses.listenAddress;
  }

  /** An address peers can connect to, once bound. */
  get contactAddress(): string {
    if (!this.addresses) throw new ConfigError(`listener for ${this.address} is not bound yet`);
    return this.addresses.contactAddress;
  }

  /** This listener's events on `status$`: bound, rejected connections, stopped. */
  get status$(): Observable<CommStatus> {
    return status$.pipe(
      filter((event) => 'listenAddress' in event && this.addresses !== undefined && event.listenAddress === this.addresses.listenAddress),
    );
  }

  /**
   * Dask's way: binds, and hands each comm to `handleComm`. Resolves once bound;
   * rejects if binding fails.
   */
  async start(): Promise<this> {
    if (!this.started || this.started.closed) {
      // (again, after a failed bind: start() may be retried)
      this.started = this.subscribe({
        next: (comm) => this.runHandler(comm),
        error: () => undefined, // surfaced through the bound$ wait below
      });
    }
    await firstValueFrom(this.bound$);
    return this;
  }

  /** Stops accepting (what `start()` began). Established comms stay open. */
  stop(): void {
    this.started?.unsubscribe();
    this.started = undefined;
  }

  private runHandler(comm: Comm): void {
    if (!this.handleComm) return;
    Promise.resolve()
      .then(() => this.handleComm!(comm))
      .catch((error: Error) => {
        // A handler that throws gets its comm aborted, as Dask's listener does.
        comm.abort(error);
      });
  }

  /** The shared pipeline: bind, accept, handshake each connection, emit comms. */
  private readonly comms$: Observable<Comm> = new Observable<Comm>((subscriber) => {
    // A fresh binding each time the shared socket is (re)bound, so bound$ never replays a stale one.
    const binding: Binding = this.bindingUsed ? new ReplaySubject(1) : this.binding;
    this.binding = binding;
    this.bindingUsed = true;
    let listenAddress = this.address;
    const handshakeTimeout = this.config.handshakeTimeout ?? LISTEN_DEFAULTS.handshakeTimeout;
    let options!: ReturnType<typeof resolveTransportConfig>;

    const rejected = (peerAddress: string, error: Error) =>
      reportStatus({ type: 'listen:rejected', listenAddress, peerAddress, error });

    // Inside defer, so that a bad config errors bound$ and start() like a bind failure.
    return defer(() => {
      const [scheme, location] = parseAddress(this.address);
      const backend = getBackend(scheme);
      checkEncryption(backend, this.address, this.config);
      options = resolveTransportConfig(this.config);
      return backend.listen(location, { ...options.backend, handshakeTimeout });
    })
      .pipe(
        tap({
          error: (err: Error) => binding.error(err),
          finalize: () => {
            binding.complete();
            if (this.addresses) reportStatus({ type: 'listen:stopped', listenAddress });
          },
        }),
        mergeMap((event: ListenEvent) => {
          switch (event.type) {
            case 'bound':
              listenAddress = event.listenAddress;
              this.addresses = { listenAddress: event.listenAddress, contactAddress: event.contactAddress };
              binding.next(this.addresses);
              reportStatus({ type: 'listen:bound', ...this.addresses });
              return EMPTY;
            case 'rejected':
              rejected(event.peerAddress, event.error);
              return EMPTY;
            case 'connection': {
              const comm = new Comm(event.connection, options.comm);
              return handshake(comm).pipe(
                timeout({
                  first: handshakeTimeout,
                  with: () => {
                    comm.abort();
                    throw new HandshakeError(`no handshake from ${comm.peerAddress} within ${handshakeTimeout} ms`);
                  },
                }),
                catchError((error: Error) => {
                  rejected(comm.peerAddress, error);
                  return EMPTY;
                }),
              );
            }
          }
        }),
      )
      .subscribe(subscriber);
  }).pipe(share({ resetOnError: true, resetOnComplete: true, resetOnRefCountZero: true }));
}

/**
 * Listens on `addr`. The returned `Listener` is an Observable of comms: subscribing
 * binds, each accepted connection is emitted once its handshake is done, and
 * unsubscribing stops accepting (established comms stay open). Or call `start()` to
 * bind and hand each comm to `handleComm`, as in Dask.
 *
 * ## Example
 * ```ts
 * const listener = listen('tcp://127.0.0.1:0');
 * listener.subscribe((comm) => comm.read$.subscribe(comm)); // an echo server
 * const { contactAddress } = await firstValueFrom(listener.bound$);
 * ```
 */
export function listen(
  addr: string,
  handleComm?: ((comm: Comm) => void | Promise<void>) | ListenConfig,
  config?: ListenConfig,
): Listener {
  parseAddress(addr); // bad addresses fail at once, as in Dask
  if (typeof handleComm === 'object' && handleComm !== null) return new Listener(addr, undefined, handleComm);
  return new Listener(addr, handleComm, config);
}
