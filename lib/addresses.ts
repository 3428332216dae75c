/**
 * Pure address functions with Dask's semantics and error messages
 * (`distributed/comm/addressing.py`). An address is `scheme://location`.
 */
import { AddressError } from './errors';

/**
 * The scheme used when an address has none, as in Dask.
 *
 * ## Example
 * ```ts
 * const [scheme] = parseAddress('127.0.0.1:8786');
 * scheme === DEFAULT_SCHEME; // true: 'tcp'
 * ```
 *
 * @group Addresses
 */
export const DEFAULT_SCHEME = 'tcp';

/** Python's `repr()` of a string, so messages read exactly like Dask's. */
export function pyRepr(value: string): string {
  return value.includes("'") && !value.includes('"') ? `"${value}"` : `'${value.replace(/'/g, "\\'")}'`;
}

function expectString(value: unknown): asserts value is string {
  if (typeof value !== 'string') {
    throw new TypeError(`expected str, got ${value === null ? 'null' : typeof value}`);
  }
}

/**
 * Splits an address into `[scheme, location]`, on the **last** `://`.
 * Without a scheme the default `tcp` is assumed, or with `strict` an error is thrown.
 *
 * ## Example
 * ```ts
 * parseAddress('tls://10.0.0.1:8786'); // ['tls', '10.0.0.1:8786']
 * parseAddress('127.0.0.1:8786');      // ['tcp', '127.0.0.1:8786']
 * parseAddress('127.0.0.1:8786', true); // throws AddressError: no scheme
 * ```
 *
 * @group Addresses
 */
export function parseAddress(addr: string, strict = false): [scheme: string, location: string] {
  expectString(addr);
  const at = addr.lastIndexOf('://');
  if (at < 0) {
    if (strict) {
      throw new AddressError(
        `Invalid url scheme. Must include protocol like tcp://localhost:8000. Got ${addr}`,
      );
    }
    return [DEFAULT_SCHEME, addr];
  }
  return [addr.slice(0, at), addr.slice(at + 3)];
}

/**
 * The inverse of `parseAddress`.
 *
 * ## Example
 * ```ts
 * unparseAddress('tcp', '[::1]:80');              // 'tcp://[::1]:80'
 * unparseAddress(...parseAddress('tls://h:8786')); // 'tls://h:8786'
 * ```
 *
 * @group Addresses
 */
export function unparseAddress(scheme: string, location: string): string {
  return `${scheme}://${location}`;
}

/**
 * Adds the default scheme where it is missing.
 *
 * ## Example
 * ```ts
 * normalizeAddress('h:1');        // 'tcp://h:1'
 * normalizeAddress('inproc://x'); // 'inproc://x'
 * ```
 *
 * @group Addresses
 */
export function normalizeAddress(addr: string): string {
  return unparseAddress(...parseAddress(addr));
}

/**
 * Splits `host:port` (IPv6 hosts in brackets) into `[host, port]`. A scheme prefix is
 * ignored; a `[host, port]` pair passes through. A missing port is an error unless
 * `defaultPort` is given.
 *
 * ## Example
 * ```ts
 * parseHostPort('[::1]:8786');      // ['::1', 8786]
 * parseHostPort('localhost', 8786); // ['localhost', 8786]
 * ```
 *
 * @group Addresses
 */
export function parseHostPort(
  address: string | readonly [string, number],
  defaultPort?: number,
): [host: string, port: number] {
  if (Array.isArray(address)) return [address[0], address[1]];
  expectString(address);
  // Like Dask, messages quote the address without its scheme.
  const schemeAt = address.indexOf('://');
  const rest = schemeAt >= 0 ? address.slice(schemeAt + 3) : address;
  const fail = (): never => {
    throw new AddressError(`invalid address ${pyRepr(rest)}; maybe: ipv6 needs brackets like [::1]`);
  };
  const portOrDefault = (): number => {
    if (defaultPort === undefined) throw new AddressError(`missing port number in address ${pyRepr(rest)}`);
    return defaultPort;
  };
  const toPort = (text: string): number => {
    // Python's int() message; unlike Dask, ports past 65535 are refused here, not at bind.
    if (!/^\s*[+]?\d+\s*$/.test(text)) throw new AddressError(`invalid literal for int() with base 10: ${pyRepr(text)}`);
    const port = Number(text);
    if (port > 65535) throw new AddressError(`port out of range in address ${pyRepr(rest)}`);
    return port;
  };

  if (rest.startsWith('[')) {
    const close = rest.indexOf(']');
    if (close < 0) return fail();
    const host = rest.slice(1, close);
    const tail = rest.slice(close + 1);
    if (tail === '') return [host, portOrDefault()];
    if (!tail.startsWith(':')) return fail();
    return [host, toPort(tail.slice(1))];
  }
  const colon = rest.lastIndexOf(':');
  if (colon < 0) return [rest, portOrDefault()];
  const host = rest.slice(0, colon);
  if (host.includes(':')) return fail();
  return [host, toPort(rest.slice(colon + 1))];
}

/**
 * The inverse of `parseHostPort`: IPv6 hosts get their brackets back; without a port,
 * just the host.
 *
 * ## Example
 * ```ts
 * unparseHostPort('::1', 80);   // '[::1]:80'
 * unparseHostPort('localhost'); // 'localhost'
 * ```
 *
 * @group Addresses
 */
export function unparseHostPort(host: string, port?: number | null): string {
  const bracketed = host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
  return port === undefined || port === null ? bracketed : `${bracketed}:${port}`;
}
