/**
 * What the Node entry point adds to the platform-neutral core: the built-in transports
 * (each loaded when its scheme is first used, so `tls` costs nothing until then) and
 * Node's own outputs for status events (`NODE_DEBUG=rxcomm`, process warnings).
 */
import { debuglog } from 'node:util';
import { defineBuiltinBackend } from './registry';
import { setStatusOutput } from './status';
import type { Backend } from './registry';

/* Lazy requires: loading a transport is the registry's first use of its scheme. */
defineBuiltinBackend('inproc', () => (require('./transports/inproc') as { inprocBackend: Backend }).inprocBackend);
defineBuiltinBackend('tcp', () => (require('./transports/tcp') as { tcpBackend: Backend }).tcpBackend);
defineBuiltinBackend('tls', () => (require('./transports/tls') as { tlsBackend: Backend }).tlsBackend);

const debug = debuglog('rxcomm');
setStatusOutput({
  debug: debug.enabled ? (line) => debug('%s', line) : undefined,
  warn: (line) => process.emitWarning(line, { code: 'RXCOMM_STATUS' }),
});
