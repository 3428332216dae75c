/**
 * `tcp://`: Dask's framing over plain TCP, with Nagle's delay off and keepalive on.
 */
import * as net from 'node:net';
import { unparseHostPort } from '../../addresses';
import { toCommClosedError } from '../../errors';
import { SOCKET_OPTIONS, streamBackend } from '../socket/stream-backend';

export const tcpBackend = streamBackend({
  scheme: 'tcp',
  encrypted: false,
  createServer(_options, events) {
    return net.createServer(SOCKET_OPTIONS, (socket) => events.ready({ socket, rawSocket: socket }));
  },

  open(host, port, _options, ready, failed) {
    const socket = net.connect({ host, port, ...SOCKET_OPTIONS });
    const onError = (err: Error) => failed(toCommClosedError(err, `Could not connect to tcp://${unparseHostPort(host, port)}`));
    socket.once('error', onError);
    socket.once('connect', () => {
      socket.off('error', onError);
      ready({ socket, rawSocket: socket });
    });
    return () => {
      if (socket.listenerCount('connect') > 0) socket.destroy(); // abandoned before it was ready
    };
  },
});
