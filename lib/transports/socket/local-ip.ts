import * as os from 'node:os';

/**
 * This machine's first external IPv4 address, else 127.0.0.1: what Dask's `get_ip()`
 * finds, read from the interface list (no traffic is sent).
 */
export function firstExternalIpv4(): string {
  for (const addresses of Object.values(os.networkInterfaces())) {
    for (const address of addresses ?? []) {
      if (address.family === 'IPv4' && !address.internal) return address.address;
    }
  }
  return '127.0.0.1';
}
