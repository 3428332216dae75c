/**
 * The platform-neutral part of `rxcomm/testing`: comm and connection pairs that deliver
 * on a scheduler you choose. Both `testing/index.ts` (Node) and `testing/browser.ts`
 * export all of it; `createCommPair` shows a marble test.
 */
import { asapScheduler, type Observable, type SchedulerLike } from 'rxjs';
import { Comm } from '../comm/comm';
import { resolveCommSettings, type CommConfig } from '../options';
import type { Connection } from '../comm/connection';
import { handshake, LOCAL_HANDSHAKE, negotiate } from '../comm/handshake';
import { InprocConnection } from '../transports/inproc/connection';

export type { Connection, ConnectionSink } from '../comm/connection';

/**
 * Options of the test pairs: where and when deliveries run, the ends' addresses, and
 * the comms' options.
 *
 * ## Example
 * ```ts
 * const config: TestPairConfig = { scheduler: asapScheduler, delay: 0, addresses: ['test://client', 'test://server'] };
 * const [client, server] = createCommPair(config);
 * client.peerAddress; // 'test://server'
 * ```
 *
 * @group Testing
 */
export interface TestPairConfig extends CommConfig {
  /**
   * Where each delivery runs.
   * @default asapScheduler
   */
  scheduler?: SchedulerLike;
  /**
   * Time from a write to its delivery, in the scheduler's units (frames under `run`).
   * @default 0
   */
  delay?: number;
  /** Addresses of the two ends. @default ['test://a', 'test://b'] */
  addresses?: [string, string];
}

/**
 * Two raw connections wired to each other, delivering on `scheduler`: the building
 * block for fake backends in tests. Messages pass by reference.
 *
 * ## Example
 * ```ts
 * // A fake backend: each connect emits a fresh connection whose far end a test answers.
 * const [client, server] = createConnectionPair();
 * const backend: Pick<Backend, 'connect'> = { connect: () => of(client) };
 * acceptHandshake(server).subscribe((comm) => comm.read$.subscribe(comm)); // an echo peer
 * ```
 *
 * @group Testing
 */
export function createConnectionPair(config: TestPairConfig = {}): [Connection, Connection] {
  const { scheduler = asapScheduler, delay = 0, addresses = ['test://a', 'test://b'] } = config;
  const deliver = (work: () => void) => {
    scheduler.schedule(work, delay);
  };
  // One delivery per message, so that each takes `delay` on the scheduler's clock.
  return InprocConnection.pair(addresses[0], addresses[1], deliver, 'each');
}

/**
 * Two connected comms, already handshaken (no handshake messages are exchanged, so
 * the first message either side reads is the first the other wrote).
 *
 * ## Example
 * ```ts
 * it('doubles each number two frames later', () => {
 *   const testScheduler = new TestScheduler((actual, expected) => expect(actual).toEqual(expected));
 *   testScheduler.run(({ cold, expectObservable }) => {
 *     const [client, server] = createCommPair({ scheduler: testScheduler, delay: 1 });
 *     server.read$.pipe(map((n) => (n as number) * 2)).subscribe(server);
 *     cold('a-b--|', { a: 1, b: 2 }).subscribe(client);
 *     expectObservable(client.read$).toBe('--x-y|', { x: 2, y: 4 });
 *   });
 * });
 * ```
 *
 * @group Testing
 */
export function createCommPair(config: TestPairConfig = {}): [Comm, Comm] {
  const ends = createConnectionPair(config);
  const settings = resolveCommSettings({
    readHighWaterMark: config.readHighWaterMark,
    readHighWaterMarkBytes: config.readHighWaterMarkBytes,
    writeBufferLimit: config.writeBufferLimit,
    deadPeerTimeout: config.deadPeerTimeout,
    closeTimeout: config.closeTimeout,
  });
  const comms = ends.map((end) => new Comm(end, settings)) as [Comm, Comm];
  for (const [comm, other] of [comms, [comms[1], comms[0]]]) {
    comm.localInfo = { ...LOCAL_HANDSHAKE, address: comm.localAddress };
    comm.remoteInfo = { ...LOCAL_HANDSHAKE, address: other.localAddress };
    comm.handshakeOptions = negotiate(LOCAL_HANDSHAKE, LOCAL_HANDSHAKE);
  }
  return comms;
}

/**
 * Answers the handshake on `connection` as a listener would, and emits the comm. Use
 * it for the far end of a connection that a fake backend's `connect` emits.
 *
 * ## Example
 * ```ts
 * const [near, far] = createConnectionPair();
 * acceptHandshake(far, { compression: null }).subscribe((comm) => {
 *   comm.read$.subscribe((message) => console.log('the fake peer got', message));
 * });
 * // `near` is what the fake backend's connect emits; connect() then runs the handshake on it.
 * ```
 *
 * @group Testing
 */
export function acceptHandshake(connection: Connection, config: CommConfig = {}): Observable<Comm> {
  return handshake(new Comm(connection, resolveCommSettings(config)));
}
