/**
 * `inproc://`: Dask's in-process transport. Addresses are `inproc://<ip>/<pid>/<n>`;
 * connecting to one nobody listens on is a retryable `CommClosedError`, so `connect()`
 * keeps trying until its timeout, as Dask's does.
 */
import { firstExternalIpv4 } from '../local-ip';
import { Observable } from 'rxjs';
import { pyRepr } from '../../addresses';
import { AddressError, CommClosedError } from '../../errors';
import type { Backend, ListenEvent } from '../../registry/backend';
import { InprocConnection, type Deliver } from './connection';

const ip = firstExternalIpv4();
let counter = 0;
const listeners = new Map<string, (connection: InprocConnection) => void>();

/** A fresh location `<ip>/<pid>/<n>`. */
function newLocation(): string {
  return `${ip}/${process.pid}/${++counter}`;
}

/** Dask's check: an inproc location must name this host and this process. */
function validateLocation(location: string): void {
  const parts = location.split('/');
  if (parts.length !== 3 || parts[0] !== ip || Number(parts[1]) !== process.pid || parts[2] === '') {
    throw new AddressError(
      `inproc address ${pyRepr(location)} does not match host (${pyRepr(ip)}) or pid (${process.pid})`,
    );
  }
}

const microtask: Deliver = (work) => queueMicrotask(work);

export const inprocBackend: Backend = {
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
    return ip;
  },

  async resolveAddress(location) {
    return location;
  },

  async getLocalAddressFor() {
    return newLocation();
  },
};
