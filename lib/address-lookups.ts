/**
 * Address functions that depend on the scheme: each asks the backend registered for
 * that scheme, as Dask's `addressing.py` does. The pure parsing ones are in addresses.ts.
 */
import { AddressError } from './errors';
import { getBackend } from './registry';
import { parseAddress, pyRepr, unparseAddress } from './addresses';

/**
 * The host part of an address, as the scheme's backend reads it.
 *
 * ## Example
 * ```ts
 * getAddressHost('tcp://1.2.3.4:80');  // '1.2.3.4'
 * getAddressHost('tcp://[::1]:8786');  // '::1'
 * ```
 *
 * @group Addresses
 */
export function getAddressHost(addr: string): string {
  const [scheme, location] = parseAddress(addr);
  return getBackend(scheme).getAddressHost(location);
}

/**
 * `[host, port]` of an address; an error for schemes without ports (inproc).
 *
 * ## Example
 * ```ts
 * getAddressHostPort('tcp://[::1]:8786'); // ['::1', 8786]
 * ```
 *
 * @group Addresses
 */
export function getAddressHostPort(addr: string): [host: string, port: number] {
  const [scheme, location] = parseAddress(addr);
  const backend = getBackend(scheme);
  if (!backend.getAddressHostPort) {
    throw new AddressError(`don't know how to extract host and port for address ${pyRepr(addr)}`);
  }
  return backend.getAddressHostPort(location);
}

/**
 * Resolves the host name in an address to an IP: `tcp://localhost:80` becomes
 * `tcp://127.0.0.1:80` (IPv4 preferred). Wildcards and inproc addresses stay as they are.
 *
 * ## Example
 * ```ts
 * await resolveAddress('tcp://localhost:8786'); // 'tcp://127.0.0.1:8786'
 * ```
 *
 * @group Addresses
 */
export async function resolveAddress(addr: string): Promise<string> {
  const [scheme, location] = parseAddress(addr);
  return unparseAddress(scheme, await getBackend(scheme).resolveAddress(location));
}

/**
 * The local address a connection to `addr` would leave from, without a port:
 * Dask's `get_local_address_for`: an address to listen on that `addr` can reach.
 *
 * ## Example
 * ```ts
 * await getLocalAddressFor('tcp://127.0.0.1:80'); // 'tcp://127.0.0.1'
 * ```
 *
 * @group Addresses
 */
export async function getLocalAddressFor(addr: string): Promise<string> {
  const [scheme, location] = parseAddress(addr);
  return unparseAddress(scheme, await getBackend(scheme).getLocalAddressFor(location));
}
