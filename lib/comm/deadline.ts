/**
 * A one-off time limit on a scheduler, as `scheduler.schedule(work, ms)` sets one: for
 * the time limit of every connect attempt and of every accepted handshake.
 */
import { asyncScheduler, type SchedulerLike } from 'rxjs';
// rxjs's own timer indirection: a plain setTimeout, except under `TestScheduler.run()`,
// which points it at virtual time, as it does every `asyncScheduler` action.
import { timeoutProvider } from 'rxjs/internal/scheduler/timeoutProvider';

/** Cancels a deadline that has not fired; a no-op after it fired or was cancelled. */
export interface Deadline {
  unsubscribe(): void;
}

/**
 * Runs `work` once after `ms` on `scheduler`, unless cancelled first. On `asyncScheduler`
 * (the default) that is one timer, without the `AsyncAction` (and its `setInterval`) that
 * `asyncScheduler.schedule` wraps around it: about 5% of a listener's CPU per accepted
 * connection. Any other scheduler is asked as before.
 */
export function scheduleDeadline(scheduler: SchedulerLike, work: () => void, ms: number): Deadline {
  if (scheduler !== asyncScheduler) return scheduler.schedule(work, ms);
  const timer = timeoutProvider.setTimeout(work, ms);
  return { unsubscribe: () => timeoutProvider.clearTimeout(timer) };
}
