/**
 * `connect()`: Dask's connect policy (`distributed/comm/core.py`) built from RxJS
 * operators, so it can run in virtual time:
 *
 *   attempt = backend.connect → handshake, under a per-attempt `timeout`
 *   retry(attempt) with full-jitter backoff; fatal errors pass straight through
 *   timeout(overall deadline) outside everything
 *
 * The first attempt may take a fifth of the total; later ones get whatever is left.
 */
import { asyncScheduler, defer, Observable, retry, switchMap, throwError, timeout, timer } from 'rxjs';
import { Comm } from '../comm/comm';
import { handshake } from '../comm/handshake';
import { CommClosedError, ConfigError, ConnectTimeoutError, FatalCommClosedError } from '../errors';
import { parseAddress } from '../addresses/parse';
import { getBackend } from '../registry';
import { reportStatus } from '../status';
import { resolveTransportConfig } from './backend-options';
import { checkEncryption } from './encryption';
import { CONNECT_DEFAULTS, type ConnectConfig } from './config';

/** Dask's backoff base: the cap doubles from 10 ms with each failed attempt. */
const BACKOFF_BASE_MS = 10;

/** Errors worth another attempt: transient comm failures, not fatal or config ones. */
function isRetryable(err: unknown): boolean {
  return err instanceof CommClosedError && !(err instanceof FatalCommClosedError);
}

/**
 * Connects to `addr` and emits one handshaken `Comm`, then completes. Cold: each
 * subscription is one connect sequence. Unsubscribing before the emission aborts the
 * attempt in flight and leaves no socket or timer behind.
 *
 * ## Example
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { timeout: 5000 }));
 *
 * // or, in a pipeline
 * connect('inproc://10.0.0.1/123/1').pipe(
 *   switchMap((comm) => comm.read$),
 * ).subscribe(console.log);
 * ```
 */
export function connect(addr: string, config: ConnectConfig = {}): Observable<Comm> {
  return defer(() => {
    const [scheme, location] = parseAddress(addr);
    const backend = getBackend(scheme);
    checkEncryption(backend, addr, config);
    const { timeout: total = CONNECT_DEFAULTS.timeout, scheduler = asyncScheduler, random = Math.random } = config;
    if (typeof total !== 'number' || !(total > 0)) {
      throw new ConfigError(`timeout must be a positive number of milliseconds, got ${String(total)}`);
    }
    const options = resolveTransportConfig(config);
    const deadline = scheduler.now() + total;
    let attempts = 0;
    let lastError: unknown;

    const attempt$ = defer(() => {
      const timeLeft = deadline - scheduler.now();
      const limit = attempts === 0 ? Math.min(total / 5, timeLeft) : timeLeft;
      attempts++;
      return backend.connect(location, options.backend).pipe(
        switchMap((connection) => handshake(new Comm(connection, options.comm))),
        timeout({
          first: limit,
          scheduler,
          with: () => throwError(() => new CommClosedError(`connect attempt to ${addr} timed out after ${limit} ms`)),
        }),
      );
    });

    return attempt$.pipe(
      retry({
        delay: (error, failures) => {
          if (!isRetryable(error)) return throwError(() => error);
          lastError = error;
          const timeLeft = deadline - scheduler.now();
          if (timeLeft <= 0) return throwError(() => new ConnectTimeoutError(addr, total, { cause: error }));
          const delay = random() * Math.min(timeLeft, BACKOFF_BASE_MS * 2 ** (failures - 1));
          reportStatus({ type: 'connect:retry', address: addr, attempt: failures, delay, error });
          return timer(delay, scheduler);
        },
      }),
      timeout({
        first: total,
        scheduler,
        with: () => throwError(() => new ConnectTimeoutError(addr, total, { cause: lastError })),
      }),
    );
  }).pipe(reportFailure(addr));
}

/** Mirrors a connect failure on `status$` for those who log there. */
function reportFailure(address: string) {
  return (source: Observable<Comm>) =>
    new Observable<Comm>((subscriber) =>
      source.subscribe({
        next: (comm) => subscriber.next(comm),
        complete: () => subscriber.complete(),
        error: (error: Error) => {
          reportStatus({ type: 'connect:failed', address, error });
          subscriber.error(error);
        },
      }),
    );
}
