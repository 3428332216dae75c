/**
 * Dask's `Server.handle_comm`: each comm a listener accepts carries requests
 * `{op, reply, ...args}`, handled one at a time in order; the handler's result is the reply.
 */
import { isObservable, lastValueFrom, type Observable, Subscription } from 'rxjs';
import type { Comm } from '../comm/comm';
import { reportStatus } from '../status';
import { errorReply, plainObject } from './error-reply';

/**
 * Handles one request: `args` is the message without `op` and `reply`. Returns the reply:
 * a value, a Promise, or an Observable whose last value is the reply (none: `null`).
 * Throwing (or rejecting, or erroring) sends Dask's error reply, and the comm goes on.
 *
 * ## Example
 * ```ts
 * const add: Handler = ({ x, y }) => (x as number) + (y as number);
 * const whoami: Handler = (_args, comm) => comm.peerAddress;
 * serve(listen('tcp://127.0.0.1:0'), { add, whoami });
 * ```
 *
 * @group Requests, handlers and streams
 */
export type Handler = (args: Record<string, unknown>, comm: Comm) => unknown;

/**
 * Takes over a comm whose first message named a stream op (Dask's `handle_stream`): from
 * then on both sides send batches (arrays of messages); see `batched()`.
 *
 * ## Example
 * ```ts
 * // Dask's clients open such a stream with `register-client`.
 * const clientStream: StreamHandler = (comm, first) => {
 *   console.log('client', first.client);
 *   const stream = batched(comm, { interval: 2 });
 *   stream.messages$.subscribe((message) => console.log(message));
 * };
 * serve(listen('tcp://127.0.0.1:0'), {}, { streams: { 'register-client': clientStream } });
 * ```
 *
 * @group Requests, handlers and streams
 */
export type StreamHandler = (comm: Comm, firstMessage: Record<string, unknown>) => unknown;

/**
 * Options of `serve()`: which ops open a stream rather than a request (see `StreamHandler`).
 *
 * ## Example
 * ```ts
 * const config: ServeConfig = {
 *   streams: { 'register-client': (comm) => batched(comm, { interval: 2 }).messages$.subscribe(console.log) },
 * };
 * serve(listen('tcp://127.0.0.1:0'), { ping: () => 'pong' }, config);
 * ```
 *
 * @group Requests, handlers and streams
 */
export interface ServeConfig {
  /** Stream handlers by op: `serve()` stops reading such a comm and hands it over. */
  streams?: Record<string, StreamHandler>;
}

/** The reply a handler's result stands for: `null` for nothing, as Python's None. */
async function replyOf(value: unknown): Promise<unknown> {
  const settled = isObservable(value) ? await lastValueFrom(value, { defaultValue: null }) : await value;
  return settled === undefined ? null : settled;
}

function own<T>(table: Record<string, T>, op: string): T | undefined {
  return Object.prototype.hasOwnProperty.call(table, op) ? table[op] : undefined;
}

/**
 * Serves requests on every comm `listener` emits. Per comm, requests run one at a time,
 * in order, as in Dask; different comms run concurrently. `{op: 'close'}` answers `'OK'`
 * (when a reply is asked) and closes the comm; `close: true` in a request closes the comm
 * after its reply. An unknown op is answered `null`, as Dask does, and reported on
 * `status$`. Unsubscribing stops accepting and closes the comms being served.
 *
 * ## Example
 * ```ts
 * const listener = listen('tcp://127.0.0.1:0');
 * const serving = serve(listener, {
 *   add: ({ x, y }) => (x as number) + (y as number),
 *   slow_echo: async ({ data }) => data,
 * });
 * // later
 * serving.unsubscribe();
 * ```
 *
 * @group Requests, handlers and streams
 */
export function serve(listener: Observable<Comm>, handlers: Record<string, Handler>, config: ServeConfig = {}): Subscription {
  const streams = config.streams ?? {};
  const served = new Set<Comm>();
  const accepting = listener.subscribe({
    next: (comm) => {
      // Stream comms stay listed after their handler returns (it may have just subscribed):
      // closed ones are dropped as new comms come.
      for (const old of served) if (old.closed) served.delete(old);
      served.add(comm);
      void handleComm(comm, handlers, streams).then((handedOver) => {
        if (!handedOver) served.delete(comm);
      });
    },
    // A listener that cannot bind says so on its own `bound$` and `status$`.
    error: () => undefined,
  });
  // Only unsubscribing ends the service: a source of comms that completes leaves the comms
  // it gave being served.
  return new Subscription(() => {
    accepting.unsubscribe();
    for (const comm of served) void comm.close();
    served.clear();
  });
}

/**
 * Reads and answers one comm's requests until it ends or a stream handler takes it. A
 * loop of `read()`s, as Dask's: what arrives after a stream's first message stays unread
 * on the comm for the stream handler, however late it subscribes.
 */
/** Resolves true when a stream handler took the comm over (it stays open after this). */
async function handleComm(comm: Comm, handlers: Record<string, Handler>, streams: Record<string, StreamHandler>): Promise<boolean> {
  for (;;) {
    let message: unknown;
    try {
      message = await comm.read();
    } catch {
      return false; // the comm ended (closed, aborted, or the peer went away)
    }
    try {
      if (!plainObject(message) || typeof message.op !== 'string') {
        // Dask raises here and the comm ends: answer why, then close.
        await comm.write(errorReply(new TypeError(`Bad message type: expected a map with an 'op', got ${describe(message)}`)));
        await comm.close();
        return false;
      }
      const { op, reply = true, close = false, ...args } = message;
      const stream = own(streams, op);
      if (stream) {
        try {
          await stream(comm, message);
        } catch (error) {
          const err = error instanceof Error ? error : new Error(String(error));
          reportStatus({ type: 'serve:handler-error', op, peerAddress: comm.peerAddress, error: err });
          comm.abort(err);
        }
        return true;
      }
      if (op === 'close') {
        if (reply !== false) await comm.write('OK');
        await comm.close();
        return false;
      }
      const handler = own(handlers, op);
      let result: unknown = null;
      if (!handler) {
        reportStatus({ type: 'serve:unknown-op', op, peerAddress: comm.peerAddress });
      } else {
        try {
          result = await replyOf(handler(args, comm));
        } catch (error) {
          const err = error instanceof Error ? error : new Error(String(error));
          reportStatus({ type: 'serve:handler-error', op, peerAddress: comm.peerAddress, error: err });
          result = errorReply(err);
        }
      }
      if (reply !== false) await writeReply(comm, op, result);
      if (close === true) {
        await comm.close();
        return false;
      }
    } catch {
      return false; // a write failed: the comm is gone, and its end is already on status$
    }
  }
}

/**
 * Writes a reply; one the comm refuses while staying usable (larger than maxMessageSize,
 * or not encodable) becomes an error reply, so the caller is never left waiting.
 */
async function writeReply(comm: Comm, op: string, result: unknown): Promise<void> {
  try {
    await comm.write(result);
  } catch (error) {
    if (comm.closed) throw error;
    const err = error instanceof Error ? error : new Error(String(error));
    reportStatus({ type: 'serve:handler-error', op, peerAddress: comm.peerAddress, error: err });
    await comm.write(errorReply(err));
  }
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'a map without op' : `a ${typeof value}`;
}
