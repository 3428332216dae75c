/**
 * Binding a Node server for a listener, with the addressing rules every socket-based
 * transport (tcp, tls, ws, wss) shares: the host given is the host bound (a wildcard binds
 * every interface), port 0 picks a free port, and a wildcard's contact address names a
 * connectable host.
 */
import type * as net from 'node:net';
import type { Subscriber } from 'rxjs';
import { parseHostPort, unparseHostPort } from '../../addresses';
import { ListenError } from '../../errors';
import type { BackendListenOptions, ListenEvent } from '../../registry/backend';
import { isWildcard, socketAddress } from './host';
import { firstExternalIpv4 } from './local-ip';

/**
 * Binds `server` on `location` and emits `bound` on `subscriber`; a bind failure errors
 * it. Errors after the bind belong to single connections and are left to the caller.
 */
export function bindServer(
  server: net.Server,
  scheme: string,
  location: string,
  options: BackendListenOptions,
  subscriber: Subscriber<ListenEvent>,
): void {
  const [host, port] = parseHostPort(location, 0);
  let bound = false;
  server.on('error', (err: NodeJS.ErrnoException) => {
    if (bound) return;
    subscriber.error(new ListenError(`Could not listen on ${scheme}://${location}: ${err.code ?? err.message}`, { cause: err }));
  });
  server.listen({ host: host === '' ? undefined : host, port }, () => {
    bound = true;
    const address = server.address() as net.AddressInfo;
    const contactHost = isWildcard(host) ? (options.contactHost ?? firstExternalIpv4()) : host;
    subscriber.next({
      type: 'bound',
      listenAddress: socketAddress(scheme, address.address, address.port),
      contactAddress: `${scheme}://${unparseHostPort(contactHost, address.port)}`,
    });
  });
}
