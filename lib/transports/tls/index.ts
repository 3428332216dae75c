/**
 * `tls://`: Dask's framing over TLS, mutual by default. The TLS socket is layered on a
 * TCP socket of our own so that an abort can reset it, and so that the listener can
 * drop a client that never finishes its TLS handshake.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { unparseHostPort } from '../../addresses';
import { HandshakeError } from '../../errors';
import type { BackendOptions, SecurityConfig } from '../../registry/backend';
import { socketAddress } from '../socket/host';
import { SOCKET_OPTIONS, streamBackend, type ServerEvents } from '../socket/stream-backend';
import { tlsError } from '../socket/tls-errors';
import { checkSecurity, clientCertificateProblem, clientTlsOptions, secureContextFor, tlsInfo, tlsOptionsFor } from '../socket/tls-security';

function securityOf(options: BackendOptions, side: 'connect' | 'listen'): SecurityConfig {
  return checkSecurity(options.security, side, 'tls');
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
    const rawSocket = net.connect({ host, port, ...SOCKET_OPTIONS });
    const socket = tls.connect({ socket: rawSocket, ...clientTlsOptions(security, host) });
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

  createServer(options, events) {
    const security = securityOf(options, 'listen');
    const checkClients = security.requireClientCertificate !== false;
    const { handshakeTimeout } = options;
    const server = tls.createServer({
      ...tlsOptionsFor(security),
      ...SOCKET_OPTIONS,
      requestCert: checkClients,
      // Verified below rather than by Node, so that a refused client learns why.
      rejectUnauthorized: false,
      handshakeTimeout,
    });
    // The TCP socket under each TLS socket, found again by the peer's address, so that
    // an abort can reset it.
    const rawSockets = new Map<string, net.Socket>();
    const key = (socket: net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
    server.on('connection', (rawSocket: net.Socket) => {
      const at = key(rawSocket);
      rawSockets.set(at, rawSocket);
      rawSocket.once('close', () => rawSockets.get(at) === rawSocket && rawSockets.delete(at));
    });
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      const rawSocket = rawSockets.get(key(socket)) ?? socket;
      const ready = { socket, rawSocket, extraInfo: tlsInfo(socket), wrapError: tlsError };
      // Node verifies a client certificate only after the TLS handshake, so, unlike
      // OpenSSL in Python, it sends no alert: a TLS 1.3 client would just see the
      // connection drop, and retry until its timeout. The listener answers its Dask
      // handshake with the reason instead, and it fails at once.
      const problem = checkClients ? clientCertificateProblem(socket) : undefined;
      if (problem) events.refused(ready, problem);
      else events.ready(ready);
    });
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
      const peerAddress = socketAddress('tls', socket.remoteAddress, socket.remotePort);
      const error =
        err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
          ? new HandshakeError(`TLS handshake not completed within ${handshakeTimeout} ms`, { cause: err })
          : tlsError(err, 'TLS handshake failed');
      socket.destroy(); // Node does not always close it
      events.rejected(peerAddress, error);
    });
    return plaintextAware(server, options.handshakeTimeout, events);
  },
});

/** The first byte of a TLS connection: a handshake record (its ClientHello). */
const TLS_HANDSHAKE_RECORD = 0x16;

/**
 * The server that binds: it reads each connection's first bytes before handing it to the
 * TLS server (`emit('connection')`, which takes the bytes already read). A plaintext Dask
 * client (`tcp://` to a tls listener) would otherwise see the connection just close and
 * retry until its timeout; instead its connection is `refused`, so the listener answers its
 * Dask handshake with the reason and it fails at once.
 */
function plaintextAware(tlsServer: tls.Server, handshakeTimeout: number, events: ServerEvents): net.Server {
  return net.createServer(SOCKET_OPTIONS, (rawSocket) => {
    rawSocket.on('error', () => undefined); // its TLS socket, or its comm, reports what matters
    const deadline = setTimeout(() => {
      events.rejected(socketAddress('tls', rawSocket.remoteAddress, rawSocket.remotePort), new HandshakeError(`TLS handshake not completed within ${handshakeTimeout} ms`));
      rawSocket.destroy();
    }, handshakeTimeout);
    rawSocket.once('close', () => clearTimeout(deadline));
    rawSocket.once('data', (first: Buffer) => {
      clearTimeout(deadline);
      rawSocket.pause();
      rawSocket.unshift(first);
      if (first[0] === TLS_HANDSHAKE_RECORD) {
        tlsServer.emit('connection', rawSocket);
      } else {
        events.refused(
          { socket: rawSocket, rawSocket },
          'this is a tls:// listener and the client spoke plaintext: connect with tls:// and the TLS settings (security)',
        );
      }
    });
  });
}
