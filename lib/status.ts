/**
 * What happens inside rxcomm that no caller is waiting on (a retried connect attempt, a
 * client whose handshake failed on a listener, a comm aborted by its peer) is reported
 * here as typed events. Nothing is swallowed: with nobody subscribed, failures are
 * printed as warnings, repeats collapsed into a count; with `NODE_DEBUG=rxcomm`, every
 * event is printed as it happens.
 */
import { Observable, Subject } from 'rxjs';

/**
 * One status event: a union discriminated by `type`, whose prefix names the part that
 * reports it (`connect:`, `listen:`, `comm:`, `serve:`).
 *
 * ## Example
 * ```ts
 * function describe(event: CommStatus): string {
 *   switch (event.type) {
 *     case 'connect:retry':
 *       return `attempt ${event.attempt} on ${event.address} failed; next in ${event.delay} ms`;
 *     case 'comm:aborted':
 *       return `${event.peerAddress} aborted: ${event.error.message}`;
 *     default:
 *       return event.type;
 *   }
 * }
 * status$.subscribe((event) => console.log(describe(event)));
 * ```
 *
 * @group Status events
 */
export type CommStatus =
  /** A connect attempt failed and another follows after `delay` ms. */
  | { type: 'connect:retry'; address: string; attempt: number; delay: number; error: Error }
  /** `connect()` gave up; the subscriber receives `error` too. */
  | { type: 'connect:failed'; address: string; error: Error }
  /** A listener bound its socket. */
  | { type: 'listen:bound'; listenAddress: string; contactAddress: string }
  /** An incoming connection was dropped before it became a Comm (bad handshake, TLS failure). */
  | { type: 'listen:rejected'; listenAddress: string; peerAddress: string; error: Error }
  /** A listener stopped accepting. */
  | { type: 'listen:stopped'; listenAddress: string }
  /** A comm ended in failure: reset by the peer, a protocol error, or aborted. */
  | { type: 'comm:aborted'; localAddress: string; peerAddress: string; error: Error }
  /** A write made through the Observer interface (`comm.next`) failed; nobody awaited it. */
  | { type: 'comm:write-failed'; localAddress: string; peerAddress: string; error: Error }
  /** `close()` did not finish flushing in time and the comm was aborted. */
  | { type: 'comm:close-timeout'; localAddress: string; peerAddress: string; timeout: number }
  /** `serve()` got a request for an op it has no handler for; it answered `null`, as Dask. */
  | { type: 'serve:unknown-op'; op: string; peerAddress: string }
  /** A `serve()` handler failed; the caller got Dask's error reply, and the comm goes on. */
  | { type: 'serve:handler-error'; op: string; peerAddress: string; error: Error };

/** Where status lines go when nobody subscribes. The Node entry point sets Node's own. */
export interface StatusOutput {
  /** Every event, as it happens (Node: `util.debuglog('rxcomm')` when `NODE_DEBUG=rxcomm`). */
  debug?: (line: string) => void;
  /** Unobserved failures (Node: `process.emitWarning`). */
  warn: (line: string) => void;
}

/** A failure of one type seen again within this many ms is counted, not printed. */
export const REPEAT_WINDOW_MS = 10_000;

const events = new Subject<CommStatus>();

/**
 * Every status event of this process, hot: subscribe before the events you want.
 * Subscribing also stops the warnings printed for unobserved failures.
 *
 * ## Example
 * ```ts
 * status$.pipe(filter((e) => e.type === 'connect:retry'))
 *   .subscribe((e) => console.log(`retrying ${e.address} in ${e.delay} ms`, e.error.message));
 * ```
 *
 * @group Status events
 */
export const status$: Observable<CommStatus> = events.asObservable();

const failures = new Set<CommStatus['type']>([
  'listen:rejected',
  'comm:write-failed',
  'comm:close-timeout',
  'serve:unknown-op',
  'serve:handler-error',
]);

let output: StatusOutput = { warn: (line) => console.warn(line) };

/** @internal Called once by the platform entry point. */
export function setStatusOutput(next: StatusOutput): void {
  output = next;
}

/** `listen:rejected tcp://127.0.0.1:8786 peer=tcp://127.0.0.1:5123: handshake failed`. */
export function describeStatus(event: CommStatus): string {
  const fields = Object.entries(event)
    .filter(([key]) => key !== 'type' && key !== 'error')
    .map(([key, value]) => `${key}=${typeof value === 'number' ? Math.round(value * 10) / 10 : String(value)}`);
  const error = 'error' in event ? `: ${event.error.message}` : '';
  return `${event.type} ${fields.join(' ')}${error}`;
}

/** Repeats per event type within the current window; absent once a window passes quietly. */
const repeats = new Map<CommStatus['type'], number>();

/**
 * The first failure of a type is printed at once; the repeats that follow within
 * `REPEAT_WINDOW_MS` are printed as one count when the window closes. A hostile client
 * opening thousands of bad connections then costs a line per window, not per connection.
 */
function warnCollapsed(event: CommStatus): void {
  const seen = repeats.get(event.type);
  if (seen !== undefined) {
    repeats.set(event.type, seen + 1);
    return;
  }
  output.warn(`rxcomm ${describeStatus(event)}`);
  repeats.set(event.type, 0);
  const timer = setTimeout(() => {
    const count = repeats.get(event.type) ?? 0;
    repeats.delete(event.type);
    if (count > 0) output.warn(`rxcomm ${event.type}: ${count} more in the last ${REPEAT_WINDOW_MS / 1000} s`);
  }, REPEAT_WINDOW_MS);
  // Never keep a process alive just to print a count.
  (timer as { unref?: () => void }).unref?.();
}

/** @internal Publishes one event. */
export function reportStatus(event: CommStatus): void {
  output.debug?.(describeStatus(event));
  if (events.observed) events.next(event);
  else if (failures.has(event.type)) warnCollapsed(event);
}
