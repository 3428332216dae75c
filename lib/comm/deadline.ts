/**
 * A one-off time limit on a scheduler, as `scheduler.schedule(work, ms)` sets one: for
 * the time limit of every connect attempt and of every accepted handshake.
 *
 * On `asyncScheduler` (the default) every limit shares one timer. A limit is nearly
 * always cancelled (the attempt or handshake finished first), and a timer of its own
 * would cost Node a timer list built and torn down per connect and per accept (one list
 * per duration, dropped when it empties): 10–20 µs each time, a few per cent of a
 * connect. Here a limit is a node in a list sorted by due time, and cancelling one only
 * unlinks it; the one timer stays armed for the earliest, no longer keeping the process
 * alive once nothing is due, and is only rearmed when it fires or an earlier limit comes.
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
 * (the default) that is a node of the shared list below, with no `AsyncAction` (and its
 * `setInterval`) and no timer of its own. Under virtual time, and on any other scheduler,
 * the scheduler is asked as before.
 */
export function scheduleDeadline(scheduler: SchedulerLike, work: () => void, ms: number): Deadline {
  if (scheduler !== asyncScheduler) return scheduler.schedule(work, ms);
  if (timeoutProvider.delegate !== undefined) {
    const timer = timeoutProvider.setTimeout(work, ms);
    return { unsubscribe: () => timeoutProvider.clearTimeout(timer) };
  }
  return sharedTimer.add(work, ms);
}

/** What Node's timers (and a browser's numbers) are to us: maybe ref-counted. */
type TimerHandle = ReturnType<typeof setTimeout> & { ref?(): unknown; unref?(): unknown };

/**
 * Due times are `Date.now()` milliseconds, the clock rxjs's `asyncScheduler` reads.
 * A timer fires at the millisecond, from a loop time that can lag the clock: a limit due
 * within this much of now counts as due, so that no early wake-up rearms for a remainder.
 */
const SLACK_MS = 1;

class PendingDeadline implements Deadline {
  prev: PendingDeadline | undefined = undefined;
  next: PendingDeadline | undefined = undefined;
  /** In the list, neither fired nor cancelled. */
  linked = true;

  constructor(
    readonly due: number,
    readonly work: () => void,
    private readonly owner: SharedTimer,
  ) {}

  unsubscribe(): void {
    if (this.linked) this.owner.remove(this);
  }
}

class SharedTimer {
  private head: PendingDeadline | undefined;
  private tail: PendingDeadline | undefined;
  private timer: TimerHandle | undefined;
  /** When the timer fires (its due time), while there is one. */
  private timerDue = 0;
  /** Whether the timer keeps the process alive: only while a limit is pending. */
  private referenced = false;

  add(work: () => void, ms: number): Deadline {
    const due = Date.now() + ms;
    const deadline = new PendingDeadline(due, work, this);
    // From the tail: limits of one duration arrive in the order they fall due.
    let after = this.tail;
    while (after !== undefined && after.due > due) after = after.prev;
    deadline.prev = after;
    deadline.next = after === undefined ? this.head : after.next;
    if (deadline.next === undefined) this.tail = deadline;
    else deadline.next.prev = deadline;
    if (after === undefined) this.head = deadline;
    else after.next = deadline;
    if (this.timer === undefined || this.timerDue > due + SLACK_MS) this.arm(due);
    else if (!this.referenced) {
      this.referenced = true;
      this.timer.ref?.();
    }
    return deadline;
  }

  remove(deadline: PendingDeadline): void {
    deadline.linked = false;
    if (deadline.prev === undefined) this.head = deadline.next;
    else deadline.prev.next = deadline.next;
    if (deadline.next === undefined) this.tail = deadline.prev;
    else deadline.next.prev = deadline.prev;
    deadline.prev = deadline.next = undefined;
    // Nothing pending: the timer stays (no churn for the next limit) but holds nothing up.
    if (this.head === undefined && this.referenced) {
      this.referenced = false;
      this.timer?.unref?.();
    }
  }

  private arm(due: number): void {
    if (this.timer !== undefined) timeoutProvider.clearTimeout(this.timer);
    this.timerDue = due;
    this.referenced = true;
    this.timer = timeoutProvider.setTimeout(this.fire, Math.max(0, Math.ceil(due - Date.now()))) as TimerHandle;
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    this.referenced = false;
    const now = Date.now() + SLACK_MS;
    try {
      // One at a time, unlinked before it runs: work may add or cancel limits, or throw.
      while (this.head !== undefined && this.head.due <= now) {
        const deadline = this.head;
        this.remove(deadline);
        deadline.work();
      }
    } finally {
      // Work may have armed the timer for a limit of its own, later than one still pending.
      const head = this.head;
      if (head !== undefined && (this.timer === undefined || this.timerDue > head.due + SLACK_MS)) this.arm(head.due);
    }
  };
}

const sharedTimer = new SharedTimer();
