/**
 * Batched streams between rxcomm and Dask (Dask's `BatchedSend`: one array of messages
 * per interval on a comm whose first message named the stream's op), over tcp and tls:
 *
 * - Python → Node: `dask_peer.py batched-send` connects to an rxcomm `serve()`, writes
 *   `{op: 'interop-stream', reply: false, who: 'python'}`, then a `BatchedSend(interval=2ms)`
 *   sends `{op: 'item', i}` for i < 1000 and `{op: 'done', count}`; the Node stream
 *   handler (`serve(..., {streams: {'interop-stream': ...}})`) reads them through
 *   `batched(comm).messages$` and answers `{op: 'ack', count, in_order}` on the same comm,
 *   which Python reads and checks.
 * - Node → Python: a Node `batched(comm, {interval: 2})` to `dask_peer.py rpc-server`,
 *   whose `interop-stream` handler runs Dask's `Server.handle_stream` (stream handlers
 *   `item`, `done`): it records every item and acks through its own BatchedSend; its
 *   `streams` op reports what it got (items, batches read, whether the stream ended).
 */
import { filter, firstValueFrom } from 'rxjs';
import { batched, type BatchedStream, type Comm, connect, listen, rpc, serve } from 'rxcomm';
import { describeInterop, runClient, startServer } from './dask-peer';
import type { InteropTransport } from './interop-transports';
import { callOnce, eventually, openedPerTest, rpcConnectConfig, rpcTransports, stopPeersAfterAll } from './rpc-helpers';

const COUNT = 1000;
const STREAM_OP = 'interop-stream';

interface Msg {
  op?: string;
  i?: number;
  count?: number;
  [key: string]: unknown;
}

/** What `dask_peer.py rpc-server`'s `streams` op reports per stream. */
interface PythonStream {
  id: number;
  first: Record<string, unknown>;
  count: number;
  items: number[];
  in_order: boolean;
  ended: boolean;
  batches: number;
  non_list_reads: number;
  largest_batch: number;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

describeInterop('batched streams between rxcomm and Dask (BatchedSend, handle_stream)', () => {
  stopPeersAfterAll();

  describe.each(rpcTransports)('over $name', (transport: InteropTransport) => {
    const opened = openedPerTest();

    it(`should deliver all ${COUNT} messages of a Python BatchedSend to a Node stream handler, in order`, async () => {
      const firsts: Array<Record<string, unknown>> = [];
      const received: Msg[] = [];
      const streamEnds: Array<'complete' | 'error'> = [];
      const listener = listen(transport.listenAddress, transport.rxListen());
      opened.subscription(
        serve(
          listener,
          {},
          {
            streams: {
              [STREAM_OP]: (comm: Comm, first: Record<string, unknown>) => {
                firsts.push(first);
                const stream = opened.add(batched(comm, { interval: 2 }));
                const items: number[] = [];
                opened.subscription(
                  stream.messages$.subscribe({
                    next: (message) => {
                      const msg = message as Msg;
                      received.push(msg);
                      if (msg.op === 'item') items.push(msg.i as number);
                      if (msg.op === 'done') {
                        const inOrder = items.every((value, index) => value === index);
                        stream.send({ op: 'ack', count: items.length, in_order: inOrder, done: { count: msg.count } });
                      }
                    },
                    complete: () => streamEnds.push('complete'),
                    error: () => streamEnds.push('error'),
                  }),
                );
              },
            },
          },
        ),
      );
      const address = (await firstValueFrom(listener.bound$)).contactAddress;

      const run = await runClient([
        'batched-send',
        address,
        '--count',
        String(COUNT),
        '--first',
        JSON.stringify({ who: 'python' }),
        '--timeout',
        '60',
        ...transport.pyClient(),
      ]);
      expect({ code: run.code, lines: run.lines.filter((line) => line.ok !== true) }).toEqual({ code: 0, lines: [] });
      const [result] = run.results;
      // Python read our ack (sent through the Node BatchedStream) and checked it
      expect(result).toMatchObject({
        ok: true,
        sent: COUNT,
        message_count: COUNT + 1,
        ack: { op: 'ack', count: COUNT, in_order: true, done: { count: COUNT } },
      });
      // Python sent them in many batches (it yields to its loop every 10 messages)
      expect(result.batch_count as number).toBeGreaterThan(1);

      // Node got the first message (without op/reply, or with them: only its fields matter)
      expect(firsts).toHaveLength(1);
      expect(firsts[0]).toMatchObject({ who: 'python' });
      // every message once, in order, then done
      expect(received.filter((msg) => msg.op === 'item').map((msg) => msg.i)).toEqual(range(COUNT));
      expect(received).toHaveLength(COUNT + 1);
      expect(received[COUNT]).toEqual({ op: 'done', count: COUNT });
      // BatchedSend.close() closed the comm: the stream's messages complete
      await eventually(() => (streamEnds.length > 0 ? true : undefined), 'the end of the stream after Python closed it');
      expect(streamEnds).toEqual(['complete']);
    }, 90_000);

    it(`should deliver all ${COUNT} messages of a Node batched() stream to Dask's handle_stream, in order`, async () => {
      const { ready } = await startServer(['rpc-server', ...transport.pyServer()]);
      const comm = opened.add(await firstValueFrom(connect(ready.address, rpcConnectConfig(transport))));
      // The first message names the stream op (Dask's pattern: Scheduler.add_client, ...)
      await comm.write({ op: STREAM_OP, reply: false, who: 'node' });
      const stream: BatchedStream = batched(comm, { interval: 2 });
      opened.add(stream);
      expect(stream.comm).toBe(comm);
      const ack = firstValueFrom(stream.messages$.pipe(filter((msg) => (msg as Msg).op === 'ack')));

      for (let i = 0; i < COUNT; i++) {
        if (i % 2 === 0) stream.send({ op: 'item', i });
        else stream.next({ op: 'item', i }); // next() is send()
        // yield to the event loop now and then, so that the messages go out in many batches
        if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 1));
      }
      stream.send({ op: 'done', count: COUNT });

      // Dask's stream_handlers saw every item before `done`, in order, and acked through
      // its own BatchedSend on the same comm
      expect(await ack).toEqual({ op: 'ack', count: COUNT, in_order: true, done: { count: COUNT } });

      // close() flushes and closes the comm; Dask's handle_stream then ends
      await stream.close();
      expect(comm.closed).toBe(true);
      const python = opened.add(rpc(ready.address, rpcConnectConfig(transport)));
      const [log] = await eventually(async () => {
        const streams = await callOnce<PythonStream[]>(python, 'streams');
        return streams.length === 1 && streams[0].ended ? streams : undefined;
      }, "Dask's handle_stream ending after close()");
      expect(log.first).toEqual({ who: 'node' });
      expect(log.items).toEqual(range(COUNT));
      expect(log).toMatchObject({ count: COUNT, in_order: true, ended: true });
      // every read was an array of messages (BatchedSend's shape), and there were many
      expect(log.non_list_reads).toBe(0);
      expect(log.batches).toBeGreaterThan(1);
    }, 90_000);
  });
});
