/**
 * Servers and small tools for the rpc specs: a `serve()` server that counts the
 * connections it accepts, a raw peer that records every message and how its comm ended,
 * gates that a test opens, and a bounded wait for a condition.
 */
import { filter, firstValueFrom, type Subscription, tap } from 'rxjs';
import { listen, serve, status$, type Comm, type CommStatus, type Handler, type ListenConfig, type ServeConfig } from 'rxcomm';
import type { TransportCase } from '../helpers/transports';

/** A promise a test settles by hand. */
export interface Gate<T = void> {
  promise: Promise<T>;
  open(value: T): void;
  fail(error: unknown): void;
}

export function gate<T = void>(): Gate<T> {
  let open!: (value: T) => void;
  let fail!: (error: unknown) => void;
  const promise = new Promise<T>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

/**
 * Waits until `condition()` holds, checking after each turn of the event loop; fails
 * with `what` if it has not held after `limit` ms (a safety net, not a timing claim).
 */
export async function until(condition: () => boolean, what: string, limit = 10_000): Promise<void> {
  const started = Date.now();
  while (!condition()) {
    if (Date.now() - started > limit) throw new Error(`still waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

/** Lets timers already queued (RxJS reports unhandled errors on one) run. */
export function nextTimerTurn(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

/** A `serve()` server on `transport`, with the comms it accepted. */
export interface Served {
  address: string;
  /** Every comm the listener accepted, in order. */
  accepted: Comm[];
  serving: Subscription;
  close(): Promise<void>;
}

export async function startServe(
  transport: TransportCase,
  handlers: Record<string, Handler>,
  config?: ServeConfig,
  listenConfig: ListenConfig = {},
): Promise<Served> {
  const listener = listen(transport.listenAddress, { ...transport.config(), ...listenConfig });
  const accepted: Comm[] = [];
  const serving = serve(
    listener.pipe(tap((comm) => accepted.push(comm))),
    handlers,
    config,
  );
  const { contactAddress } = await firstValueFrom(listener.bound$);
  return {
    address: contactAddress,
    accepted,
    serving,
    async close() {
      serving.unsubscribe();
      await Promise.all(accepted.map((comm) => comm.close()));
    },
  };
}

/** One comm a raw server accepted: what it read, and how it ended. */
export interface RawPeer {
  comm: Comm;
  messages: unknown[];
  /** Set when the comm's read$ ended: `error` is the peer's failure, if any. */
  ended: { error?: unknown } | undefined;
  whenEnded: Promise<{ error?: unknown }>;
}

/** A server without `serve()`: `onMessage` decides what to do with each message on each comm. */
export interface RawServer {
  address: string;
  peers: RawPeer[];
  close(): Promise<void>;
}

export async function startRaw(
  transport: TransportCase,
  onMessage: (peer: RawPeer, message: unknown, index: number) => void,
): Promise<RawServer> {
  const listener = listen(transport.listenAddress, transport.config());
  const peers: RawPeer[] = [];
  const subscription = listener.subscribe((comm) => {
    let ended!: (end: { error?: unknown }) => void;
    const peer: RawPeer = {
      comm,
      messages: [],
      ended: undefined,
      whenEnded: new Promise((resolve) => (ended = resolve)),
    };
    const end = (result: { error?: unknown }) => {
      peer.ended = result;
      ended(result);
    };
    peers.push(peer);
    comm.read$.subscribe({
      next: (message) => {
        peer.messages.push(message);
        onMessage(peer, message, peer.messages.length - 1);
      },
      error: (error) => end({ error }),
      complete: () => end({}),
    });
  });
  const { contactAddress } = await firstValueFrom(listener.bound$);
  return {
    address: contactAddress,
    peers,
    async close() {
      subscription.unsubscribe();
      await Promise.all(peers.map((peer) => peer.comm.close()));
    },
  };
}

/** Every status event of the given types, from now until `stop()`. */
export function recordStatus(...types: CommStatus['type'][]): { events: CommStatus[]; stop(): void } {
  const events: CommStatus[] = [];
  const subscription = status$.pipe(filter((event) => types.includes(event.type))).subscribe((event) => events.push(event));
  return { events, stop: () => subscription.unsubscribe() };
}

/** Writes one request on a raw comm and reads one message back. */
export async function ask(comm: Comm, message: unknown): Promise<unknown> {
  await comm.write(message);
  return comm.read();
}

/** The transports named, from the shared list. */
export function only(cases: TransportCase[], ...names: string[]): TransportCase[] {
  return cases.filter((transport) => names.includes(transport.name));
}
