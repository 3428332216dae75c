/**
 * What happens inside rxcomm that no caller is waiting on (a retried connect attempt, a
 * client whose handshake failed on a listener, a comm aborted by its peer) is reported
 * here as typed events. Nothing is swallowed: with nobody subscribed, failures are
 * printed as process warnings instead.
 *
 * ## Example
 * ```ts
 * status$.pipe(filter((e) => e.type === 'connect:retry'))
 *   .subscribe((e) => console.log(`retrying ${e.address} in ${e.delay} ms`, e.error.message));
 * ```
 */
import { Observable, Subject } from 'rxjs';

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
  | { type: 'comm:close-timeout'; localAddress: string; peerAddress: string; timeout: number };

const events = new Subject<CommStatus>();

/** Every status event of this process, hot: subscribe before the events you want. */
export const status$: Observable<CommStatus> = events.asObservable();

const failures = new Set<CommStatus['type']>(['listen:rejected', 'comm:write-failed', 'comm:close-timeout']);

/** @internal Publishes one event. */
export function reportStatus(event: CommStatus): void {
  if (events.observed) {
    events.next(event);
  } else if (failures.has(event.type)) {
    // Unobserved failures still reach a human, once each, without throwing.
    const error = 'error' in event ? `: ${event.error.message}` : '';
    process.emitWarning(`rxcomm ${event.type}${error}`, { code: 'RXCOMM_STATUS' });
  }
}
