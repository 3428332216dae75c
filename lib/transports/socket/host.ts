/**
 * Host and address helpers shared by the socket transports (tcp, tls): Dask's
 * `ensure_ip`, `get_ip` and the wildcard rules of its TCP backend.
 */
import * as dgram from 'node:dgram';
import * as dns from 'node:dns/promises';
import * as net from 'node:net';
import { parseHostPort, unparseHostPort } from '../../addresses';
import { AddressError } from '../../errors';

/** Strips the IPv4-mapped prefix that dual-stack sockets report (`::ffff:127.0.0.1`). */
export function plainIp(address: string | undefined): string {
  if (!address) return '';
  return address.startsWith('::ffff:') && net.isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** `scheme://host:port` of a socket end. */
export function socketAddress(scheme: string, host: string | undefined, port: number | undefined): string {
  return `${scheme}://${unparseHostPort(plainIp(host), port)}`;
}

export function isWildcard(host: string): boolean {
  return host === '' || host === '0.0.0.0' || host === '::';
}

/** Dask's `ensure_ip`: an IP as is; a name resolved, IPv4 first; '' means localhost. */
export async function ensureIp(host: string): Promise<string> {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (net.isIP(bare)) return bare;
  let found: { address: string; family: number }[];
  try {
    found = await dns.lookup(bare === '' ? 'localhost' : bare, { all: true, verbatim: true });
  } catch (err) {
    throw new AddressError(`could not resolve host ${JSON.stringify(bare)}: ${(err as NodeJS.ErrnoException).code}`, { cause: err });
  }
  const ipv4 = found.find((entry) => entry.family === 4);
  return (ipv4 ?? found[0]).address;
}

/** `resolveAddress` for host:port locations: the host resolved, wildcards kept. */
export async function resolveHostPortLocation(location: string): Promise<string> {
  const [host, port] = parseHostPort(location);
  if (host === '0.0.0.0' || host === '::') return unparseHostPort(host, port);
  return unparseHostPort(await ensureIp(host), port);
}

/**
 * The local IP a connection to `location` would leave from, without a port. Like
 * Dask, it connects a UDP socket and reads its address: no packet is sent.
 */
export async function localAddressFor(location: string): Promise<string> {
  const [host] = parseHostPort(location, 0);
  const ip = await ensureIp(host);
  const socket = dgram.createSocket(net.isIPv6(ip) ? 'udp6' : 'udp4');
  try {
    const local = await new Promise<string>((resolve, reject) => {
      socket.once('error', reject);
      socket.connect(80, ip, () => resolve(socket.address().address));
    });
    return unparseHostPort(local);
  } finally {
    socket.close();
  }
}


/** A backend's address lookups for `host:port` locations: what tcp, tls, ws and wss share. */
export const hostPortLookups = {
  getAddressHost: (location: string): string => parseHostPort(location)[0],
  getAddressHostPort: (location: string): [string, number] => parseHostPort(location),
  resolveAddress: resolveHostPortLocation,
  getLocalAddressFor: localAddressFor,
};
