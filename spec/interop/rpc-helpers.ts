/**
 * Shared by the rpc interop specs (`rpc-*-spec.ts`): the transports they run over, a
 * polling wait (a deadline, never a timing assertion), unique names, and a registry of
 * what a test opened so that afterEach closes it all.
 */
import { firstValueFrom, type Subscription } from 'rxjs';
import type { Rpc } from 'rxcomm';
import { livePeerCount, stopAllPeers } from './dask-peer';
import { type InteropTransport, interopTransports } from './interop-transports';

/** tcp and tls: the rpc layer sits on connect()/listen(), which the other interop specs prove on ws/wss too. */
export const rpcTransports: InteropTransport[] = interopTransports.filter((t) => t.name === 'tcp' || t.name === 'tls');

/** Connect settings for an rxcomm client of a Python server on `transport`. */
export function rpcConnectConfig(transport: InteropTransport) {
  return { timeout: 10_000, ...transport.rxConnect() };
}

/**
 * Polls `probe` (every `intervalMs`) until it returns something other than undefined,
 * and resolves with that; rejects after `timeoutMs` with `what` and the last probe error.
 * For things that happen "eventually" on the other side (an event relayed, a comm
 * noticed closed): a deadline for a hung test, not an assertion about speed.
 */
export async function eventually<T>(
  probe: () => T | undefined | Promise<T | undefined>,
  what: string,
  timeoutMs = 20_000,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) {
      const why = lastError instanceof Error ? `; last error: ${lastError.name}: ${lastError.message}` : '';
      throw new Error(`${what}: not within ${timeoutMs} ms${why}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

let counter = 0;

/** A name no other test (or earlier run against the same scheduler) uses. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${counter}`;
}

/** The one value of a cold call. */
export function callOnce<T = unknown>(rpc: Rpc, op: string, args?: Record<string, unknown>): Promise<T> {
  return firstValueFrom(rpc.call<T>(op, args));
}

/** Things to close or unsubscribe after each test, in reverse order of opening. */
export class Opened {
  private readonly items: Array<{ close(): Promise<void> | void }> = [];

  /** Registers something with `close()` (an Rpc, a ConnectionPool, a Comm, a BatchedStream). */
  add<T extends { close(): Promise<void> | void }>(item: T): T {
    this.items.push(item);
    return item;
  }

  /** Registers a subscription (serve(), schedulerEvents(), messages$). */
  subscription(subscription: Subscription): Subscription {
    this.items.push({ close: () => subscription.unsubscribe() });
    return subscription;
  }

  async closeAll(): Promise<void> {
    for (const item of this.items.splice(0).reverse()) await item.close();
  }
}

/** For a whole spec file: every Python peer is stopped at the end, and none is left running. */
export function stopPeersAfterAll(): void {
  afterAll(async () => {
    await stopAllPeers();
    expect(livePeerCount()).toBe(0);
  });
}

/** For a describe: what each test opens is closed after it, then its Python peers stopped. */
export function openedPerTest(): Opened {
  const opened = new Opened();
  afterEach(async () => {
    await opened.closeAll();
    await stopAllPeers();
  });
  return opened;
}
