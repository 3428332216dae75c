/**
 * `batched(comm)` over a real socket: Dask's BatchedSend under load. Its timing policy is
 * in marbles/batched-marble-spec.ts.
 */
import { CommClosedError, ConfigError, batched, type BatchedConfig } from 'rxcomm';
import { collect, connectPair, transports, type Connected, type TransportCase } from '../helpers/transports';
import { only } from './helpers';

const [tcp] = only(transports, 'tcp') as [TransportCase];

describe('batched over tcp', () => {
  let pair: Connected;

  beforeEach(async () => {
    pair = await connectPair(tcp);
  });

  afterEach(async () => {
    await pair.close();
  });

  it('should deliver 10,000 messages in order, in fewer messages on the wire', async () => {
    const sender = batched(pair.client, { interval: 2 });
    const receiver = batched(pair.server, { interval: 2 });
    const wire = collect(pair.server.read$);
    const received = collect(receiver.messages$);
    const count = 10_000;
    for (let i = 0; i < count; i++) {
      sender.send({ op: 'task-finished', i });
      // now and then let the event loop run, so that the messages span many intervals
      if (i % 500 === 499) await new Promise((resolve) => setImmediate(resolve));
    }
    await sender.close();
    const { values, error } = await received;
    expect(error).toBeUndefined();
    expect(values.map((message) => (message as { i: number }).i)).toEqual(Array.from({ length: count }, (_, i) => i));
    const batches = (await wire).values;
    expect(batches.every(Array.isArray)).toBe(true);
    expect(batches.length).toBeGreaterThan(1);
    expect(batches.length).toBeLessThan(count);
  });

  it('should throw CommClosedError from send() once its comm is closed by the peer', async () => {
    const sender = batched(pair.client, { interval: 2 });
    await pair.server.close();
    await collect(pair.client.read$);
    expect(() => sender.send('late')).toThrow(CommClosedError);
  });

  it('should refuse a missing, negative or non-finite interval with ConfigError', () => {
    for (const config of [undefined, {}, { interval: -1 }, { interval: Number.NaN }, { interval: Infinity }, { interval: '2' }]) {
      expect(() => batched(pair.client, config as unknown as BatchedConfig)).toThrow(ConfigError);
    }
    expect(() => batched(pair.client, { interval: 0 })).not.toThrow();
  });
});
