/**
 * `inproc://`: Dask's in-process transport. Addresses are `inproc://<ip>/<pid>/<n>`;
 * connecting to one nobody listens on is a retryable `CommClosedError`, so `connect()`
 * keeps trying until its timeout, as Dask's does.
 *
 * The `<ip>/<pid>` identity comes from the platform entry point (Node: the first external
 * IPv4 and `process.pid`; a browser: 127.0.0.1 and a random id per page), so this module
 * needs nothing from Node.
 */
import { Observable } from 'rxjs';
import { pyRepr } from '../../addresses';
import { AddressError, CommClosedError } from '../../errors';
import type { Backend, ListenEvent } from '../../registry/backend';
import { InprocConnection, type Deliver } from './connection';

/** Who "this process" is in inproc addresses: `inproc://<host>/<processId>/<n>`. */
export interface InprocIdentity {
  /** Dask's `get_ip()`: the host's first external IPv4, else 127.0.0.1. */
  host: string;
  /** Dask's `os.getpid()`: an integer unique to this process (or page). */
  processId: number;
}

const microtask: Deliver = (work) => queueMicrotask(work);

/**
 * The inproc backend of a process known as `identity`. The platform makes one; it holds
 * the process's listeners, so every inproc address of the process goes through it.
 */
export function inprocBackendFor({ host, processId }: InprocIdentity): Backend {
  let counter = 0;
  const listeners = new Map<string, (connection: InprocConnection) => void>();

  /** A fresh location `<ip>/<pid>/<n>`. */
  const newLocation = (): string => `${host}/${processId}/${++counter}`;

  /** Dask's check: an inproc location must name this host and this process. */
  const validateLocation = (location: string): void => {
    const parts = location.split('/');
    if (parts.length !== 3 || parts[0] !== host || Number(parts[1]) !== processId || parts[2] === '') {
      throw new AddressError(
        `inproc address ${pyRepr(location)} does not match host (${pyRepr(host)}) or pid (${processId})`,
      );
    }
  };

  return {
    connect(location) {
      return new Observable((subscriber) => {
        validateLocation(location);
        const accept = listeners.get(location);
        if (!accept) {
          subscriber.error(new CommClosedError(`no endpoint for inproc address ${pyRepr(location)}`));
          return;
        }
        const [client, server] = InprocConnection.pair(`inproc://${newLocation()}`, `inproc://${location}`, microtask);
        accept(server);
        subscriber.next(client);
        subscriber.complete();
      });
    },

    listen(location) {
      return new Observable<ListenEvent>((subscriber) => {
        const bound = location === '' ? newLocation() : location;
        validateLocation(bound);
        if (listeners.has(bound)) {
          subscriber.error(new AddressError(`inproc address ${pyRepr(bound)} is already in use`));
          return;
        }
        listeners.set(bound, (connection) => subscriber.next({ type: 'connection', connection }));
        const address = `inproc://${bound}`;
        subscriber.next({ type: 'bound', listenAddress: address, contactAddress: address });
        return () => listeners.delete(bound);
      });
    },

    getAddressHost(location) {
      validateLocation(location);
      return host;
    },

    async resolveAddress(location) {
      return location;
    },

    async getLocalAddressFor() {
      return newLocation();
    },
  };
}
