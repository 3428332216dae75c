/**
 * Dask's `ConnectionPool`: comms to any number of addresses, at most `limit` open at once.
 * A caller takes an idle comm to its address, or opens one while there is room, or closes
 * an idle comm to another address to make room; otherwise it waits, in order, until a comm
 * is given back or closed. A comm is lent to one call at a time, as Dask's `rpc` does.
 */
import { defer, Observable, type Subscriber, type Subscription } from 'rxjs';
import type { Comm } from '../comm/comm';
import { connect } from '../connect/connect';
import { CommClosedError, ConfigError } from '../errors';
import type { ConnectConfig } from '../options';
import { Rpc } from './rpc';

/**
 * Options of a `ConnectionPool`: its `limit`, and the `connect()` options of every comm
 * it opens.
 *
 * ## Example
 * ```ts
 * const config: ConnectionPoolConfig = { limit: 100, timeout: 10_000, compression: 'auto' };
 * const pool = new ConnectionPool(config);
 * ```
 *
 * @group Requests, handlers and streams
 */
export interface ConnectionPoolConfig extends ConnectConfig {
  /**
   * Most comms open at once, across all addresses (lent out, idle, or connecting).
   * @default 512, Dask's default for its clients' pools
   */
  limit?: number;
}

/** What an `Rpc` borrows its comms from (a `ConnectionPool`). */
export interface CommLender {
  /** Cold: lends one comm (an idle one, or a new one), then completes. */
  borrow(address: string): Observable<Comm>;
  /** The call finished cleanly: the comm may serve the next one. */
  giveBack(address: string, comm: Comm): void;
  /** The call failed or was cancelled, and the comm was aborted: forget it. */
  forget(address: string, comm: Comm): void;
  /** Comms to `address` open now, lent or idle. */
  openTo(address: string): number;
}

interface IdleComm {
  comm: Comm;
  /** Watches the idle comm: a peer that closes it, or talks out of turn, takes it out. */
  watch: Subscription;
}

interface Waiter {
  address: string;
  lend(comm: Comm): void;
  open(): void;
  fail(error: Error): void;
}

/**
 * Dask's `ConnectionPool`: comms to any number of addresses, at most `limit` open at
 * once, lent to one call at a time through `pool.rpc(address)`. A caller at the limit
 * waits, in order, until a comm is given back or closed; an idle comm to another address
 * is closed to make room.
 *
 * ## Example
 * ```ts
 * const pool = new ConnectionPool({ limit: 10 });
 * const scheduler = pool.rpc('tcp://127.0.0.1:8786');
 * const ids = await Promise.all([1, 2, 3].map(() => firstValueFrom(scheduler.call('identity'))));
 * console.log(pool.open, pool.idle); // comms opened for the three calls, now idle
 * await pool.close();
 * ```
 *
 * @group Requests, handlers and streams
 */
export class ConnectionPool {
  /** Most comms open at once, across all addresses (`ConnectionPoolConfig.limit`). */
  readonly limit: number;
  private readonly config: ConnectConfig;
  /** Idle comms per address, the most recently used last. */
  private readonly idleComms = new Map<string, IdleComm[]>();
  private readonly perAddress = new Map<string, number>();
  /** Comms lent to a call now. */
  private readonly lentComms = new Set<Comm>();
  /** Connects in flight, each with how to end it with an error (on `close()`). */
  private readonly connecting = new Map<Subscriber<Comm>, (error: Error) => void>();
  private idleCount = 0;
  private readonly waiters: Waiter[] = [];
  private closed = false;

  /** A pool with no comm open yet: comms are opened as calls need them. */
  constructor(config: ConnectionPoolConfig = {}) {
    const { limit = 512, ...connectConfig } = config;
    if (!(limit >= 1) || (limit !== Infinity && !Number.isInteger(limit))) {
      throw new ConfigError(`limit must be a positive integer (or Infinity), got ${String(limit)}`);
    }
    this.limit = limit;
    this.config = connectConfig;
  }

  /** Comms open now: lent out, idle, or connecting. */
  get open(): number {
    return this.lentComms.size + this.connecting.size + this.idleCount;
  }

  /** Comms lent out or connecting. */
  get active(): number {
    return this.lentComms.size + this.connecting.size;
  }

  /** Comms open and waiting for a call. */
  get idle(): number {
    return this.idleCount;
  }

  /** Callers waiting for room at the limit. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Calls to `address` through this pool's comms. Its `close()` leaves the pool open. */
  rpc(address: string): Rpc {
    return new Rpc(address, this);
  }

  /** @internal */
  openTo(address: string): number {
    return this.perAddress.get(address) ?? 0;
  }

  /** @internal What `Rpc` calls borrow comms with. */
  borrow(address: string): Observable<Comm> {
    return new Observable<Comm>((subscriber) => {
      if (this.closed) {
        subscriber.error(new CommClosedError('the connection pool is closed'));
        return;
      }
      let connecting: Subscription | undefined;
      let settled = false;
      const waiter: Waiter = {
        address,
        lend: (comm) => {
          settled = true;
          this.lentComms.add(comm);
          subscriber.next(comm);
          subscriber.complete();
        },
        fail: (error) => {
          settled = true;
          subscriber.error(error);
        },
        open: () => {
          this.count(address, +1);
          const ended = () => {
            this.connecting.delete(subscriber);
            this.count(address, -1);
          };
          this.connecting.set(subscriber, (error) => {
            connectingNow?.unsubscribe();
            ended();
            settled = true;
            subscriber.error(error);
          });
          const connectingNow: Subscription = defer(() => connect(address, this.config)).subscribe({
            next: (comm) => {
              this.connecting.delete(subscriber);
              waiter.lend(comm);
            },
            error: (error) => {
              ended();
              settled = true;
              subscriber.error(error);
              this.serveWaiters();
            },
          });
          connecting = connectingNow;
        },
      };
      this.waiters.push(waiter);
      this.serveWaiters();
      return () => {
        if (settled) return;
        const queued = this.waiters.indexOf(waiter);
        if (queued >= 0) {
          this.waiters.splice(queued, 1);
          return;
        }
        // Cancelled while connecting: the connect's own teardown drops the attempt.
        connecting?.unsubscribe();
        if (this.connecting.delete(subscriber)) this.count(address, -1);
        this.serveWaiters();
      };
    });
  }

  /** @internal */
  giveBack(address: string, comm: Comm): void {
    this.lentComms.delete(comm);
    if (this.closed || comm.closed) {
      this.count(address, -1);
      if (!comm.closed) void comm.close();
    } else {
      this.keepIdle(address, comm);
    }
    this.serveWaiters();
  }

  /** @internal */
  forget(address: string, comm: Comm): void {
    this.lentComms.delete(comm);
    this.count(address, -1);
    this.serveWaiters();
  }

  /**
   * Closes every comm: idle ones cleanly, lent ones by abort (their calls error), and
   * errors every waiting caller. The pool takes no more calls.
   */
  async close(): Promise<void> {
    this.closed = true;
    for (const waiter of this.waiters.splice(0)) waiter.fail(new CommClosedError('the connection pool is closed'));
    for (const comm of this.lentComms) comm.abort(new CommClosedError('the connection pool is closed'));
    for (const fail of [...this.connecting.values()]) fail(new CommClosedError('the connection pool is closed'));
    const closing: Promise<void>[] = [];
    for (const [address, idle] of this.idleComms) {
      for (const { comm, watch } of idle.splice(0)) {
        watch.unsubscribe();
        this.idleCount--;
        this.count(address, -1);
        closing.push(comm.close());
      }
    }
    this.idleComms.clear();
    await Promise.all(closing);
  }

  /** Hands out what the limit allows, first come first served. */
  private serveWaiters(): void {
    if (this.closed) return;
    while (this.waiters.length > 0) {
      const waiter = this.waiters[0];
      const comm = this.takeIdle(waiter.address);
      if (comm) {
        this.waiters.shift();
        waiter.lend(comm);
      } else if (this.open < this.limit) {
        this.waiters.shift();
        waiter.open();
      } else if (!this.closeOldestIdle()) {
        return; // everything is lent or connecting: wait for a comm to come back
      }
    }
  }

  private keepIdle(address: string, comm: Comm): void {
    let idle = this.idleComms.get(address);
    if (!idle) this.idleComms.set(address, (idle = []));
    // Listed before watching: subscribing may at once deliver what the peer sent meanwhile.
    const entry = { comm } as IdleComm;
    idle.push(entry);
    this.idleCount++;
    entry.watch = comm.read$.subscribe({
      // An idle comm gets nothing: a message now means the peer is confused.
      next: () => comm.abort(new CommClosedError(`unexpected message on idle comm ${comm}`)),
      error: () => this.dropIdle(address, entry),
      complete: () => this.dropIdle(address, entry),
    });
  }

  private takeIdle(address: string): Comm | undefined {
    const idle = this.idleComms.get(address);
    const entry = idle?.pop();
    if (!entry) return undefined;
    entry.watch.unsubscribe();
    this.idleCount--;
    return entry.comm;
  }

  private dropIdle(address: string, entry: IdleComm): void {
    const idle = this.idleComms.get(address);
    const at = idle?.indexOf(entry) ?? -1;
    if (at < 0) return;
    idle!.splice(at, 1);
    this.idleCount--;
    this.count(address, -1);
    if (!entry.comm.closed) void entry.comm.close();
    this.serveWaiters();
  }

  /** Closes an idle comm (the oldest of its address) to make room; false when there is none. */
  private closeOldestIdle(): boolean {
    for (const [address, idle] of this.idleComms) {
      const entry = idle.shift();
      if (!entry) continue;
      entry.watch.unsubscribe();
      this.idleCount--;
      this.count(address, -1);
      void entry.comm.close();
      return true;
    }
    return false;
  }

  private count(address: string, delta: number): void {
    const next = (this.perAddress.get(address) ?? 0) + delta;
    if (next > 0) this.perAddress.set(address, next);
    else this.perAddress.delete(address);
  }
}
