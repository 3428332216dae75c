/**
 * Dead-peer detection: a peer that vanishes without FIN or reset (a cut cable, a frozen
 * machine) leaves an idle TCP connection open for hours and a busy one for about 15
 * minutes. Where the transport can make a live peer send something (rxcomm heartbeats
 * between two rxcomm peers, WebSocket pings to anyone), the comm pings a quiet peer and
 * fails once nothing has arrived for `deadPeerTimeout`.
 *
 * One timer per scheduler serves every watched comm: a watch is a few numbers that the
 * tick compares with the transport's counters, so a comm costs no timer of its own and
 * no clock reading per received chunk.
 */
import type { SchedulerLike, Subscription } from 'rxjs';
import type { PeerProbe } from './connection';

export interface PeerWatchPolicy {
  /** Fail once nothing arrived for this long, in ms; 0: never judge (only answer the peer). */
  ownTimeout: number;
  /** The peer's deadPeerTimeout: it wants to hear from us within it; 0: it does not care. */
  peerTimeout: number;
  /**
   * Why this side is not reading, if it is not. `'unread'`: its user reads nothing, so
   * silence proves nothing. `'held'`: its writes to the peer are stuck (an echo waits for
   * them), so only their progress shows the peer alive.
   */
  readingPaused(): 'unread' | 'held' | undefined;
  /** The peer is gone: nothing for `silentFor` ms. Called once. */
  dead(silentFor: number): void;
}

export interface PeerWatch {
  stop(): void;
}

/**
 * A ping goes out after a third of the shorter timeout without sending or receiving:
 * three chances for a live peer's answer (or its own heartbeat) before the deadline.
 */
const PINGS_PER_TIMEOUT = 3;
/** The tick never waits longer than this, nor shorter than a tenth of it. */
const MAX_TICK = 1000;
const MIN_TICK = 10;

/** One watched comm: its policy and what the tick saw last. Its own `PeerWatch`. */
class Watch implements PeerWatch {
  received: number;
  receivedAt: number;
  sent: number;
  sentAt: number;
  pingedAt = -Infinity;
  /** Where it sits in its ticker's list; -1 once stopped. */
  index = -1;

  constructor(
    readonly probe: PeerProbe,
    readonly policy: PeerWatchPolicy,
    /** Ping after this long without traffic either way; Infinity: never. */
    readonly pingEvery: number,
    now: number,
    private readonly ticker: Ticker,
  ) {
    this.received = probe.received;
    this.sent = probe.sent;
    this.receivedAt = this.sentAt = now;
  }

  stop(): void {
    this.ticker.delete(this);
  }
}

/**
 * The watches that share one scheduler's tick: a plain list, each watch knowing its place
 * in it, so that adding and removing one (at every handshake and every close) is a push
 * and a swap, with no hashing.
 */
class Ticker {
  private readonly watches: Watch[] = [];
  private timer: Subscription | undefined;
  private period = MAX_TICK;
  private chain: object | undefined;

  constructor(
    private readonly scheduler: SchedulerLike,
    private readonly onEmpty: () => void,
  ) {}

  add(watch: Watch): void {
    watch.index = this.watches.push(watch) - 1;
    const wanted = tickFor(watch);
    if (wanted < this.period || !this.timer) {
      this.period = Math.min(this.period, wanted);
      this.restart();
    }
  }

  delete(watch: Watch): void {
    const { watches } = this;
    const at = watch.index;
    if (at < 0) return; // stopped already
    watch.index = -1;
    const last = watches.pop()!;
    if (last !== watch) {
      watches[at] = last;
      last.index = at;
    }
    if (watches.length === 0) {
      this.timer?.unsubscribe();
      this.timer = undefined;
      this.chain = undefined;
      this.onEmpty();
    }
  }

  private restart(): void {
    this.timer?.unsubscribe();
    const period = this.period;
    const ticker = this;
    // A rescheduled action may be a new object (virtual time), so a token tells whether
    // this chain is still the ticker's one.
    const chain = {};
    this.chain = chain;
    this.timer = this.scheduler.schedule(function () {
      ticker.tick();
      if (ticker.chain === chain) unref(this.schedule(undefined, period));
    }, period);
    unref(this.timer);
  }

  private tick(): void {
    const now = this.scheduler.now();
    const { watches } = this;
    // Backwards: a watch found dead stops itself, moving the last one (already checked) into its place.
    for (let i = watches.length - 1; i >= 0; i--) {
      if (i < watches.length) check(watches[i], now);
    }
  }
}

/**
 * The tick must not keep a process alive by itself (the watched sockets do): on Node,
 * unref the interval behind an `asyncScheduler` action. Other schedulers have none.
 */
function unref(action: Subscription): void {
  (action as unknown as { id?: { unref?(): void } }).id?.unref?.();
}

function tickFor(watch: Watch): number {
  const shortest = Math.min(watch.pingEvery, watch.policy.ownTimeout > 0 ? watch.policy.ownTimeout : Infinity);
  return Math.max(MIN_TICK, Math.min(MAX_TICK, shortest / 10));
}

function check(watch: Watch, now: number): void {
  const { probe, policy } = watch;
  const paused = policy.readingPaused();
  const sentMore = probe.sent !== watch.sent;
  // While held, this side hears nothing by its own choice; the peer taking our bytes is
  // then the sign of life (a stuck write to a vanished peer never drains).
  if (probe.received !== watch.received || paused === 'unread' || (paused === 'held' && sentMore)) {
    watch.received = probe.received;
    watch.receivedAt = now;
  }
  if (sentMore) {
    watch.sent = probe.sent;
    watch.sentAt = now;
  }
  const silentFor = now - watch.receivedAt;
  if (policy.ownTimeout > 0 && silentFor >= policy.ownTimeout) {
    policy.dead(silentFor); // its comm stops the watch
    return;
  }
  // Nothing sent (the peer may be waiting to hear from us) or nothing received (a ping
  // makes a live peer answer): at most one ping per interval either way.
  const { pingEvery } = watch;
  if ((now - watch.sentAt >= pingEvery || silentFor >= pingEvery) && now - watch.pingedAt >= pingEvery) {
    watch.pingedAt = now;
    probe.ping();
  }
}

const tickers = new Map<SchedulerLike, Ticker>();

/**
 * Watches one comm's peer on `scheduler` until `stop()`. Nothing is watched when neither
 * side asked for it (both timeouts 0).
 */
export function watchPeer(probe: PeerProbe, policy: PeerWatchPolicy, scheduler: SchedulerLike): PeerWatch {
  // The shorter of the two timeouts that are set (> 0), without an array per comm.
  const { ownTimeout, peerTimeout } = policy;
  if (!(ownTimeout > 0) && !(peerTimeout > 0)) return { stop: () => undefined };
  const shortest = ownTimeout > 0 && peerTimeout > 0 ? Math.min(ownTimeout, peerTimeout) : ownTimeout > 0 ? ownTimeout : peerTimeout;
  let ticker = tickers.get(scheduler);
  if (!ticker) {
    ticker = new Ticker(scheduler, () => tickers.delete(scheduler));
    tickers.set(scheduler, ticker);
  }
  const watch = new Watch(probe, policy, shortest / PINGS_PER_TIMEOUT, scheduler.now(), ticker);
  ticker.add(watch);
  return watch;
}
