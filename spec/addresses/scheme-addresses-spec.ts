import {
  AddressError,
  getAddressHost,
  getAddressHostPort,
  getLocalAddressFor,
  resolveAddress,
  UnknownSchemeError,
} from 'rxcomm';
import { inprocAddress } from '../helpers/transports';

describe('scheme-dependent address functions', () => {
  describe('tcp', () => {
    it('should extract host and port', () => {
      expect(getAddressHost('tcp://127.0.0.1:8786')).toBe('127.0.0.1');
      expect(getAddressHostPort('tcp://[::1]:8786')).toEqual(['::1', 8786]);
      expect(getAddressHostPort('127.0.0.1:1')).toEqual(['127.0.0.1', 1]);
    });

    it('should fail on getAddressHost without a port, as Dask code does', () => {
      expect(() => getAddressHost('tcp://127.0.0.1')).toThrow("missing port number in address '127.0.0.1'");
    });

    it('should resolve host names, IPv4 first, and keep IPs and wildcards', async () => {
      expect(await resolveAddress('tcp://localhost:80')).toBe('tcp://127.0.0.1:80');
      expect(await resolveAddress('tcp://:80')).toBe('tcp://127.0.0.1:80');
      expect(await resolveAddress('tcp://[::1]:80')).toBe('tcp://[::1]:80');
      expect(await resolveAddress('tcp://0.0.0.0:80')).toBe('tcp://0.0.0.0:80');
      expect(await resolveAddress('tcp://[::]:80')).toBe('tcp://[::]:80');
    });

    it('should give the local address for a destination, without a port', async () => {
      expect(await getLocalAddressFor('tcp://127.0.0.1:80')).toBe('tcp://127.0.0.1');
      expect(await getLocalAddressFor('tcp://[::1]:80')).toBe('tcp://[::1]');
    });
  });

  describe('inproc', () => {
    it('should have the host but no port', () => {
      const addr = inprocAddress();
      const [, location] = addr.split('://');
      expect(getAddressHost(addr)).toBe(location.split('/')[0]);
      expect(() => getAddressHostPort(addr)).toThrow(
        new AddressError(`don't know how to extract host and port for address '${addr}'`),
      );
    });

    it('should resolve to itself', async () => {
      const addr = inprocAddress();
      expect(await resolveAddress(addr)).toBe(addr);
    });

    it('should give a fresh local address', async () => {
      const local = await getLocalAddressFor(inprocAddress());
      expect(local).toMatch(new RegExp(`^inproc://[0-9.]+/${process.pid}/\\d+$`));
    });

    it('should reject an address of another process', () => {
      const [, location] = inprocAddress().split('://');
      const [ip] = location.split('/');
      expect(() => getAddressHost(`inproc://${ip}/1/1`)).toThrow(AddressError);
    });
  });

  it('should fail at once on an unknown scheme, listing the known ones', () => {
    expect(() => getAddressHost('udp://127.0.0.1:1')).toThrow(UnknownSchemeError);
    expect(() => getAddressHost('udp://127.0.0.1:1')).toThrow(/^unknown address scheme 'udp' \(known schemes: \['inproc', 'tcp', 'tls'.*\]\)$/);
  });
});
