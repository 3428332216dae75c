/**
 * A Dask client's event subscription, without a Dask client: join a scheduler as a client
 * stream (`register-client`), subscribe to a topic, send heartbeats, and emit what anyone
 * logs on that topic (`log_event`). The messages are those a Python `Client` exchanges,
 * all plain msgpack (no pickle).
 */
import { asyncScheduler, interval, Observable, type SchedulerLike, switchMap } from 'rxjs';
import type { Comm } from '../comm/comm';
import { connect } from '../connect/connect';
import { CommClosedError } from '../errors';
import type { ConnectConfig } from '../options';
import { plainObject } from './error-reply';
import { batched } from './batched';

/**
 * One event logged on a topic: when (seconds since the epoch, the scheduler's clock) and what.
 *
 * ## Example
 * ```ts
 * schedulerEvents('tcp://127.0.0.1:8786', 'deploy').subscribe(({ topic, time, msg }: SchedulerEvent) => {
 *   console.log(`${new Date(time * 1000).toISOString()} ${topic}:`, msg);
 * });
 * ```
 *
 * @group Requests, handlers and streams
 */
export interface SchedulerEvent {
  /** The topic it was logged on. */
  topic: string;
  /** When, in seconds since the epoch, by the scheduler's clock (Python's `time()`). */
  time: number;
  /** What was logged (Dask's `log_event(topic, msg)`), as decoded. */
  msg: unknown;
}

/**
 * Options of `schedulerEvents()`: the client stream's heartbeat, id and batch interval,
 * and the `connect()` options of its comm.
 *
 * ## Example
 * ```ts
 * const config: SchedulerEventsConfig = { clientId: 'dashboard-1', heartbeatInterval: 2_000, timeout: 10_000 };
 * schedulerEvents('tcp://127.0.0.1:8786', 'deploy', config).subscribe(console.log);
 * ```
 *
 * @group Requests, handlers and streams
 */
export interface SchedulerEventsConfig extends ConnectConfig {
  /**
   * Milliseconds between `heartbeat-client` messages; the scheduler drops a client it does
   * not hear from (Dask's clients beat every 5 s).
   * @default 5000
   */
  heartbeatInterval?: number;
  /** The client id the scheduler knows this stream by. @default `rxcomm-<random>` */
  clientId?: string;
  /** Milliseconds between batches on the stream. @default 2, as Dask's client */
  batchInterval?: number;
}

/**
 * Events logged on `topic` at the scheduler at `address`, from the moment of subscribing.
 * Unsubscribing says `close-client` and closes the comm; the scheduler closing it
 * completes the Observable.
 *
 * ## Example
 * ```ts
 * const events = schedulerEvents('tcp://127.0.0.1:8786', 'my-topic').subscribe((event) => {
 *   console.log(new Date(event.time * 1000), event.msg);
 * });
 * // later
 * events.unsubscribe();
 * ```
 *
 * @group Requests, handlers and streams
 */
export function schedulerEvents(address: string, topic: string, config: SchedulerEventsConfig = {}): Observable<SchedulerEvent> {
  const { heartbeatInterval = 5000, clientId, batchInterval = 2, ...connectConfig } = config;
  const scheduler: SchedulerLike = connectConfig.scheduler ?? asyncScheduler;
  const client = clientId ?? `rxcomm-${Math.random().toString(16).slice(2, 14)}`;
  return connect(address, connectConfig).pipe(switchMap((comm) => clientStream(comm, client, topic, heartbeatInterval, batchInterval, scheduler)));
}

function clientStream(
  comm: Comm,
  client: string,
  topic: string,
  heartbeatInterval: number,
  batchInterval: number,
  scheduler: SchedulerLike,
): Observable<SchedulerEvent> {
  return new Observable<SchedulerEvent>((subscriber) => {
    // Dask 2022.12.1 answers empty versions with a 'Mismatched versions' warning in its
    // stream-start message: harmless (only its `error` refuses a client), and ignored here.
    comm.write({ op: 'register-client', client, versions: { host: {}, packages: {} }, reply: false }).catch(() => undefined);
    const stream = batched(comm, { interval: batchInterval, scheduler });
    stream.send({ op: 'subscribe-topic', topic });
    stream.send({ op: 'heartbeat-client' });
    const heartbeats = interval(heartbeatInterval, scheduler).subscribe(() => stream.next({ op: 'heartbeat-client' }));
    const reading = stream.messages$.subscribe({
      next: (message) => {
        if (!plainObject(message)) return;
        if (message.op === 'stream-start' && typeof message.error === 'string' && message.error !== '') {
          subscriber.error(new CommClosedError(`the scheduler refused the client stream: ${message.error}`));
        } else if (message.op === 'event' && message.topic === topic && Array.isArray(message.event)) {
          const [time, msg] = message.event as [number, unknown];
          subscriber.next({ topic, time, msg });
        }
        // Anything else (newer schedulers' adjust-heartbeat-interval, say) is not ours to act on.
      },
      error: (error) => subscriber.error(error),
      complete: () => subscriber.complete(),
    });
    return () => {
      heartbeats.unsubscribe();
      reading.unsubscribe();
      if (!comm.closed) {
        stream.next({ op: 'close-client' });
        void stream.close();
      }
    };
  });
}
