import {
  AddressError,
  normalizeAddress,
  parseAddress,
  parseHostPort,
  unparseAddress,
  unparseHostPort,
} from 'rxcomm';

describe('parseAddress', () => {
  it.each([
    ['tcp://127.0.0.1:8786', ['tcp', '127.0.0.1:8786']],
    ['tls://[::1]:8786', ['tls', '[::1]:8786']],
    ['inproc://10.0.0.1/123/4', ['inproc', '10.0.0.1/123/4']],
    ['127.0.0.1:8786', ['tcp', '127.0.0.1:8786']],
    ['', ['tcp', '']],
    ['tcp://', ['tcp', '']],
    // split on the last '://', as Dask's rpartition does
    ['ws://tcp://x:1', ['ws://tcp', 'x:1']],
  ])('should parse %j', (addr, expected) => {
    expect(parseAddress(addr)).toEqual(expected);
  });

  it('should reject an address without scheme in strict mode, with Dask message', () => {
    expect(() => parseAddress('localhost:8000', true)).toThrow(
      new AddressError('Invalid url scheme. Must include protocol like tcp://localhost:8000. Got localhost:8000'),
    );
    expect(parseAddress('tcp://localhost:8000', true)).toEqual(['tcp', 'localhost:8000']);
  });

  it('should throw a TypeError for a non-string', () => {
    expect(() => parseAddress(42 as unknown as string)).toThrow(TypeError);
  });
});

describe('unparseAddress / normalizeAddress', () => {
  it('should join scheme and location', () => {
    expect(unparseAddress('tcp', '[::1]:80')).toBe('tcp://[::1]:80');
  });

  it('should add the default scheme', () => {
    expect(normalizeAddress('127.0.0.1:80')).toBe('tcp://127.0.0.1:80');
    expect(normalizeAddress('tls://h:1')).toBe('tls://h:1');
    expect(normalizeAddress('')).toBe('tcp://');
  });
});

describe('parseHostPort', () => {
  it.each([
    ['127.0.0.1:8786', ['127.0.0.1', 8786]],
    ['localhost:80', ['localhost', 80]],
    ['[::1]:8786', ['::1', 8786]],
    ['[fe80::1%eth0]:1', ['fe80::1%eth0', 1]],
    [':8786', ['', 8786]],
    ['tcp://127.0.0.1:1', ['127.0.0.1', 1]],
  ])('should parse %j', (address, expected) => {
    expect(parseHostPort(address)).toEqual(expected);
  });

  it('should pass a (host, port) pair through', () => {
    expect(parseHostPort(['h', 5])).toEqual(['h', 5]);
  });

  it('should use the default port when the port is missing', () => {
    expect(parseHostPort('localhost', 8786)).toEqual(['localhost', 8786]);
    expect(parseHostPort('[::1]', 8786)).toEqual(['::1', 8786]);
  });

  it('should fail on a missing port with Dask message', () => {
    expect(() => parseHostPort('localhost')).toThrow("missing port number in address 'localhost'");
    expect(() => parseHostPort('[::1]')).toThrow("missing port number in address '[::1]'");
  });

  it('should ask for brackets around an IPv6 host', () => {
    expect(() => parseHostPort('::1')).toThrow("invalid address '::1'; maybe: ipv6 needs brackets like [::1]");
  });

  it.each(['[::1', '[::1]x', '[::1]8786'])('should fail on malformed bracket notation %j with Dask message', (address) => {
    expect(() => parseHostPort(address)).toThrow(`invalid address '${address}'; maybe: ipv6 needs brackets like [::1]`);
  });

  it('should quote the address without its scheme, as Dask does', () => {
    expect(() => parseHostPort('tcp://::1:80')).toThrow("invalid address '::1:80'; maybe: ipv6 needs brackets like [::1]");
    expect(() => parseHostPort('tcp://localhost')).toThrow("missing port number in address 'localhost'");
  });

  it("should say what Python's int() says of a port that is not a number", () => {
    expect(() => parseHostPort('h:abc')).toThrow("invalid literal for int() with base 10: 'abc'");
  });

  it.each(['h:abc', 'h:-1', 'h:99999', 'h:'])('should fail on a bad port %j', (address) => {
    expect(() => parseHostPort(address)).toThrow(AddressError);
  });
});

describe('unparseHostPort', () => {
  it('should bracket hosts with colons', () => {
    expect(unparseHostPort('::1', 80)).toBe('[::1]:80');
    expect(unparseHostPort('[::1]', 80)).toBe('[::1]:80');
    expect(unparseHostPort('::1')).toBe('[::1]');
    expect(unparseHostPort('127.0.0.1', 0)).toBe('127.0.0.1:0');
    expect(unparseHostPort('h')).toBe('h');
  });
});
