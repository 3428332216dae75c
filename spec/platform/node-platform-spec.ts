/**
 * The Node entry point's platform: inproc addresses carry this host's first external IPv4
 * and `process.pid`, as Dask's do, and every built-in transport is a known scheme.
 */
import * as os from 'node:os';
import { firstValueFrom } from 'rxjs';
import { getAddressHost, getBackend, listen, UnknownSchemeError } from 'rxcomm';

/** Dask's `get_ip()`, read from the interface list here rather than through rxcomm. */
function expectedHost(): string {
  const external = Object.values(os.networkInterfaces())
    .flat()
    .find((address) => address?.family === 'IPv4' && !address.internal);
  return external?.address ?? '127.0.0.1';
}

describe('the Node platform', () => {
  it("should give inproc addresses this host's IP and this process's pid, as Dask's", async () => {
    const listener = listen('inproc://');
    const sub = listener.subscribe();
    const { contactAddress } = await firstValueFrom(listener.bound$);
    const host = expectedHost();
    expect(contactAddress).toMatch(new RegExp(`^inproc://${host.replace(/\./g, '\\.')}/${process.pid}/\\d+$`));
    expect(getAddressHost(contactAddress)).toBe(host);
    expect(() => getAddressHost(`inproc://${host}/${process.pid + 1}/1`)).toThrow(
      `inproc address '${host}/${process.pid + 1}/1' does not match host ('${host}') or pid (${process.pid})`,
    );
    sub.unsubscribe();
  });

  it("should know tcp, tls and inproc, and keep Dask's message for other schemes", () => {
    for (const scheme of ['inproc', 'tcp', 'tls']) expect(typeof getBackend(scheme).connect).toBe('function');
    expect(() => getBackend('nope')).toThrow(UnknownSchemeError);
    expect(() => getBackend('nope')).toThrow(/^unknown address scheme 'nope' \(known schemes: \[.*'inproc'.*'tcp'.*'tls'.*\]\)$/);
  });
});
