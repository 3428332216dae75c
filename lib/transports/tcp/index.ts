/**
 * `tcp://`: Dask's framing over plain TCP, with Nagle's delay off and keepalive on. Both
 * ends read through a `DirectReader` (`onread`): a large frame is read straight into its
 * final buffer, no byte copied on receive.
 */
import * as net from 'node:net';
import { unparseHostPort } from '../../addresses';
import { toCommClosedError } from '../../errors';
import { adoptAccepted, DirectReader, readThroughInPlace } from '../socket/direct-reader';
import { socketAddress } from '../socket/host';
import { streamBackend } from '../socket/stream-backend';

/**
 * Nagle's delay off (Dask sets TCP_NODELAY too). Keepalive is not asked for here:
 * `SocketConnection` sets it, with the idle time of the comm's deadPeerTimeout, once the
 * handshake shows a peer that sends no heartbeats (Dask); between rxcomm peers the
 * heartbeats do its job, and a connect or accept makes no keepalive setsockopt() call.
 */
const TCP_OPTIONS = { noDelay: true } as const;

/** The last host and port dialled, and the peer address that says (undefined: ask). */
let lastDialled: { host: string; port: number; peerAddress: string | undefined } = { host: '', port: -1, peerAddress: undefined };

export const tcpBackend = streamBackend({
  scheme: 'tcp',
  encrypted: false,
  createServer(_options, events) {
    // Every accepted socket's local address, if the bind says it (null: it does not).
    let boundAddress: string | null | undefined;
    // Paused on accept, so that no byte is read before the socket reads through onread.
    const server = net.createServer({ ...TCP_OPTIONS, pauseOnConnect: true }, (accepted) => {
      boundAddress ??= boundIpv4Address(server) ?? null;
      const reader = new DirectReader();
      if (readThroughInPlace(accepted, reader)) {
        events.ready({ socket: accepted, rawSocket: accepted, reader, localAddress: boundAddress ?? undefined });
        return;
      }
      const socket = adoptAccepted(accepted, server, reader);
      if (socket) events.ready({ socket, rawSocket: socket, reader });
      else events.ready({ socket: accepted, rawSocket: accepted });
    });
    return server;
  },

  open(host, port, _options, ready, failed) {
    const reader = new DirectReader();
    const socket = net.connect({ host, port, ...TCP_OPTIONS, onread: reader.onread });
    // A dialled IPv4 address is the peer's address as getpeername() would give it (the
    // last one kept: a client dials one address again and again).
    if (host !== lastDialled.host || port !== lastDialled.port) {
      lastDialled = { host, port, peerAddress: net.isIPv4(host) ? socketAddress('tcp', host, port) : undefined };
    }
    const peerAddress = lastDialled.peerAddress;
    const onError = (err: Error) => failed(toCommClosedError(err, `Could not connect to tcp://${unparseHostPort(host, port)}`));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      ready({ socket, rawSocket: socket, reader, peerAddress });
    });
    return () => {
      if (socket.listenerCount('connect') > 0) socket.destroy(); // abandoned before it was ready
    };
  },
});

/**
 * `tcp://IP:PORT` of a server bound to one IPv4 address: the local address of every
 * socket it accepts, as getsockname() would give it. Undefined for a wildcard or IPv6 bind
 * (a wildcard's sockets each have their own local address): those are asked per socket.
 */
function boundIpv4Address(server: net.Server): string | undefined {
  const bound = server.address();
  if (bound === null || typeof bound === 'string' || !net.isIPv4(bound.address) || bound.address === '0.0.0.0') return undefined;
  return socketAddress('tcp', bound.address, bound.port);
}
