/**
 * rxcomm: Dask's `distributed.comm` layer for Node.js and browsers, as RxJS streams.
 *
 *   transport bytes → frames → messages → Comm (read$, write) → your operators
 *
 * This is the Node entry point: it names the built-in transports, inproc's identity,
 * backend discovery and Node's status outputs (platform/node.ts), then exports the
 * platform-neutral API (api.ts). Bundlers that honour the `browser` condition take
 * browser.ts instead.
 *
 * @module rxcomm
 */
import './platform/node';

export * from './api';
