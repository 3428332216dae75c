/**
 * What the browser entry point (`browser.ts`) adds to the platform-neutral core: inproc
 * (loaded with the bundle; its identity is 127.0.0.1 and a random id per page, since a
 * page has neither a network interface list nor a pid), `tcp` and `tls` named as
 * Node-only so that their addresses fail with a message that says so, no discovery of
 * installed backends, and status warnings on the console. Nothing here, nor below, may
 * import a Node built-in: `spec/architecture` walks the imports from `browser.ts`.
 */
import { defineCompressionSupport } from '../options';
import { canCompress, prepareCompressor, resolveAutoCompression } from '../protocol/compression';
import { defineBuiltinBackend, defineUnavailableScheme } from '../registry';
import { setStatusOutput } from '../status';
import { inprocBackendFor } from '../transports/inproc';
import { browserWsBackend, browserWssBackend } from '../transports/ws/browser';

/** Why `tcp://` and `tls://` fail in a browser: `address scheme 'tcp' needs Node.js: ...`. */
export const NEEDS_NODE = 'needs Node.js: browsers offer no raw sockets; use ws:// or wss://';

/** A random positive 31-bit integer: this page's stand-in for a pid. */
function pageId(): number {
  const crypto = (globalThis as { crypto?: { getRandomValues?(array: Uint32Array): Uint32Array } }).crypto;
  const random = crypto?.getRandomValues ? crypto.getRandomValues(new Uint32Array(1))[0] / 2 ** 32 : Math.random();
  return 1 + Math.floor(random * 0x7ffffffe);
}

defineBuiltinBackend('inproc', () => inprocBackendFor({ host: '127.0.0.1', processId: pageId() }));
// ws, wss: registered by the ws transport
defineBuiltinBackend('ws', () => browserWsBackend);
defineBuiltinBackend('wss', () => browserWssBackend);

for (const scheme of ['tcp', 'tls']) defineUnavailableScheme(scheme, NEEDS_NODE);

setStatusOutput({ debug: undefined, warn: (line) => console.warn(line) });

// The pure-TypeScript formats: lz4, snappy and zlib written, zstd only read.
defineCompressionSupport({ canCompress, prepare: prepareCompressor, auto: resolveAutoCompression });
