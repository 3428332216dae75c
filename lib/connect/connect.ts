/**
 * `connect()`: Dask's connect policy (`distributed/comm/core.py`) built on RxJS, so it
 * can run in virtual time:
 *
 *   attempt = backend.connect → handshake, under a per-attempt limit on the scheduler
 *   retry(attempt) with full-jitter backoff; errors retrying cannot mend pass straight through
 *   the overall deadline bounds every attempt and every wait; `signal` can end it all
 *
 * The first attempt may take a fifth of the total; later ones get whatever is left. Each
 * attempt is one hand-written function of callbacks (no `timeout`, `switchMap`, `tap`, nor outer
 * `defer` and `timeout`), and the retry loop around them is written out too (no `defer`
 * nor `retry`): a connect is cheap, and its behaviour in virtual time is the same frame
 * by frame (marbles/connect-marble-spec.ts).
 */
import { concatMap, from, type MonoTypeOperatorFunction, Observable, type Subscription } from 'rxjs';
import { parseAddress } from '../addresses';
import { Comm } from '../comm/comm';
import type { Connection } from '../comm/connection';
import { scheduleDeadline } from '../comm/deadline';
import { runHandshake } from '../comm/handshake';
import { AbortError, CommClosedError, ConnectTimeoutError, FatalCommClosedError, ProtocolError } from '../errors';
import { checkEncryption, compressorReady, resolveConnectConfig, type ConnectConfig, type ConnectSettings } from '../options';
import { getBackend, type Backend } from '../registry';
import { callbackConnect } from '../registry/backend';
import { reportStatus } from '../status';

/** Dask's backoff base: the cap doubles from 10 ms with each failed attempt. */
const BACKOFF_BASE_MS = 10;

/**
 * One attempt ran out of its share of time. Retried like any comm failure, but never the
 * `cause` of a `ConnectTimeoutError`: that is the last failure a peer or network caused.
 */
class AttemptTimeout extends CommClosedError {}

/**
 * Errors worth another attempt: transient comm failures. Not fatal ones (certificates),
 * not protocol errors (a peer that is not Dask, or breaks its framing, does so again),
 * not bad addresses or config.
 */
function isRetryable(err: unknown): boolean {
  return err instanceof CommClosedError && !(err instanceof FatalCommClosedError) && !(err instanceof ProtocolError);
}

/**
 * Connects to `addr` and emits one handshaken `Comm`, then completes. Cold: each
 * subscription is one connect sequence. Unsubscribing before the emission, or aborting
 * `signal`, ends the attempt in flight and leaves no socket or timer behind. Bad options
 * throw a `ConfigError` at once; a bad address or unknown scheme errors the Observable.
 *
 * ## Example
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { timeout: 5000 }));
 *
 * // or, in a pipeline
 * connect('tcp://127.0.0.1:8786').pipe(
 *   switchMap((comm) => comm.read$),
 * ).subscribe(console.log);
 * ```
 *
 * @group Connect and listen
 */
export function connect(addr: string, config?: ConnectConfig): Observable<Comm> {
  const settings = resolveConnectConfig(config);
  const { timeout: total, scheduler, random } = settings;
  const connect$ = new Observable<Comm>((subscriber) => {
    const failed = (error: Error) => {
      reportStatus({ type: 'connect:failed', address: addr, error });
      subscriber.error(error);
    };
    let backend: Backend;
    let location: string;
    try {
      let scheme: string;
      [scheme, location] = parseAddress(addr);
      backend = getBackend(scheme);
      checkEncryption(backend, addr, settings.backend.security);
    } catch (error) {
      failed(error as Error);
      return undefined;
    }
    // Every attempt, and every wait between two, ends by the deadline: no overall timer
    // (an attempt gets at most the time left; a retry with none left is the timeout).
    const deadline = scheduler.now() + total;
    let attempts = 0;
    let lastFailure: unknown;
    const timedOut = () => new ConnectTimeoutError(addr, total, { cause: lastFailure });

    // The retry loop by hand (what `defer` + `retry({ delay })` did, frame for frame): an
    // attempt; on a retryable failure, a wait of full-jitter backoff on the scheduler, then
    // the next. Two rxjs layers less per connect. `attempting` and `waiting` are kept
    // apart: an attempt may fail (and schedule the wait) before its subscribe returns.
    let cancelAttempt: (() => void) | undefined;
    let waiting: Subscription | undefined;
    const tryOnce = () => {
      const timeLeft = deadline - scheduler.now();
      const limit = attempts === 0 ? Math.min(total / 5, timeLeft) : timeLeft;
      attempts++;
      cancelAttempt = attempt(backend, location, settings, limit, addr, attemptDone);
    };
    const retryOrFail = (error: unknown) => {
      let delay: number;
      try {
        if (!isRetryable(error)) return failed(error as Error);
        if (!(error instanceof AttemptTimeout)) lastFailure = error;
        const timeLeft = deadline - scheduler.now();
        if (timeLeft <= 0) return failed(timedOut());
        const failures = attempts; // each attempt fails at most once
        delay = random() * Math.min(timeLeft, BACKOFF_BASE_MS * 2 ** (failures - 1));
        reportStatus({ type: 'connect:retry', address: addr, attempt: failures, delay, error: error as Error });
      } catch (err) {
        return failed(err as Error); // as an error thrown in retry's delay would end it
      }
      waiting = scheduler.schedule(tryOnce, delay);
    };
    const attemptDone: AttemptCallbacks = {
      next: (comm) => {
        subscriber.next(comm);
        subscriber.complete();
      },
      error: retryOrFail,
    };
    tryOnce();
    return () => {
      cancelAttempt?.();
      waiting?.unsubscribe();
    };
  });
  // zstd's encoder is WebAssembly, loaded once before the first connect that names it.
  const ready = compressorReady(settings.comm);
  const started$ = ready === undefined ? connect$ : from(ready).pipe(concatMap(() => connect$));
  return started$.pipe(abortedBy(settings.signal));
}

/** Where an attempt reports, once: its handshaken comm, or why it failed. */
interface AttemptCallbacks {
  next(comm: Comm): void;
  error(error: unknown): void;
}

/**
 * One attempt: the backend's connection, then the handshake on a comm over it, within
 * `limit` ms (an `AttemptTimeout` after that). Reports to `done` once; then, or when the
 * returned cancel function is called first, ends what is in flight: the connection
 * attempt, or the handshake (which aborts its comm). Plain callbacks, as the Observable
 * it was would call them (`done` first, then the teardown), without that Observable and
 * its subscriber per connect.
 */
function attempt(backend: Backend, location: string, settings: ConnectSettings, limit: number, addr: string, done: AttemptCallbacks): () => void {
  let settled = false;
  let cancelConnecting: (() => void) | undefined;
  let cancelHandshake: (() => void) | undefined;
  const tearDown = () => {
    timeLimit.unsubscribe();
    cancelConnecting?.();
    cancelHandshake?.();
  };
  const fail = (error: unknown) => {
    if (settled) return;
    settled = true;
    done.error(error);
    tearDown();
  };
  const timeLimit = scheduleDeadline(settings.scheduler, () => fail(new AttemptTimeout(`connect attempt to ${addr} timed out after ${limit} ms`)), limit);
  const connected = (connection: Connection) => {
    if (settled) {
      connection.abort(); // too late: nobody will take it
      return;
    }
    let comm: Comm;
    try {
      comm = new Comm(connection, settings.comm);
    } catch (error) {
      // As switchMap would: a throw here is this attempt's error, not an unhandled one.
      connection.abort(error as Error);
      fail(error);
      return;
    }
    cancelHandshake = runHandshake(comm, {
      next: (comm) => {
        if (settled) return;
        settled = true;
        timeLimit.unsubscribe();
        done.next(comm);
        tearDown(); // the handshake is done: only the connection attempt's end is left
      },
      error: fail,
    });
  };
  // Built-in socket transports connect by callbacks; any other backend is subscribed to.
  const open = callbackConnect(backend);
  if (open !== undefined) {
    cancelConnecting = open(location, settings.backend, connected, fail);
  } else {
    const connecting = backend.connect(location, settings.backend).subscribe({ next: connected, error: fail });
    cancelConnecting = () => connecting.unsubscribe();
  }
  if (settled) cancelConnecting(); // it ended while connecting
  return () => {
    if (settled) return;
    settled = true;
    tearDown();
  };
}

/**
 * Ends the source with an `AbortError` when `signal` aborts, as if unsubscribed: the
 * source's teardown runs (the attempt in flight is aborted). Node's convention.
 */
function abortedBy<T>(signal: AbortSignal | undefined): MonoTypeOperatorFunction<T> {
  if (!signal) return (source) => source;
  return (source) =>
    new Observable<T>((subscriber) => {
      const onAbort = () => subscriber.error(new AbortError('connect() was aborted', { cause: signal.reason }));
      if (signal.aborted) {
        onAbort();
        return undefined;
      }
      signal.addEventListener('abort', onAbort, { once: true });
      const subscription = source.subscribe(subscriber);
      return () => {
        signal.removeEventListener('abort', onAbort);
        subscription.unsubscribe();
      };
    });
}
