/**
 * What the Node entry point (`index.ts`) adds to the platform-neutral core: the built-in
 * transports (each loaded when its scheme is first used, so `tls` costs nothing until
 * then), inproc's identity (this host's first external IPv4 and `process.pid`), the
 * discovery of backends in installed packages, and Node's own outputs for status events
 * (`NODE_DEBUG=rxcomm`, process warnings).
 */
import { debuglog } from 'node:util';
import { defineBackendDiscovery, defineBuiltinBackend } from '../registry';
import type { Backend } from '../registry';
import { setStatusOutput } from '../status';
import type { inprocBackendFor } from '../transports/inproc';
import { firstExternalIpv4 } from '../transports/socket/local-ip';
import { discoverBackend } from './discover';
import './node-compression';

/* Lazy requires: loading a transport is the registry's first use of its scheme. */
defineBuiltinBackend('inproc', () =>
  (require('../transports/inproc') as { inprocBackendFor: typeof inprocBackendFor }).inprocBackendFor({
    host: firstExternalIpv4(),
    processId: process.pid,
  }),
);
defineBuiltinBackend('tcp', () => (require('../transports/tcp') as { tcpBackend: Backend }).tcpBackend);
defineBuiltinBackend('tls', () => (require('../transports/tls') as { tlsBackend: Backend }).tlsBackend);
// ws, wss: registered by the ws transport
defineBuiltinBackend('ws', () => (require('../transports/ws/node') as { wsBackend: Backend }).wsBackend);
defineBuiltinBackend('wss', () => (require('../transports/ws/node') as { wssBackend: Backend }).wssBackend);

defineBackendDiscovery(discoverBackend);

const debug = debuglog('rxcomm');
setStatusOutput({
  debug: debug.enabled ? (line) => debug('%s', line) : undefined,
  warn: (line) => process.emitWarning(line, { code: 'RXCOMM_STATUS' }),
});
