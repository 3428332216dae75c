/**
 * The rpc layer against a real `distributed.Scheduler` (Dask 2022.12.1, `dask_peer.py
 * scheduler`), over tcp and tls:
 *
 * - `rpc(address).call(op, args)`: `identity`, `set_metadata`/`get_metadata`,
 *   `log_event`/`events`, an error reply (`get_metadata` of a missing key: Dask's
 *   `{status: 'uncaught-error', exception_text: "KeyError('…')", …}`) as `RemoteError`,
 *   an unknown op answered with null; concurrent calls open more comms and reuse them.
 * - `schedulerEvents(address, topic)`: joins as a client stream (register-client,
 *   subscribe-topic, heartbeats) and receives an event that a *Python* `rpc().log_event`
 *   logs on that topic; unsubscribing makes the scheduler remove the client (its own
 *   `remove-client` event on the client's topic).
 *
 * Wire facts: /work/shared/PROTOCOL-2.md, "Talking to a real scheduler without pickle".
 */
import { firstValueFrom, lastValueFrom } from 'rxjs';
import { RemoteError, rpc, type Rpc, schedulerEvents, type SchedulerEvent } from 'rxcomm';
import { type DaskPeer, describeInterop, type ReadyLine, runClient, startServer } from './dask-peer';
import type { InteropTransport } from './interop-transports';
import { callOnce, eventually, Opened, rpcConnectConfig, rpcTransports, stopPeersAfterAll, uniqueName } from './rpc-helpers';

/** A scheduler event as the `events` op returns it: `[time, msg]`. */
type StoredEvent = [number, unknown];

describeInterop('rpc against a real distributed.Scheduler', () => {
  stopPeersAfterAll();

  describe.each(rpcTransports)('over $name', (transport: InteropTransport) => {
    let peer: DaskPeer;
    let ready: ReadyLine;
    const server = { ready: () => ready };
    const opened = new Opened();

    beforeAll(async () => {
      ({ peer, ready } = await startServer(['scheduler', ...transport.pyServer()]));
    }, 60_000);

    afterAll(async () => {
      await peer?.stop();
    });

    afterEach(async () => {
      await opened.closeAll();
    });

    function schedulerRpc(): Rpc {
      return opened.add(rpc(server.ready().address, rpcConnectConfig(transport)));
    }

    it("should get the Scheduler's identity", async () => {
      const scheduler = schedulerRpc();
      expect(scheduler.address).toBe(server.ready().address);
      expect(scheduler.openComms).toBe(0); // cold: nothing is opened before a call
      const identity = await callOnce<Record<string, unknown>>(scheduler, 'identity');
      expect(identity).toMatchObject({ type: 'Scheduler', id: server.ready().id, address: server.ready().advertised, workers: {} });
      expect(typeof identity.started).toBe('number');
      expect(scheduler.openComms).toBe(1); // the comm stays open, idle, for the next call
      await callOnce(scheduler, 'identity');
      expect(scheduler.openComms).toBe(1); // ... and is reused
    });

    it('should get back with get_metadata what set_metadata stored (keys [a, b])', async () => {
      const scheduler = schedulerRpc();
      const a = uniqueName('a');
      const value = { text: 'héllo ✓', n: 42, big: 2 ** 40, ratio: 0.25, list: [1, 'two', null, true], nested: { ok: false } };
      // set_metadata answers null (Dask's handler returns None)
      expect(await callOnce(scheduler, 'set_metadata', { keys: [a, 'b'], value })).toBeNull();
      expect(await callOnce(scheduler, 'get_metadata', { keys: [a, 'b'] })).toEqual(value);
      // the intermediate key is a map holding b
      expect(await callOnce(scheduler, 'get_metadata', { keys: [a] })).toEqual({ b: value });
      // a default for a missing key, as Dask's `default=`
      expect(await callOnce(scheduler, 'get_metadata', { keys: [a, 'c'], default: 'fallback' })).toBe('fallback');
    });

    it('should find with events the event it logged with log_event', async () => {
      const scheduler = schedulerRpc();
      const topic = uniqueName('rxcomm-topic');
      const msg = { from: 'node', n: 1, items: ['x', 'y'] };
      expect(await callOnce(scheduler, 'log_event', { topic, msg })).toBeNull();
      const events = await callOnce<StoredEvent[]>(scheduler, 'events', { topic });
      expect(events).toEqual([[expect.any(Number), msg]]);
      // a second event is appended after it
      await callOnce(scheduler, 'log_event', { topic, msg: 'second' });
      const again = await callOnce<StoredEvent[]>(scheduler, 'events', { topic });
      expect(again.map(([, m]) => m)).toEqual([msg, 'second']);
    });

    it("should error with RemoteError naming KeyError for get_metadata of a missing key, and go on", async () => {
      const scheduler = schedulerRpc();
      const missing = uniqueName('missing');
      const error = await callOnce(scheduler, 'get_metadata', { keys: [missing] }).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(error).toBeInstanceOf(RemoteError);
      const remote = error as RemoteError;
      expect(remote.name).toBe('RemoteError');
      expect(remote.code).toBe('ERR_REMOTE');
      expect(remote.op).toBe('get_metadata');
      expect(remote.address).toBe(server.ready().address);
      // Dask's exception_text is repr(e); the pickled `exception` is never unpickled
      expect(remote.exceptionText).toBe(`KeyError('${missing}')`);
      expect(remote.message).toContain(`KeyError('${missing}')`);
      // traceback_text is Dask's formatted traceback, through the scheduler's handler
      expect(remote.tracebackText).toContain('get_metadata');
      // the error reply is a reply: the Rpc goes on
      expect(await callOnce<{ type: string }>(scheduler, 'identity')).toMatchObject({ type: 'Scheduler' });
    });

    it('should get null for an unknown op (Dask logs "No handler" and answers None)', async () => {
      const scheduler = schedulerRpc();
      expect(await callOnce(scheduler, 'no_such_op_for_rxcomm', { x: 1 })).toBeNull();
      // and the comm is still usable
      expect(await callOnce<{ type: string }>(scheduler, 'identity')).toMatchObject({ type: 'Scheduler' });
    });

    it('should send a reply: false message with send(), which the scheduler acts on', async () => {
      const scheduler = schedulerRpc();
      const topic = uniqueName('rxcomm-send');
      await lastValueFrom(scheduler.send('log_event', { topic, msg: 'no reply' }), { defaultValue: undefined });
      // nothing comes back for it: the next call on the same comm gets its own reply
      const events = await eventually(async () => {
        const found = await callOnce<StoredEvent[]>(scheduler, 'events', { topic });
        return found.length > 0 ? found : undefined;
      }, 'the event sent with reply: false');
      expect(events.map(([, m]) => m)).toEqual(['no reply']);
    });

    it('should open one comm per concurrent call, then reuse them', async () => {
      const scheduler = schedulerRpc();
      const round = () => Promise.all(Array.from({ length: 5 }, () => callOnce<{ type: string; id: string }>(scheduler, 'identity')));
      const first = await round();
      for (const identity of first) expect(identity).toMatchObject({ type: 'Scheduler', id: server.ready().id });
      // one call at a time per comm (as Dask's rpc): 5 at once needed 5 comms
      expect(scheduler.openComms).toBe(5);
      // the idle comms are reused: neither another concurrent round nor sequential calls open more
      await round();
      expect(scheduler.openComms).toBe(5);
      for (let i = 0; i < 5; i++) await callOnce(scheduler, 'identity');
      expect(scheduler.openComms).toBe(5);
      await scheduler.close();
      expect(scheduler.openComms).toBe(0);
      // later calls error
      await expect(callOnce(scheduler, 'identity')).rejects.toThrow();
    });

    it('should receive through schedulerEvents an event a Python client logs, and leave cleanly', async () => {
      const scheduler = schedulerRpc();
      const topic = uniqueName('rxcomm-events');
      const clientId = uniqueName('rxcomm-client');
      const received: SchedulerEvent[] = [];
      let failure: unknown;
      let completed = false;
      const subscription = opened.subscription(
        schedulerEvents(server.ready().address, topic, { ...rpcConnectConfig(transport), clientId, heartbeatInterval: 200 }).subscribe({
          next: (event) => received.push(event),
          error: (err: unknown) => (failure = err),
          complete: () => (completed = true),
        }),
      );

      // The stream is subscribed to the topic once the scheduler relays an event of ours
      // (subscribe-topic is processed asynchronously, and past events are not replayed):
      // log markers until one comes through.
      let markers = 0;
      await eventually(async () => {
        if (received.some((event) => (event.msg as { marker?: number } | null)?.marker !== undefined)) return true;
        await callOnce(scheduler, 'log_event', { topic, msg: { marker: markers++ } });
        return undefined;
      }, 'a marker event relayed through schedulerEvents');
      expect(failure).toBeUndefined();

      // The scheduler registered our client (its own add-client event, on the client's id).
      const added = await callOnce<StoredEvent[]>(scheduler, 'events', { topic: clientId });
      expect(added.map(([, m]) => m)).toContainEqual({ action: 'add-client', client: clientId });

      // A Python client logs on the topic: Dask's own rpc(addr).log_event(topic=..., msg=...).
      const msg = { from: 'python', n: 42, text: 'héllo ✓', list: [1, 2.5, null] };
      const run = await runClient([
        'rpc-client',
        server.ready().address,
        '--calls',
        JSON.stringify([{ op: 'log_event', args: { topic, msg }, expect: null }]),
        '--timeout',
        '30',
        ...transport.pyClient(),
      ]);
      expect({ code: run.code, results: run.results }).toEqual({ code: 0, results: [expect.objectContaining({ ok: true, op: 'log_event' })] });

      const fromPython = await eventually(
        () => received.find((event) => (event.msg as { from?: string } | null)?.from === 'python'),
        "the Python client's event relayed through schedulerEvents",
      );
      expect(fromPython).toEqual({ topic, time: expect.any(Number), msg });
      // the same event the scheduler stored (same time stamp)
      const stored = await callOnce<StoredEvent[]>(scheduler, 'events', { topic });
      expect(stored).toContainEqual([fromPython.time, msg]);
      // events arrive in the order the scheduler logged them
      expect(received.map((event) => event.time)).toEqual(stored.slice(stored.length - received.length).map(([time]) => time));

      // Unsubscribing sends close-client and closes the comm: the scheduler removes the client.
      subscription.unsubscribe();
      const removed = await eventually(async () => {
        const events = await callOnce<StoredEvent[]>(scheduler, 'events', { topic: clientId });
        return events.some(([, m]) => (m as { action?: string }).action === 'remove-client') ? events : undefined;
      }, 'the scheduler removing our client');
      expect(removed.map(([, m]) => m)).toContainEqual({ action: 'remove-client', client: clientId });
      expect(failure).toBeUndefined();
      expect(completed).toBe(false); // unsubscribed, not completed by the scheduler
      // The scheduler's log: it ended the client's stream and closed it, without an error
      // ("Receive client connection: <id>" ... "Remove client <id>" ... "Close client connection: <id>")
      await eventually(
        () => (peer.stderr.includes(`Close client connection: ${clientId}`) ? true : undefined),
        "the scheduler's 'Close client connection' log line",
      );
      const log = peer.stderr.slice(peer.stderr.indexOf(`Receive client connection: ${clientId}`));
      expect(log).toContain(`Remove client ${clientId}`);
      expect(log).not.toMatch(/Traceback|ERROR|Exception/);
      // and the scheduler is fine
      expect(await firstValueFrom(scheduler.call<{ type: string }>('identity'))).toMatchObject({ type: 'Scheduler' });
    }, 60_000);
  });
});
