/**
 * The layer above comms, as Dask's `distributed/core.py` has it: `rpc` and a
 * `ConnectionPool` for requests and replies, `serve` for handlers, and batched streams.
 */
export { rpc, Rpc } from './rpc';
export { ConnectionPool, type ConnectionPoolConfig } from './pool';
export { serve, type Handler, type ServeConfig, type StreamHandler } from './serve';
export { batched, BatchedStream, type BatchedConfig } from './batched';
export { schedulerEvents, type SchedulerEvent, type SchedulerEventsConfig } from './scheduler-events';
