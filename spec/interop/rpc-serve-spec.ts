/**
 * Dask's own `distributed.core.rpc(address)` (Python, `dask_peer.py rpc-client`) calling
 * handlers that rxcomm's `serve()` runs, over tcp and tls:
 *
 * - `await rpc(node).some_op(x=1)` gets the handler's reply (a value, a Promise, an
 *   Observable's last value, nothing → None), and the handler got `{x: 1}` (no op/reply);
 * - a throwing / rejecting / erroring handler makes Python raise an exception whose text
 *   is the handler's message (Dask's `clean_exception` turns the text `exception` field
 *   into `Exception(text)`), and the comm goes on;
 * - an unknown op answers None (as Dask) and is reported on status$;
 * - Python's `close_rpc()` (`{op: 'close', reply: false}`, then close) is served;
 * - Dask's own `ConnectionPool(limit=5)`, 200 calls at once: all answered, never more
 *   than 5 in progress on our side.
 *
 * Python checks each reply itself and reports it in its result line.
 */
import { EMPTY, firstValueFrom, of, range, type Subscription, tap, throwError } from 'rxjs';
import { type CommStatus, listen, serve, status$ } from 'rxcomm';
import { type ClientRun, describeInterop, runClient, stopAllPeers } from './dask-peer';
import type { InteropTransport } from './interop-transports';
import { rpcTransports, stopPeersAfterAll } from './rpc-helpers';

/** The failing lines of a run, short enough for an assertion message. */
function failures(run: ClientRun): Array<{ index: unknown; op: unknown; error: unknown }> {
  return run.results.filter((line) => line.ok !== true).map((line) => ({ index: line.index, op: line.op, error: line.error }));
}

describeInterop('Python rpc() against rxcomm serve()', () => {
  stopPeersAfterAll();

  describe.each(rpcTransports)('over $name', (transport: InteropTransport) => {
    const subscriptions: Subscription[] = [];
    const statuses: CommStatus[] = [];

    beforeEach(() => {
      subscriptions.push(status$.subscribe((event) => statuses.push(event)));
    });

    afterEach(async () => {
      for (const subscription of subscriptions.splice(0).reverse()) subscription.unsubscribe();
      statuses.splice(0);
      await stopAllPeers();
    });

    /** serve() on a fresh rxcomm listener; resolves with the address Python dials. */
    async function serveHandlers(handlers: Parameters<typeof serve>[1]): Promise<string> {
      const listener = listen(transport.listenAddress, transport.rxListen());
      subscriptions.push(serve(listener, handlers));
      return (await firstValueFrom(listener.bound$)).contactAddress;
    }

    function python(address: string, calls: unknown[]): Promise<ClientRun> {
      return runClient(['rpc-client', address, '--calls', JSON.stringify(calls), '--timeout', '60', ...transport.pyClient()]);
    }

    it("should answer Python's rpc(node).some_op(x=1) with the handler's reply", async () => {
      const seen: Array<Record<string, unknown>> = [];
      const address = await serveHandlers({
        some_op: (args) => {
          seen.push(args);
          const x = args.x as number;
          return { got: x, doubled: x * 2, text: 'héllo ✓', list: [x, 'two', null, true] };
        },
        async_op: async ({ x }) => ({ later: x }),
        observable_op: ({ n }) => range(1, n as number), // the last value is the reply
        of_op: () => of('single'),
        nothing_op: () => undefined, // → None
        empty_op: () => EMPTY, // no value → None
      });
      const run = await python(address, [
        { op: 'some_op', args: { x: 1 }, expect: { got: 1, doubled: 2, text: 'héllo ✓', list: [1, 'two', null, true] } },
        { op: 'some_op', args: { x: 21 }, expect: { got: 21, doubled: 42, text: 'héllo ✓', list: [21, 'two', null, true] } },
        { op: 'async_op', args: { x: 'a' }, expect: { later: 'a' } },
        { op: 'observable_op', args: { n: 5 }, expect: 5 },
        { op: 'of_op', expect: 'single' },
        { op: 'nothing_op', expect: null },
        { op: 'empty_op', expect: null },
      ]);
      expect({ code: run.code, failed: failures(run) }).toEqual({ code: 0, failed: [] });
      expect(run.summary).toMatchObject({ ok: true, total: 7, passed: 7, failed: 0 });
      expect(run.noise).toEqual([]);
      // the handler got the message without op and reply: exactly Python's keyword arguments
      expect(seen).toEqual([{ x: 1 }, { x: 21 }]);
      // Python's close_rpc() ({op: 'close', reply: false}, then close) is no handler error
      expect(statuses.filter((event) => event.type.startsWith('serve:'))).toEqual([]);
    }, 90_000);

    it("should make Python raise an exception with the handler's message when the handler fails, and go on", async () => {
      const address = await serveHandlers({
        boom: () => {
          throw new Error('handler exploded: 42');
        },
        reject_op: async () => {
          throw new TypeError('rejected on purpose ✗');
        },
        error_op: () => throwError(() => new RangeError('observable failed (7)')),
        ok_op: ({ x }) => x,
      });
      const run = await python(address, [
        { op: 'boom', raises: 'handler exploded: 42' },
        { op: 'ok_op', args: { x: 1 }, expect: 1 },
        { op: 'reject_op', raises: 'rejected on purpose ✗' },
        { op: 'error_op', raises: 'observable failed (7)' },
        { op: 'ok_op', args: { x: 2 }, expect: 2 },
      ]);
      expect({ code: run.code, failed: failures(run) }).toEqual({ code: 0, failed: [] });
      // Python's view (its result lines): Dask's send_recv got {status: 'uncaught-error', ...}
      // and clean_exception made Exception(<the text in `exception`>)
      const raised = run.results.filter((line) => line.raised === true);
      expect(raised.map((line) => line.op)).toEqual(['boom', 'reject_op', 'error_op']);
      expect(raised[0].exception_text).toContain('handler exploded: 42');
      expect(raised[1].exception_text).toContain('rejected on purpose ✗');
      expect(raised[2].exception_text).toContain('observable failed (7)');
      for (const line of raised) expect(line.exception_type).toBe('Exception');
      // each failure reported on status$
      const handlerErrors = statuses.filter((event) => event.type === 'serve:handler-error');
      expect(handlerErrors.map((event) => (event as { op: string }).op)).toEqual(['boom', 'reject_op', 'error_op']);
    }, 90_000);

    it("should answer Python's unknown op with None, as Dask", async () => {
      const address = await serveHandlers({ known: () => 'known' });
      const run = await python(address, [
        { op: 'no_such_op', args: { x: 1 }, expect: null },
        { op: 'known', expect: 'known' },
      ]);
      expect({ code: run.code, failed: failures(run) }).toEqual({ code: 0, failed: [] });
      const unknown = statuses.filter((event) => event.type === 'serve:unknown-op');
      expect(unknown).toEqual([{ type: 'serve:unknown-op', op: 'no_such_op', peerAddress: expect.any(String) }]);
    }, 90_000);

    it("should serve Dask's own ConnectionPool: 200 concurrent Python calls, at most its limit at once", async () => {
      const limit = 5;
      let active = 0;
      let maxActive = 0;
      let calls = 0;
      const accepted = new Set<string>();
      const listener = listen(transport.listenAddress, transport.rxListen());
      subscriptions.push(
        serve(listener.pipe(tap((comm) => accepted.add(comm.peerAddress))), {
          slow_echo: async ({ data }) => {
            calls += 1;
            active += 1;
            maxActive = Math.max(maxActive, active);
            try {
              await new Promise((resolve) => setTimeout(resolve, 1));
              return data;
            } finally {
              active -= 1;
            }
          },
        }),
      );
      const address = (await firstValueFrom(listener.bound$)).contactAddress;
      const run = await runClient([
        'rpc-client',
        address,
        '--pool',
        String(limit),
        '--repeat',
        '100',
        '--calls',
        JSON.stringify([
          { op: 'slow_echo', args: { data: 'x' }, expect: 'x' },
          { op: 'slow_echo', args: { data: [1, { y: 2 }] }, expect: [1, { y: 2 }] },
        ]),
        '--timeout',
        '60',
        ...transport.pyClient(),
      ]);
      expect({ code: run.code, failed: failures(run) }).toEqual({ code: 0, failed: [] });
      expect(run.summary).toMatchObject({ ok: true, total: 200, passed: 200, failed: 0 });
      const pool = run.summary?.pool as { limit: number; max_open: number; active_after: number };
      expect(pool.max_open).toBeLessThanOrEqual(limit);
      expect(pool.active_after).toBe(0);
      expect(calls).toBe(200);
      // one call at a time per comm, at most `limit` comms: never more calls in progress
      expect(maxActive).toBeLessThanOrEqual(limit);
      expect(maxActive).toBeGreaterThan(1);
      // (Dask's pool, at its limit, closes its idle comms whenever one comes back while
      // callers wait, and opens new ones: many comms, each served and closed cleanly)
      expect(accepted.size).toBeGreaterThanOrEqual(1);
      expect(statuses.filter((event) => event.type.startsWith('serve:'))).toEqual([]);
    }, 90_000);
  });
});
