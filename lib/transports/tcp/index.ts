/**
 * `tcp://`: Dask's framing over plain TCP, with Nagle's delay off and keepalive on.
 */
import * as net from 'node:net';
import { unparseHostPort } from '../../addresses/parse';
import { toCommClosedError } from '../../errors';
import { streamBackend } from '../socket/stream-backend';

export const tcpBackend = streamBackend({
  scheme: 'tcp',
  encrypted: false,
  open(host, port, _options, ready, failed) {
    const socket = net.connect({ host, port, noDelay: true, keepAlive: true });
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
