/**
 * One typed options model: closed interfaces, so a typo fails to compile; and from
 * JavaScript, a `ConfigError` at the call that names the key and the nearest valid one.
 */
import { firstValueFrom } from 'rxjs';
import {
  ConfigError,
  connect,
  getBackend,
  listen,
  registerBackend,
  type Backend,
  type BackendOptions,
  type ConnectConfig,
  type ListenConfig,
} from 'rxcomm';
import { inprocAddress } from '../helpers/transports';

/** What a JavaScript caller can pass: anything. */
const fromJs = (config: unknown) => config as ConnectConfig & ListenConfig;

describe('options', () => {
  it('should reject a misspelled option at compile time', () => {
    // @ts-expect-error: 'timout' is not an option of connect()
    const typo: ConnectConfig = { timout: 200 };
    // @ts-expect-error: 'requireEncription' is not a security field
    const nested: ListenConfig = { security: { requireEncription: true } };
    expect([typo, nested]).toHaveLength(2);
  });

  it('should throw a ConfigError at once naming the unknown key and the nearest valid one', () => {
    expect(() => connect('tcp://127.0.0.1:1', fromJs({ timout: 200 }))).toThrow(
      new ConfigError("unknown option 'timout' for connect(); did you mean 'timeout'?"),
    );
    expect(() => listen('tcp://127.0.0.1:0', fromJs({ handshakeTimout: 5 }))).toThrow(
      new ConfigError("unknown option 'handshakeTimout' for listen(); did you mean 'handshakeTimeout'?"),
    );
    expect(() => listen('tcp://127.0.0.1:0', fromJs({ readHighWatermark: 5 }))).toThrow(/did you mean 'readHighWaterMark'\?/);
  });

  it('should say where an option of the other function belongs', () => {
    expect(() => connect('tcp://127.0.0.1:1', fromJs({ handshakeTimeout: 5 }))).toThrow(
      new ConfigError("'handshakeTimeout' is an option of listen(), not of connect()"),
    );
    expect(() => listen('tcp://127.0.0.1:0', fromJs({ timeout: 5 }))).toThrow(
      new ConfigError("'timeout' is an option of connect(), not of listen()"),
    );
  });

  it('should check the fields of security too', () => {
    expect(() => connect('tls://127.0.0.1:1', fromJs({ security: { requireEncription: true } }))).toThrow(
      new ConfigError("unknown option 'requireEncription' for security; did you mean 'requireEncryption'?"),
    );
    expect(() => connect('tls://127.0.0.1:1', fromJs({ security: { checkHostname: 'yes' } }))).toThrow(
      new ConfigError("security.checkHostname must be true or false, got a string ('yes')"),
    );
  });

  it.each([
    [{ timeout: '1000' }, "timeout must be a positive number of milliseconds up to 2147483647, got a string ('1000')"],
    [{ timeout: -1 }, 'timeout must be a positive number of milliseconds up to 2147483647, got -1'],
    [{ timeout: Infinity }, 'timeout must be a positive number of milliseconds up to 2147483647, got Infinity'],
    [{ maxMessageSize: null }, 'maxMessageSize must be a positive number, got null'],
    [{ deserialize: 'false' }, "deserialize must be true or false, got a string ('false')"],
    [{ codec: { encode: () => [] } }, 'codec must be a codec (with encode, decode), got an object'],
    [{ random: 0.5 }, 'random must be a function, got 0.5'],
    [{ signal: {} }, 'signal must be an AbortSignal (with addEventListener, removeEventListener), got an object'],
    [[], 'options of connect() must be an object, got an array'],
  ])('should say what was wrong with %j', (config, message) => {
    expect(() => connect('tcp://127.0.0.1:1', fromJs(config))).toThrow(new ConfigError(message));
  });

  it('should keep the default for an option given as undefined', async () => {
    const address = inprocAddress();
    const listener = listen(address, { handshakeTimeout: undefined });
    const serving = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const comm = await firstValueFrom(connect(address, { timeout: undefined, closeTimeout: undefined }));
    await comm.write('ok');
    expect(await comm.read()).toBe('ok');
    await comm.close();
    serving.unsubscribe();
  });

  it("should hand a third-party backend its options through the one declared bag, transportOptions", async () => {
    const seen: BackendOptions[] = [];
    const inproc = getBackend('inproc');
    const backend: Backend = {
      ...inproc,
      connect(location, options) {
        seen.push(options);
        return inproc.connect(location, options);
      },
    };
    registerBackend('bagged', backend);
    const address = inprocAddress();
    const listener = listen(address);
    const serving = listener.subscribe();
    const location = address.slice('inproc://'.length);
    const comm = await firstValueFrom(connect(`bagged://${location}`, { transportOptions: { mtu: 1400 } }));
    expect(seen[0].transportOptions).toEqual({ mtu: 1400 });
    expect(seen[0]).toMatchObject({ deserialize: true, maxMessageSize: 2 ** 30, writeHighWaterMark: 2 ** 20 });
    await comm.close();
    serving.unsubscribe();
  });
});
