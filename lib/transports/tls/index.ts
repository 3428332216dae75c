/**
 * `tls://`: Dask's framing over TLS, mutual by default. The TLS socket is layered on a
 * TCP socket of our own so that an abort can reset it, and so that the listener can
 * drop a client that never finishes its TLS handshake.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { unparseHostPort } from '../../addresses/parse';
import { HandshakeError } from '../../errors';
import type { BackendOptions } from '../../registry/backend';
import { streamBackend } from '../socket/stream-backend';
import { tlsError } from './errors';
import type { SecurityConfig } from '../../security';
import { checkSecurity, secureContextFor } from './security';

/** Default time a client may take over its TLS handshake, when the listener sets none. */
const TLS_HANDSHAKE_TIMEOUT = 30_000;

function securityOf(options: BackendOptions, side: 'connect' | 'listen'): SecurityConfig {
  return checkSecurity(options.security as SecurityConfig | undefined, side);
}

/** What Dask puts in `extra_info`: the peer certificate and the cipher (name, protocol, bits). */
function tlsInfo(socket: tls.TLSSocket): Record<string, unknown> {
  const cipher = socket.getCipher();
  const bits = /(256|CHACHA20)/.test(cipher.name) ? 256 : /128/.test(cipher.name) ? 128 : undefined;
  return {
    peercert: socket.getPeerCertificate(),
    cipher: { name: cipher.standardName ?? cipher.name, protocol: socket.getProtocol(), bits },
  };
}

export const tlsBackend = streamBackend({
  scheme: 'tls',
  encrypted: true,

  checkOptions(options, side) {
    secureContextFor(securityOf(options, side)); // bad certificates or keys fail at once
  },

  open(host, port, options, ready, failed) {
    const security = securityOf(options, 'connect');
    const address = `tls://${unparseHostPort(host, port)}`;
    const rawSocket = net.connect({ host, port, noDelay: true, keepAlive: true });
    const socket = tls.connect({
      socket: rawSocket,
      secureContext: secureContextFor(security),
      rejectUnauthorized: true,
      servername: security.checkHostname && !net.isIP(host) ? (security.serverName ?? host) : security.serverName,
      // Dask checks the chain, not the name; checkHostname turns Node's name check back on.
      checkServerIdentity: security.checkHostname
        ? (name, cert) => tls.checkServerIdentity(security.serverName ?? name ?? host, cert)
        : () => undefined,
    });
    const onError = (err: Error) => failed(tlsError(err, `Could not connect to ${address}`));
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      socket.off('error', onError);
      ready({ socket, rawSocket, extraInfo: tlsInfo(socket), wrapError: tlsError });
    });
    return () => {
      if (socket.listenerCount('secureConnect') > 0) {
        socket.destroy();
        rawSocket.destroy();
      }
    };
  },

  accept(rawSocket, options, ready, failed) {
    const security = securityOf(options, 'listen');
    const checkClients = security.requireClientCertificate !== false;
    const socket = new tls.TLSSocket(rawSocket, {
      isServer: true,
      secureContext: secureContextFor(security),
      requestCert: checkClients,
      rejectUnauthorized: checkClients,
    });
    const timeout = (options.handshakeTimeout as number | undefined) ?? TLS_HANDSHAKE_TIMEOUT;
    const timer = setTimeout(() => {
      socket.destroy();
      failed(new HandshakeError(`TLS handshake not completed within ${timeout} ms`));
    }, timeout);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.on('error', () => undefined); // it is being dropped; later errors are moot
      socket.destroy();
      failed(tlsError(err, 'TLS handshake failed'));
    };
    socket.once('error', onError);
    socket.once('secure', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      ready({ socket, rawSocket, extraInfo: tlsInfo(socket), wrapError: tlsError });
    });
  },
});
