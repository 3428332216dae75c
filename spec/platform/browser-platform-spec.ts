/**
 * The browser entry point (lib/browser.ts), loaded on its own as a bundle loads it: the
 * same API as the Node entry point, inproc with the page's identity, `tcp` and `tls`
 * refused with a message that they need Node.js, no discovery of installed backends, and
 * status warnings on the console. (spec/platform/browser-bundle-spec.ts runs the real
 * bundle where Node's globals are absent.)
 */
import { firstValueFrom } from 'rxjs';
import * as api from '../../lib/api';
import * as rxcomm from '../../lib/browser';
import * as testing from '../../lib/testing/browser';

const { connect, getAddressHost, getBackend, listen, registerBackend, UnknownSchemeError } = rxcomm;

const NEEDS_NODE = 'needs Node.js: browsers offer no raw sockets; use ws:// or wss://';

describe('the browser entry point', () => {
  it('should export the same API as the Node entry point', () => {
    let node: object = {};
    jest.isolateModules(() => {
      node = require('../../lib/index');
    });
    expect(Object.keys(rxcomm).sort()).toEqual(Object.keys(node).sort());
    expect(Object.keys(rxcomm).sort()).toEqual(Object.keys(api).sort());
  });

  it('should export the pairs of rxcomm/testing, without createTestCertificates', () => {
    let node: object = {};
    jest.isolateModules(() => {
      node = require('../../lib/testing/index');
    });
    expect(Object.keys(testing).sort()).toEqual(Object.keys(node).filter((name) => name !== 'createTestCertificates').sort());
    expect(Object.keys(testing)).toEqual(expect.arrayContaining(['acceptHandshake', 'createCommPair', 'createConnectionPair']));
  });

  it.each(['tcp', 'tls'])('should refuse %s:// with an UnknownSchemeError saying it needs Node.js', async (scheme) => {
    const refusal = `address scheme '${scheme}' ${NEEDS_NODE}`;
    expect(() => getBackend(scheme)).toThrow(UnknownSchemeError);
    expect(() => getBackend(scheme)).toThrow(refusal);
    const error = await firstValueFrom(connect(`${scheme}://127.0.0.1:1`)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(UnknownSchemeError);
    expect(error).toMatchObject({ code: 'ERR_UNKNOWN_SCHEME', scheme, unavailable: NEEDS_NODE, message: refusal });
  });

  it("should keep Dask's message for an unknown scheme, and not list tcp or tls as known", () => {
    expect(() => getBackend('nope')).toThrow(/^unknown address scheme 'nope' \(known schemes: \[.*'inproc'.*\]\)$/);
    const error = (() => {
      try {
        return getBackend('nope');
      } catch (err) {
        return err as InstanceType<typeof UnknownSchemeError>;
      }
    })();
    expect(error).toBeInstanceOf(UnknownSchemeError);
    expect(error).toMatchObject({ scheme: 'nope', unavailable: undefined });
    expect((error as InstanceType<typeof UnknownSchemeError>).knownSchemes).not.toEqual(expect.arrayContaining(['tcp']));
    expect((error as InstanceType<typeof UnknownSchemeError>).knownSchemes).not.toEqual(expect.arrayContaining(['tls']));
  });

  it("should give inproc addresses the page's identity: 127.0.0.1 and a random id, not a pid", async () => {
    const listener = listen('inproc://', (comm) => {
      comm.read$.subscribe(comm);
    });
    await listener.start();
    const [, id] = /^inproc:\/\/127\.0\.0\.1\/([1-9]\d*)\/\d+$/.exec(listener.contactAddress) ?? [];
    expect(id).toBeDefined();
    expect(Number(id)).not.toBe(process.pid);
    expect(getAddressHost(listener.contactAddress)).toBe('127.0.0.1');
    expect(() => getAddressHost('inproc://127.0.0.1/0/1')).toThrow(
      `inproc address '127.0.0.1/0/1' does not match host ('127.0.0.1') or pid (${id})`,
    );
    const comm = await firstValueFrom(connect(listener.contactAddress));
    await comm.write({ op: 'ping' });
    expect(await comm.read()).toEqual({ op: 'ping' });
    await comm.close();
    listener.stop();
  });

  it('should print unobserved failures with console.warn, not as process warnings', async () => {
    const warn = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
    const emitWarning = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
    try {
      const [a, b] = testing.createCommPair();
      await b.close();
      a.next('nobody reads this'); // an Observer write has nobody to tell it failed
      await new Promise((resolve) => setTimeout(resolve, 10));
      expect(warn).toHaveBeenCalledWith(expect.stringMatching(/^rxcomm comm:write-failed /));
      expect(emitWarning).not.toHaveBeenCalled();
      a.abort();
    } finally {
      warn.mockRestore();
      emitWarning.mockRestore();
    }
  });

  it('should let a registered backend serve a scheme the browser cannot (tcp over a WebSocket proxy, say)', () => {
    registerBackend('tcp', getBackend('inproc'));
    expect(getBackend('tcp')).toBe(getBackend('inproc'));
  });
});
