/**
 * `schedulerEvents(address, topic)` against a fake scheduler made of rxcomm itself:
 * `serve()` with a `register-client` stream handler that does what Dask's scheduler does
 * on a client stream (stream-start, subscribe-topic, heartbeat-client, close-client,
 * events as `[{op: 'event', topic, event: [time, msg]}]`).
 */
import { batched, CommClosedError, schedulerEvents, type BatchedStream, type Comm, type SchedulerEvent } from 'rxcomm';
import { collect, transports } from '../helpers/transports';
import { gate, only, startServe, until, type Gate, type Served } from './helpers';

/** One client stream as the fake scheduler sees it. */
interface FakeClient {
  registration: Record<string, unknown>;
  comm: Comm;
  stream: BatchedStream;
  /** Every message the client sent on the stream, in order. */
  received: Record<string, unknown>[];
  topics: string[];
  heartbeats: number;
  /** Opens when the client's side of the stream ends. */
  ended: Gate<{ error?: unknown }>;
}

interface FakeScheduler extends Served {
  clients: FakeClient[];
  /** What `log_event(topic, msg)` sends to a client, here to every client whatever it subscribed to. */
  log(topic: string, msg: unknown, time?: number): void;
}

async function fakeScheduler(transport: (typeof transports)[number], refuse = ''): Promise<FakeScheduler> {
  const clients: FakeClient[] = [];
  const server = await startServe(
    transport,
    {},
    {
      streams: {
        'register-client': (comm, registration) => {
          const stream = batched(comm, { interval: 2 });
          const client: FakeClient = { registration, comm, stream, received: [], topics: [], heartbeats: 0, ended: gate() };
          clients.push(client);
          stream.send({ op: 'stream-start', warning: '', error: refuse });
          stream.messages$.subscribe({
            next: (message) => {
              const msg = message as Record<string, unknown>;
              client.received.push(msg);
              if (msg.op === 'subscribe-topic') client.topics.push(msg.topic as string);
              if (msg.op === 'heartbeat-client') client.heartbeats++;
            },
            error: (error) => client.ended.open({ error }),
            complete: () => client.ended.open({}),
          });
        },
      },
    },
  );
  return {
    ...server,
    clients,
    log(topic, msg, time = 1_700_000_000.25) {
      for (const client of clients) if (!client.comm.closed) client.stream.send({ op: 'event', topic, event: [time, msg] });
    },
  };
}

describe.each(only(transports, 'inproc', 'tcp'))('schedulerEvents over $name', (transport) => {
  let scheduler: FakeScheduler;

  afterEach(async () => {
    await scheduler.close();
  });

  it('should register as a client, subscribe to the topic, and emit its events only', async () => {
    scheduler = await fakeScheduler(transport);
    const events: SchedulerEvent[] = [];
    const subscription = schedulerEvents(scheduler.address, 'my-topic', { ...transport.config(), clientId: 'client-1' }).subscribe((event) =>
      events.push(event),
    );
    await until(() => scheduler.clients[0]?.topics.length === 1, 'the subscription at the scheduler');
    const [client] = scheduler.clients;
    expect(client.registration).toEqual({ op: 'register-client', client: 'client-1', versions: expect.any(Object), reply: false });
    expect(client.topics).toEqual(['my-topic']);
    scheduler.log('other-topic', 'not mine');
    scheduler.log('my-topic', { n: 1 }, 1_700_000_001.5);
    client.stream.send({ op: 'adjust-heartbeat-interval', interval: 1 }); // newer schedulers send more: ignored
    scheduler.log('my-topic', ['two', 2], 1_700_000_002);
    await until(() => events.length === 2, 'two events');
    expect(events).toEqual([
      { topic: 'my-topic', time: 1_700_000_001.5, msg: { n: 1 } },
      { topic: 'my-topic', time: 1_700_000_002, msg: ['two', 2] },
    ]);
    subscription.unsubscribe();
    await client.ended.promise;
  });

  it('should name itself rxcomm-<random> unless given a clientId', async () => {
    scheduler = await fakeScheduler(transport);
    const subscription = schedulerEvents(scheduler.address, 't', transport.config()).subscribe();
    await until(() => scheduler.clients.length === 1, 'the client');
    expect(scheduler.clients[0].registration.client).toMatch(/^rxcomm-[0-9a-f]+$/);
    subscription.unsubscribe();
    await scheduler.clients[0].ended.promise;
  });

  it('should send heartbeats every heartbeatInterval', async () => {
    scheduler = await fakeScheduler(transport);
    const subscription = schedulerEvents(scheduler.address, 't', { ...transport.config(), heartbeatInterval: 5 }).subscribe();
    await until(() => scheduler.clients[0]?.heartbeats >= 4, 'four heartbeats'); // one with the subscription, then one per interval
    const { received } = scheduler.clients[0];
    expect(received[0]).toEqual({ op: 'subscribe-topic', topic: 't' });
    expect(received.slice(1).every((message) => message.op === 'heartbeat-client')).toBe(true);
    subscription.unsubscribe();
    await scheduler.clients[0].ended.promise;
  });

  it('should say close-client and close the comm when unsubscribed', async () => {
    scheduler = await fakeScheduler(transport);
    const subscription = schedulerEvents(scheduler.address, 't', { ...transport.config(), heartbeatInterval: 60_000 }).subscribe();
    await until(() => scheduler.clients[0]?.topics.length === 1, 'the subscription');
    subscription.unsubscribe();
    const client = scheduler.clients[0];
    expect(await client.ended.promise).toEqual({}); // closed cleanly, after its last batch
    expect(client.received).toEqual([{ op: 'subscribe-topic', topic: 't' }, { op: 'heartbeat-client' }, { op: 'close-client' }]);
  });

  it('should error when the scheduler refuses the stream in stream-start', async () => {
    scheduler = await fakeScheduler(transport, 'Mismatched versions: refusing client');
    const { values, error } = await collect(schedulerEvents(scheduler.address, 't', transport.config()));
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(CommClosedError);
    expect((error as Error).message).toContain('Mismatched versions: refusing client');
    await until(() => scheduler.clients.length === 1, 'the client');
    await scheduler.clients[0].ended.promise; // and the comm is closed
  });

  it('should complete when the scheduler closes the stream', async () => {
    scheduler = await fakeScheduler(transport);
    const ended = collect(schedulerEvents(scheduler.address, 'my-topic', transport.config()));
    await until(() => scheduler.clients[0]?.topics.length === 1, 'the subscription');
    scheduler.log('my-topic', 'last words');
    await scheduler.clients[0].stream.close();
    expect(await ended).toEqual({ values: [{ topic: 'my-topic', time: expect.any(Number), msg: 'last words' }] });
  });
});
