/**
 * The rxcomm side of the rpc table: rxcomm's rpc layer with its public API only, as an
 * application would use it. Command line and output: rpcSideMain in rpc_protocol.ts.
 *
 *   server: serve(listen('tcp://127.0.0.1:0'), { echo: ({ data }) => data })
 *   client: rpc(address).call('echo', { data }), one at a time, and
 *           new ConnectionPool({ limit: 100 }).rpc(address).call('echo', { data }), 100 in flight
 *
 * A call is awaited with `lastValueFrom`: its reply once the call has completed (and its
 * comm is back in the idle set).
 */
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { ConnectionPool, listen, rpc, serve } from 'rxcomm';
import { fail } from './protocol';
import { rpcSideMain } from './rpc_protocol';

rpcSideMain('rxcomm', {
  async serve() {
    const listener = listen('tcp://127.0.0.1:0');
    serve(listener, { echo: ({ data }) => data });
    const { contactAddress } = await firstValueFrom(listener.bound$);
    return { address: contactAddress };
  },

  async connect(address, { concurrency, poolLimit }) {
    const direct = rpc(address, { timeout: 10_000 });
    const pool = new ConnectionPool({ limit: poolLimit || concurrency, timeout: 10_000 });
    const pooled = pool.rpc(address);
    return {
      call: (data) => lastValueFrom(direct.call('echo', { data })),
      pooledCall: (data) => lastValueFrom(pooled.call('echo', { data })),
      comms: () => ({ rpc_comms: direct.openComms, pool_open: pool.open }),
      async close() {
        await Promise.all([direct.close(), pool.close()]);
      },
    };
  },
}).catch(fail);
