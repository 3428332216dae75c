/**
 * `tcp://`: Dask's framing over plain TCP, with Nagle's delay off and keepalive on. Both
 * ends read through a `DirectReader` (`onread`): a large frame is read straight into its
 * final buffer, no byte copied on receive.
 */
import * as net from 'node:net';
import { unparseHostPort } from '../../addresses';
import { toCommClosedError } from '../../errors';
import { adoptAccepted, DirectReader } from '../socket/direct-reader';
import { SOCKET_OPTIONS, streamBackend } from '../socket/stream-backend';

export const tcpBackend = streamBackend({
  scheme: 'tcp',
  encrypted: false,
  createServer(_options, events) {
    // Paused on accept, so that no byte is read before the socket is re-wrapped with onread.
    const server = net.createServer({ ...SOCKET_OPTIONS, pauseOnConnect: true }, (accepted) => {
      const reader = new DirectReader();
      const socket = adoptAccepted(accepted, server, reader);
      if (socket) events.ready({ socket, rawSocket: socket, reader });
      else events.ready({ socket: accepted, rawSocket: accepted });
    });
    return server;
  },

  open(host, port, _options, ready, failed) {
    const reader = new DirectReader();
    const socket = net.connect({ host, port, ...SOCKET_OPTIONS, onread: reader.onread });
    const onError = (err: Error) => failed(toCommClosedError(err, `Could not connect to tcp://${unparseHostPort(host, port)}`));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      ready({ socket, rawSocket: socket, reader });
    });
    return () => {
      if (socket.listenerCount('connect') > 0) socket.destroy(); // abandoned before it was ready
    };
  },
});
