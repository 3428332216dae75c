/**
 * The package in a browser bundle: a user's app that imports 'rxcomm' and 'rxcomm/testing'
 * is bundled by esbuild for the browser platform from the packed package (as `npm install`
 * puts it), which takes the `browser` export condition, and must need no Node built-in.
 * The bundle then runs in a realm with what a page has and nothing of Node's (no `Buffer`,
 * no `process`, no `require`), and passes messages there.
 */
import { webcrypto } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as vm from 'node:vm';
import * as esbuild from 'esbuild';
import type { BuildFailure, BuildResult, Message } from 'esbuild';
import { ensureBuilt, installPacked } from '../package/build';

/** A user's app: it runs the checks and leaves what it saw on `globalThis.__report` (a Promise). */
const APP = `
import { connect, daskCodec, listen, UnknownSchemeError } from 'rxcomm';
import { createCommPair } from 'rxcomm/testing';

/** The first value of an Observable (the app has no rxjs of its own to import). */
function first(observable) {
  return new Promise((resolve, reject) => {
    observable.subscribe({ next: resolve, error: reject, complete: () => reject(new Error('no value')) });
  });
}

function describeBytes(bytes) {
  return {
    isUint8Array: bytes instanceof Uint8Array,
    constructorName: bytes.constructor.name,
    length: bytes.length,
    allSevens: bytes.every((b) => b === 7),
  };
}

function describeMessage(message) {
  return {
    keys: message.keys instanceof Map ? [...message.keys.entries()] : String(message.keys),
    big: typeof message.big === 'bigint' ? String(message.big) + 'n' : typeof message.big,
    data: describeBytes(message.data),
  };
}

async function errorOf(observable) {
  try {
    await first(observable);
    return 'no error';
  } catch (err) {
    return { name: err.name, code: err.code, message: err.message, isUnknownSchemeError: err instanceof UnknownSchemeError };
  }
}

async function run() {
  const report = {};

  const [a, b] = createCommPair();
  await a.write({ op: 'ping', n: 1 });
  report.pair = await b.read();
  await a.close();
  await b.close();

  const message = { op: 'echo', keys: new Map([[1, 'one'], [2, 'two']]), big: 2n ** 60n, data: new Uint8Array(256 * 1024).fill(7) };

  const listener = listen('inproc://', (comm) => { comm.read$.subscribe(comm); });
  await listener.start();
  report.contactAddress = listener.contactAddress;
  const comm = await first(connect(listener.contactAddress));
  await comm.write(message);
  report.inproc = describeMessage(await comm.read());
  await comm.close();
  listener.stop();

  const codec = daskCodec({ deserialize: false });
  const frames = codec.encode(message).map((frame) => new Uint8Array(frame)); // as received: copies
  report.codec = describeMessage(codec.decode(frames));

  report.tcp = await errorOf(connect('tcp://127.0.0.1:1'));
  report.tls = await errorOf(connect('tls://127.0.0.1:1'));
  report.unknown = await errorOf(connect('nope://127.0.0.1:1'));
  return report;
}

globalThis.__report = run().catch((err) => ({ failed: String(err && err.stack || err) }));
`;

/** A realm with what a page offers the package, and nothing of Node's. */
function pageContext(): vm.Context {
  const context = vm.createContext({});
  // Bytes the page makes are its own realm's, as in a browser (Node's TextEncoder would make ours).
  const page = vm.runInContext('({ Uint8Array })', context) as { Uint8Array: Uint8ArrayConstructor };
  const encoder = new TextEncoder();
  class PageTextEncoder {
    readonly encoding = 'utf-8';
    encode(text = ''): Uint8Array {
      return new page.Uint8Array(encoder.encode(text));
    }
    encodeInto(text: string, into: Uint8Array) {
      return encoder.encodeInto(text, into);
    }
  }
  Object.assign(context, {
    TextEncoder: PageTextEncoder,
    TextDecoder,
    queueMicrotask,
    setTimeout,
    clearTimeout,
    setInterval,
    clearInterval,
    crypto: { getRandomValues: <T extends ArrayBufferView>(array: T): T => webcrypto.getRandomValues(array as never) },
    console,
  });
  return context;
}

const format = (messages: Message[]) =>
  messages.map((m) => `${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}${m.notes.map((n) => `\n  ${n.text}`).join('')}`);

describe('a browser bundle of the package', () => {
  let project: string;
  let built: BuildResult<{ write: false; metafile: true }> | undefined;
  let failure: string[] = [];

  beforeAll(async () => {
    await ensureBuilt();
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-browser-'));
    installPacked(project);
    fs.writeFileSync(path.join(project, 'app.mjs'), APP);
    try {
      built = await esbuild.build({
        absWorkingDir: project,
        entryPoints: ['app.mjs'],
        bundle: true,
        platform: 'browser',
        format: 'iife',
        write: false,
        metafile: true,
        logLevel: 'silent',
      });
    } catch (err) {
      failure = format((err as BuildFailure).errors ?? []);
      if (failure.length === 0) throw err;
    }
  }, 120_000);

  afterAll(() => {
    if (project) fs.rmSync(project, { recursive: true, force: true });
  });

  it('should build with no Node built-in (esbuild refuses them for the browser)', () => {
    expect(failure).toEqual([]);
    expect(built?.errors).toEqual([]);
  });

  it('should fail to bundle a Node built-in for the browser (so the build above proves there is none)', async () => {
    const attempt = esbuild.build({
      stdin: { contents: "import * as os from 'node:os'; console.log(os.hostname());", resolveDir: project },
      bundle: true,
      platform: 'browser',
      write: false,
      logLevel: 'silent',
    });
    await expect(attempt).rejects.toThrow(/node:os/);
  });

  it('should take the browser entry points, and leave Node-only code out', () => {
    const inputs = Object.keys(built!.metafile.inputs);
    const ours = inputs.filter((f) => f.startsWith('node_modules/rxcomm/'));
    expect(ours).toEqual(expect.arrayContaining(['node_modules/rxcomm/dist/browser.js', 'node_modules/rxcomm/dist/testing/browser.js']));
    const nodeOnly = ours.filter((f) =>
      /\/dist\/(index|platform\/(node|discover)|testing\/(index|certificates)|transports\/(tcp|tls|socket|ws\/node)\/.*)\.js$/.test(f),
    );
    expect(nodeOnly).toEqual([]);
    expect(inputs.filter((f) => /(^|\/)node_modules\/ws\//.test(f))).toEqual([]);

    const code = built!.outputFiles[0].text;
    expect(code.match(/["']node:[\w/]+["']/g) ?? []).toEqual([]);
    for (const name of ['createTestCertificates', 'tcpBackend', 'tlsBackend', 'firstExternalIpv4', 'emitWarning']) {
      expect([name, code.includes(name)]).toEqual([name, false]);
    }
  });

  describe('run where there is no Buffer, process or require', () => {
    let report: Record<string, unknown>;
    let globals: string[];

    beforeAll(async () => {
      if (!built) return;
      const context = pageContext();
      // Asked outside the bundle: esbuild rewrites the bundle's own mentions of `require`.
      globals = vm.runInContext('[typeof Buffer, typeof process, typeof require, typeof global]', context);
      vm.runInContext(built.outputFiles[0].text, context, { filename: 'bundle.js' });
      report = JSON.parse(JSON.stringify(await context.__report));
    }, 30_000);

    it("should run where the page has none of Node's globals", () => {
      expect([...globals]).toEqual(['undefined', 'undefined', 'undefined', 'undefined']);
      expect(report).toBeDefined();
      expect(report.failed).toBeUndefined();
    });

    it('should pass a message over a comm pair of rxcomm/testing', () => {
      expect(report.pair).toEqual({ op: 'ping', n: 1 });
    });

    it("should listen on inproc:// with the page's identity (127.0.0.1 and a random id)", () => {
      expect(report.contactAddress).toMatch(/^inproc:\/\/127\.0\.0\.1\/[1-9]\d*\/\d+$/);
    });

    const expected = {
      keys: [[1, 'one'], [2, 'two']],
      big: `${2n ** 60n}n`,
      data: { isUint8Array: true, constructorName: 'Uint8Array', length: 256 * 1024, allSevens: true },
    };

    it('should round-trip a message with Map keys, a bigint and 256 KiB of bytes over inproc', () => {
      expect(report.inproc).toEqual(expected);
    });

    it("should round-trip the same message through Dask's codec, bytes coming back a Uint8Array", () => {
      expect(report.codec).toEqual(expected);
    });

    it('should refuse tcp:// and tls:// with an UnknownSchemeError saying they need Node.js', () => {
      for (const scheme of ['tcp', 'tls']) {
        expect(report[scheme]).toEqual({
          name: 'UnknownSchemeError',
          code: 'ERR_UNKNOWN_SCHEME',
          message: `address scheme '${scheme}' needs Node.js: browsers offer no raw sockets; use ws:// or wss://`,
          isUnknownSchemeError: true,
        });
      }
    });

    it("should keep Dask's message for a scheme nobody knows", () => {
      expect(report.unknown).toEqual(
        expect.objectContaining({
          name: 'UnknownSchemeError',
          message: expect.stringMatching(/^unknown address scheme 'nope' \(known schemes: \[.*'inproc'.*\]\)$/),
          isUnknownSchemeError: true,
        }),
      );
      expect((report.unknown as { message: string }).message).not.toMatch(/'tcp'|'tls'/);
    });
  });
});
