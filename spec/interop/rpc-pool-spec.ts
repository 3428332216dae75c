/**
 * `new ConnectionPool({limit: 10}).rpc(address)` against a real Dask server
 * (`dask_peer.py rpc-server`: a `distributed.core.Server` that counts the comms it
 * serves), over tcp and tls: 1,000 concurrent calls all complete, never more than 10
 * comms are open at once, and the comms are reused.
 *
 * Measured on both sides: the pool's own counters, sampled on every call (when it is
 * subscribed and when its reply arrives), and the server's view (`stats`: the comms it
 * ever accepted, the most it served at once, the most calls in progress at once).
 */
import { defer, firstValueFrom, tap } from 'rxjs';
import { ConnectionPool, rpc } from 'rxcomm';
import { describeInterop, startServer } from './dask-peer';
import type { InteropTransport } from './interop-transports';
import { callOnce, eventually, openedPerTest, rpcConnectConfig, rpcTransports, stopPeersAfterAll } from './rpc-helpers';

const LIMIT = 10;
const CALLS = 1000;

/** What `dask_peer.py rpc-server`'s `stats` op reports. */
interface ServerStats {
  /** Comms accepted (since start or reset_stats). */
  connections: number;
  /** Comms being served now. */
  open: number;
  /** The most comms served at once. */
  max_open: number;
  /** Distinct peer addresses seen. */
  peers: number;
  /** sleep_echo calls. */
  calls: number;
  /** The most sleep_echo calls in progress at once. */
  max_active: number;
  /** The most comms open (Dask's Server._comms) while a sleep_echo call ran. */
  max_comms: number;
}

describeInterop('ConnectionPool against a real Dask server', () => {
  stopPeersAfterAll();

  describe.each(rpcTransports)('over $name', (transport: InteropTransport) => {
    const opened = openedPerTest();

    it(`should complete ${CALLS} concurrent calls with at most ${LIMIT} comms open, reusing them`, async () => {
      const { ready } = await startServer(['rpc-server', ...transport.pyServer()]);
      const pool = opened.add(new ConnectionPool({ limit: LIMIT, ...rpcConnectConfig(transport) }));
      const server = pool.rpc(ready.address);
      expect(server.address).toBe(ready.address);

      const samples = { open: 0, active: 0, waiting: 0, samples: 0 };
      const sample = () => {
        samples.samples += 1;
        samples.open = Math.max(samples.open, pool.open);
        samples.active = Math.max(samples.active, pool.active);
        samples.waiting = Math.max(samples.waiting, pool.waiting);
        // the pool's counters always add up
        expect(pool.open).toBe(pool.active + pool.idle);
      };
      /** One call, sampling the pool when it is subscribed and when its reply arrives. */
      const call = (i: number) =>
        firstValueFrom(
          defer(() => {
            sample();
            return server.call<number>('sleep_echo', { data: i, delay: 0.001 });
          }).pipe(tap(() => sample())),
        );

      const round = async () => {
        const results = await Promise.all(Array.from({ length: CALLS }, (_, i) => call(i)));
        // every call got its own reply
        expect(results).toEqual(Array.from({ length: CALLS }, (_, i) => i));
      };

      await round();
      expect(samples.samples).toBe(2 * CALLS);
      // never more than the limit, and the limit was reached: the other calls waited
      expect(samples.open).toBeLessThanOrEqual(LIMIT);
      expect(samples.active).toBeLessThanOrEqual(LIMIT);
      expect(samples.open).toBe(LIMIT);
      expect(samples.waiting).toBeGreaterThan(0);
      // all done: the comms are idle, kept for reuse
      expect({ active: pool.active, waiting: pool.waiting }).toEqual({ active: 0, waiting: 0 });
      expect(pool.open).toBe(pool.idle);
      expect(pool.open).toBeLessThanOrEqual(LIMIT);

      // The server's view (asked through the pool too, so no extra comm): it accepted at
      // most LIMIT comms for the 1,000 calls, never served more than LIMIT at once.
      const stats = await callOnce<ServerStats>(server, 'stats');
      expect(stats.calls).toBe(CALLS);
      expect(stats.connections).toBeLessThanOrEqual(LIMIT);
      expect(stats.max_open).toBeLessThanOrEqual(LIMIT);
      expect(stats.max_comms).toBeLessThanOrEqual(LIMIT);
      expect(stats.max_active).toBeLessThanOrEqual(LIMIT);
      expect(stats.max_active).toBeGreaterThan(1); // the calls really ran concurrently
      expect(stats.peers).toBe(stats.connections); // one local port per comm

      // A second round reuses the same comms: the server accepts no new ones.
      await round();
      const again = await callOnce<ServerStats>(server, 'stats');
      expect(again.calls).toBe(2 * CALLS);
      expect(again.connections).toBe(stats.connections);
      expect(again.max_open).toBeLessThanOrEqual(LIMIT);
      expect(samples.open).toBeLessThanOrEqual(LIMIT);

      // close() closes every comm; the server sees them go
      await pool.close();
      expect(pool.open).toBe(0);
      const observer = opened.add(rpc(ready.address, rpcConnectConfig(transport)));
      await eventually(async () => {
        const now = await callOnce<ServerStats>(observer, 'stats');
        return now.open === 1 ? now : undefined; // only the observer's own comm
      }, "the server noticing the pool's comms closed");
    }, 120_000);

    it("should reach the scheduler's identity through the pool, many calls on few comms", async () => {
      const { ready } = await startServer(['scheduler', ...transport.pyServer()]);
      const pool = opened.add(new ConnectionPool({ limit: LIMIT, ...rpcConnectConfig(transport) }));
      const scheduler = pool.rpc(ready.address);
      let maxOpen = 0;
      const identities = await Promise.all(
        Array.from({ length: 200 }, () =>
          firstValueFrom(
            defer(() => {
              maxOpen = Math.max(maxOpen, pool.open);
              return scheduler.call<{ type: string; id: string }>('identity');
            }).pipe(tap(() => (maxOpen = Math.max(maxOpen, pool.open)))),
          ),
        ),
      );
      for (const identity of identities) expect(identity).toMatchObject({ type: 'Scheduler', id: ready.id });
      expect(maxOpen).toBeLessThanOrEqual(LIMIT);
      expect(pool.open).toBeLessThanOrEqual(LIMIT);
      expect(pool.active).toBe(0);
    }, 120_000);
  });
});
