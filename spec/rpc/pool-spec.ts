/**
 * `ConnectionPool`: Dask's pool of comms across addresses, at most `limit` open; idle
 * comms reused, or closed to make room; callers wait in order at the limit. Over tcp,
 * with `serve()` servers that count their connections.
 */
import { firstValueFrom, lastValueFrom, type Subscription } from 'rxjs';
import { CommClosedError, ConfigError, ConnectionPool } from 'rxcomm';
import { collect, transports, type TransportCase } from '../helpers/transports';
import { gate, only, startServe, until, type Gate, type Served } from './helpers';

const [tcp] = only(transports, 'tcp') as [TransportCase];

describe('ConnectionPool', () => {
  const servers: Served[] = [];
  const pools: ConnectionPool[] = [];

  afterEach(async () => {
    await Promise.all(pools.splice(0).map((pool) => pool.close()));
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  const newPool = (limit?: number): ConnectionPool => {
    const pool = new ConnectionPool({ limit, timeout: 10_000 });
    pools.push(pool);
    return pool;
  };

  /**
   * A server whose `hold` requests each wait for a gate of their own (by `id`), and whose
   * `ping` answers at once. `started` lists the ids in the order their handlers began.
   */
  async function holdingServer() {
    const gates = new Map<string, Gate<string>>();
    const started: string[] = [];
    const server = await startServe(tcp, {
      hold: ({ id }) => {
        started.push(id as string);
        const held = gate<string>();
        gates.set(id as string, held);
        return held.promise;
      },
      ping: () => 'pong',
    });
    servers.push(server);
    return {
      ...server,
      started,
      /** Answers the held request `id` with `id`. */
      release: (id: string) => gates.get(id)!.open(id),
    };
  }

  it('should refuse a limit that is not a positive integer', () => {
    for (const limit of [0, -1, 1.5, Number.NaN]) {
      expect(() => new ConnectionPool({ limit })).toThrow(ConfigError);
    }
    expect(new ConnectionPool({ limit: Infinity }).limit).toBe(Infinity);
    expect(new ConnectionPool().limit).toBe(512);
  });

  it('should reuse an idle comm to the same address', async () => {
    const server = await holdingServer();
    const pool = newPool(5);
    const scheduler = pool.rpc(server.address);
    for (let i = 0; i < 5; i++) expect(await lastValueFrom(scheduler.call('ping'))).toBe('pong');
    expect(server.accepted).toHaveLength(1);
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([1, 0, 1, 0]);
    expect(scheduler.openComms).toBe(1);
  });

  it('should keep the limit across addresses, and make callers wait, not fail', async () => {
    const a = await holdingServer();
    const b = await holdingServer();
    const pool = newPool(3);
    const calls = ['a1', 'b1', 'a2', 'b2', 'a3', 'b3'].map((id) => {
      const server = id.startsWith('a') ? a : b;
      return lastValueFrom(pool.rpc(server.address).call('hold', { id }));
    });
    await until(() => a.started.length + b.started.length === 3, 'three calls in their handlers');
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([3, 3, 0, 3]);
    expect(a.accepted.length + b.accepted.length).toBe(3);
    for (const id of ['a1', 'b1', 'a2']) (id.startsWith('a') ? a : b).release(id);
    await until(() => a.started.length + b.started.length === 6, 'the waiting calls to start');
    expect(pool.open).toBe(3);
    for (const id of ['b2', 'a3', 'b3']) (id.startsWith('a') ? a : b).release(id);
    expect(await Promise.all(calls)).toEqual(['a1', 'b1', 'a2', 'b2', 'a3', 'b3']);
    expect(pool.open).toBeLessThanOrEqual(3);
    expect([pool.active, pool.waiting]).toEqual([0, 0]);
  });

  it('should close an idle comm to another address to make room', async () => {
    const a = await holdingServer();
    const b = await holdingServer();
    const pool = newPool(1);
    const toA = pool.rpc(a.address);
    const toB = pool.rpc(b.address);
    expect(await lastValueFrom(toA.call('ping'))).toBe('pong');
    expect([toA.openComms, pool.idle]).toEqual([1, 1]);
    const aEnd = collect(a.accepted[0].read$);
    expect(await lastValueFrom(toB.call('ping'))).toBe('pong');
    expect(await aEnd).toEqual({ values: [] }); // closed cleanly to make room
    expect([toA.openComms, toB.openComms, pool.open, pool.idle]).toEqual([0, 1, 1, 1]);
  });

  it('should serve waiting callers in the order they came, whichever comm frees first', async () => {
    const server = await holdingServer();
    const pool = newPool(2);
    const scheduler = pool.rpc(server.address);
    const calls = ['1', '2', '3', '4', '5'].map((id) => lastValueFrom(scheduler.call('hold', { id })));
    await until(() => server.started.length === 2, 'two calls in their handlers');
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([2, 2, 0, 3]);
    server.release('2'); // the second comm frees first: the third caller gets it
    await until(() => server.started.length === 3, 'the third call');
    expect(pool.waiting).toBe(2);
    server.release('1');
    await until(() => server.started.length === 4, 'the fourth call');
    expect(pool.waiting).toBe(1);
    server.release('4');
    await until(() => server.started.length === 5, 'the fifth call');
    expect(pool.waiting).toBe(0);
    server.release('3');
    server.release('5');
    expect(await Promise.all(calls)).toEqual(['1', '2', '3', '4', '5']);
    expect(server.started).toEqual(['1', '2', '3', '4', '5']);
    expect(server.accepted).toHaveLength(2);
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([2, 0, 2, 0]);
  });

  it('should take a waiting caller that unsubscribes out of the queue', async () => {
    const server = await holdingServer();
    const pool = newPool(1);
    const scheduler = pool.rpc(server.address);
    const first = lastValueFrom(scheduler.call('hold', { id: 'first' }));
    await until(() => server.started.length === 1, 'the first call');
    const leaving: Subscription = scheduler.call('hold', { id: 'leaving' }).subscribe();
    const staying = lastValueFrom(scheduler.call('hold', { id: 'staying' }));
    expect(pool.waiting).toBe(2);
    leaving.unsubscribe();
    expect(pool.waiting).toBe(1);
    server.release('first');
    await until(() => server.started.length === 2, 'the next call');
    server.release('staying');
    expect(await first).toBe('first');
    expect(await staying).toBe('staying');
    expect(server.started).toEqual(['first', 'staying']);
  });

  it('should abort lent comms and error waiting callers on close(), and refuse later calls', async () => {
    const server = await holdingServer();
    const pool = newPool(2);
    const scheduler = pool.rpc(server.address);
    const lent = ['1', '2'].map((id) => collect(scheduler.call('hold', { id })));
    await until(() => server.started.length === 2, 'two calls in their handlers');
    const waiting = ['3', '4'].map((id) => collect(scheduler.call('hold', { id })));
    expect(pool.waiting).toBe(2);
    const serverEnds = server.accepted.map((comm) => collect(comm.read$));
    await pool.close();
    for (const { error } of await Promise.all([...lent, ...waiting])) expect(error).toBeInstanceOf(CommClosedError);
    for (const { error } of await Promise.all(serverEnds)) expect(error).toBeInstanceOf(CommClosedError); // aborted
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([0, 0, 0, 0]);
    expect((await collect(scheduler.call('ping'))).error).toBeInstanceOf(CommClosedError);
    expect(server.started).toEqual(['1', '2']);
  });

  it('should close idle comms cleanly on close()', async () => {
    const a = await holdingServer();
    const b = await holdingServer();
    const pool = newPool(4);
    await Promise.all([a, a, b].map((server) => lastValueFrom(pool.rpc(server.address).call('ping'))));
    await Promise.all([lastValueFrom(pool.rpc(a.address).call('ping')), lastValueFrom(pool.rpc(a.address).call('ping'))]);
    expect(pool.idle).toBe(a.accepted.length + b.accepted.length);
    const ends = [...a.accepted, ...b.accepted].map((comm) => collect(comm.read$));
    await pool.close();
    for (const end of await Promise.all(ends)) expect(end).toEqual({ values: [] });
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([0, 0, 0, 0]);
  });

  it('should error a caller still connecting on close(), and count nothing open afterwards', async () => {
    const server = await holdingServer();
    const pool = newPool(2);
    const call = collect(pool.rpc(server.address).call('ping'));
    expect([pool.open, pool.active]).toEqual([1, 1]); // connecting
    await pool.close();
    expect((await call).error).toBeInstanceOf(CommClosedError);
    expect([pool.open, pool.active, pool.idle, pool.waiting]).toEqual([0, 0, 0, 0]);
  });

  it('should leave the pool open when a pool rpc is closed', async () => {
    const server = await holdingServer();
    const pool = newPool(2);
    const first = pool.rpc(server.address);
    expect(await lastValueFrom(first.call('ping'))).toBe('pong');
    await first.close();
    expect((await collect(first.call('ping'))).error).toBeInstanceOf(CommClosedError);
    expect(pool.idle).toBe(1);
    expect(await lastValueFrom(pool.rpc(server.address).call('ping'))).toBe('pong');
    expect(server.accepted).toHaveLength(1);
  });

  it('should free the slot of a call unsubscribed while connecting', async () => {
    const server = await holdingServer();
    const pool = newPool(1);
    const scheduler = pool.rpc(server.address);
    scheduler.call('ping').subscribe().unsubscribe();
    expect([pool.open, pool.active, pool.waiting]).toEqual([0, 0, 0]);
    expect(await firstValueFrom(scheduler.call('ping'))).toBe('pong');
    expect(pool.open).toBe(1);
  });

  it('should never open more than the limit in a burst of 1,000 calls, and complete them all', async () => {
    const limit = 10;
    let pool!: ConnectionPool;
    let mostOpen = 0;
    let inHandlers = 0;
    let mostInHandlers = 0;
    const server = await startServe(tcp, {
      work: async ({ i }) => {
        mostOpen = Math.max(mostOpen, pool.open);
        mostInHandlers = Math.max(mostInHandlers, ++inHandlers);
        await new Promise((resolve) => setImmediate(resolve));
        inHandlers--;
        return i;
      },
    });
    servers.push(server);
    pool = newPool(limit);
    const scheduler = pool.rpc(server.address);
    const calls = Array.from({ length: 1000 }, (_, i) => lastValueFrom(scheduler.call('work', { i })));
    expect(pool.open).toBeLessThanOrEqual(limit);
    expect(pool.waiting).toBe(1000 - limit);
    expect(await Promise.all(calls)).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    expect(mostOpen).toBeLessThanOrEqual(limit);
    expect(mostInHandlers).toBeLessThanOrEqual(limit);
    expect(server.accepted.length).toBeLessThanOrEqual(limit);
    expect(pool.waiting).toBe(0);
  });
});
