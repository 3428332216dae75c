/**
 * Dask's `rpc`: request and reply over comms to one address. Each call borrows a comm
 * (one call per comm at a time, as Dask's `send_recv`), writes `{op, reply: true, ...args}`,
 * reads the one reply, and gives the comm back for the next call.
 */
import { Observable, type Subscription } from 'rxjs';
import type { Comm } from '../comm/comm';
import { AbortError, CommClosedError, ConfigError } from '../errors';
import type { ConnectConfig } from '../options';
import { isErrorReply, plainObject, remoteError } from './error-reply';
import { ConnectionPool, type CommLender } from './pool';

/** Keys the request itself uses: an argument of that name would be lost. */
const RESERVED = ['op', 'reply'];

function request(op: string, args: Record<string, unknown> | undefined, reply: boolean): Record<string, unknown> {
  if (typeof op !== 'string' || op === '') throw new ConfigError(`op must be a non-empty string, got ${JSON.stringify(op)}`);
  if (args !== undefined && !plainObject(args)) throw new ConfigError(`the arguments of '${op}' must be a plain object`);
  const clash = RESERVED.find((key) => args !== undefined && key in args);
  if (clash) throw new ConfigError(`'${clash}' cannot be an argument of '${op}': the request uses that key`);
  return { op, reply, ...args };
}

/**
 * Calls to one address: what `rpc()` and `pool.rpc()` return. Each call borrows a comm,
 * writes the request, reads the reply and gives the comm back for the next call.
 *
 * ## Example
 * ```ts
 * const scheduler = rpc('tcp://127.0.0.1:8786');
 * const identity = await firstValueFrom(scheduler.call<{ type: string }>('identity'));
 * await lastValueFrom(scheduler.send('set_metadata', { keys: ['seen'], value: true }), { defaultValue: undefined });
 * console.log(identity.type, scheduler.openComms);
 * await scheduler.close();
 * ```
 *
 * @group Requests, handlers and streams
 */
export class Rpc {
  private closed = false;

  /**
   * Use `rpc(address)` or `pool.rpc(address)`.
   * @internal
   */
  constructor(
    /** Where the calls go. */
    readonly address: string,
    private readonly lender: CommLender,
    private readonly closeLender?: () => Promise<void>,
  ) {}

  /** Comms to this address open now, in a call or idle. */
  get openComms(): number {
    return this.lender.openTo(this.address);
  }

  /**
   * One request and its reply. Cold: each subscription makes the call, emits the reply and
   * completes. An error reply errors with `RemoteError`; unsubscribing before the reply
   * aborts the comm (its reply can never be told apart from the next call's).
   *
   * ## Example
   * ```ts
   * const scheduler = rpc('tcp://127.0.0.1:8786');
   * const identity = await firstValueFrom(scheduler.call('identity'));
   * await firstValueFrom(scheduler.call('set_metadata', { keys: ['a'], value: 1 }));
   * await scheduler.close();
   * ```
   */
  call<T = unknown>(op: string, args?: Record<string, unknown>): Observable<T> {
    return this.exchange(op, args, true) as Observable<T>;
  }

  /**
   * A request without a reply (`reply: false`): completes once written, emitting nothing.
   * Like `call()`, it throws `ConfigError` at once for a bad op or arguments, as
   * `connect()` does for bad options.
   */
  send(op: string, args?: Record<string, unknown>): Observable<void> {
    return this.exchange(op, args, false) as Observable<void>;
  }

  /**
   * Stops taking calls. For `rpc()`, closes its comms (idle ones cleanly; calls in flight
   * error); for `pool.rpc()`, the pool keeps its comms.
   */
  async close(): Promise<void> {
    this.closed = true;
    await this.closeLender?.();
  }

  private exchange(op: string, args: Record<string, unknown> | undefined, reply: boolean): Observable<unknown> {
    const message = request(op, args, reply);
    return new Observable<unknown>((subscriber) => {
      if (this.closed) {
        subscriber.error(new CommClosedError(`rpc to ${this.address} is closed`));
        return;
      }
      let inCall: Comm | undefined;
      let borrowing: Subscription | undefined;
      /** A borrowed idle comm may have died unnoticed: its first failure earns one fresh try. */
      const attempt = (retryStale: boolean) => {
        borrowing = this.lender.borrow(this.address).subscribe({
          next: (comm) => {
            inCall = comm;
            const reused = retryStale && usedBefore.has(comm);
            usedBefore.add(comm);
            const answered = (answer: unknown) => {
              if (inCall !== comm) return; // cancelled meanwhile
              inCall = undefined;
              this.lender.giveBack(this.address, comm);
              if (!reply) {
                subscriber.complete();
              } else if (isErrorReply(answer)) {
                subscriber.error(remoteError(op, this.address, answer));
              } else {
                subscriber.next(answer);
                subscriber.complete();
              }
            };
            const failed = (error: unknown) => {
              if (inCall !== comm) return;
              inCall = undefined;
              comm.abort(error instanceof Error ? error : undefined);
              this.lender.forget(this.address, comm);
              if (reused && error instanceof CommClosedError) attempt(false);
              else subscriber.error(error);
            };
            comm.write(message).then(
              () => (reply ? comm.read().then(answered, failed) : answered(null)),
              (error: unknown) => {
                // Refused before anything was sent (too large, not encodable): the comm is fine.
                if (inCall !== comm || comm.closed) return failed(error);
                inCall = undefined;
                this.lender.giveBack(this.address, comm);
                subscriber.error(error);
              },
            );
          },
          error: (error: unknown) => subscriber.error(error),
        });
      };
      attempt(true);
      return () => {
        borrowing?.unsubscribe();
        const comm = inCall;
        if (!comm) return;
        inCall = undefined;
        comm.abort(new AbortError(`call '${op}' to ${this.address} cancelled`));
        this.lender.forget(this.address, comm);
      };
    });
  }
}

/** Comms that served a call already: only those can be stale when borrowed again. */
const usedBefore = new WeakSet<Comm>();

/**
 * Calls to one address, each on a comm of its own at a time; idle comms are reused, and
 * there is no limit on how many open (use a `ConnectionPool` for one).
 *
 * ## Example
 * ```ts
 * const scheduler = rpc('tcp://127.0.0.1:8786', { timeout: 5000 });
 * console.log(await firstValueFrom(scheduler.call('identity')));
 * await scheduler.close();
 * ```
 *
 * @group Requests, handlers and streams
 */
export function rpc(address: string, config: ConnectConfig = {}): Rpc {
  const pool = new ConnectionPool({ ...config, limit: Infinity });
  return new Rpc(address, pool, () => pool.close());
}
