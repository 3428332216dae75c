/**
 * The package in a real browser: headless Chromium, driven by puppeteer-core. The page
 * (page.ts, with messages.ts) is bundled by esbuild for the browser platform from the
 * packed package, as a user's bundler would from `npm install rxcomm` (so through the
 * `browser` export condition), and served from its own origin by a node:http server.
 * In the page, rxcomm connects over ws:// to a Node listener that allows that origin and
 * round-trips the message set (strings, Map keys, 1 MiB of bytes, bigints, floats), runs
 * inproc and a comm pair of rxcomm/testing, is refused by a listener that does not allow
 * the origin, and refuses tcp:// as needing Node.js. The page logs no error but those
 * refusals. The Node side checks what its listeners saw.
 *
 * Chromium is found at $CHROMIUM_PATH, $PUPPETEER_EXECUTABLE_PATH or /usr/bin/chromium
 * (Debian's `chromium`, which .ci/run installs); without it these specs fail, never skip.
 * The tests share one page, in order: the last one checks the console of all of them.
 */
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import type { BuildFailure, Metafile } from 'esbuild';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { ReplaySubject, type Subscription, filter, firstValueFrom, timeout } from 'rxjs';
import { type Comm, type CommStatus, daskCodec, type Listener, listen, status$, toSerialize } from 'rxcomm';
import { startBridge } from '../helpers/cli';
import { daskAvailability, startServer } from '../interop/dask-peer';
import { ensureBuilt, installPacked, root } from '../package/build';
import { BIG, BINARY_LENGTH, binaryPattern, compressiblePattern, describeValue, fnv1a, messageSet, type Described } from './messages';
import type { PageTests } from './page';

const CHROMIUM = process.env.CHROMIUM_PATH || process.env.PUPPETEER_EXECUTABLE_PATH || '/usr/bin/chromium';
/** How long the Node side waits for an event the page caused. */
const WAIT_MS = 20_000;

/** The page's HTML: the bundle as a module, and no favicon request (its 404 would be a console error). */
const INDEX_HTML = `<!doctype html>
<html><head><meta charset="utf-8"><title>rxcomm in a browser</title><link rel="icon" href="data:,"></head>
<body><script type="module" src="/app.js"></script></body></html>
`;

/** A comm the Node echo listener accepted, with what it read and how its reading ended. */
interface NodeComm {
  comm: Comm;
  messages: unknown[];
  ended: Promise<string>;
}

function chromiumOrFail(): string {
  try {
    fs.accessSync(CHROMIUM, fs.constants.X_OK);
    return CHROMIUM;
  } catch {
    throw new Error(
      `Chromium is needed to run spec/browser and was not found at ${CHROMIUM}: install Debian's chromium ` +
        '(`apt-get install chromium`, as .ci/run does) or set CHROMIUM_PATH to a Chrome or Chromium binary',
    );
  }
}

/** Bundles the page from the packed package in `project`, as a user's build would. */
async function bundlePage(project: string): Promise<{ code: string; metafile: Metafile }> {
  const app = path.join(project, 'src');
  fs.mkdirSync(app);
  for (const file of ['page.ts', 'messages.ts']) fs.copyFileSync(path.join(__dirname, file), path.join(app, file));
  try {
    const built = await esbuild.build({
      absWorkingDir: project,
      entryPoints: ['src/page.ts'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
    });
    return { code: built.outputFiles[0].text, metafile: built.metafile };
  } catch (err) {
    const errors = (err as BuildFailure).errors ?? [];
    if (errors.length === 0) throw err;
    throw new Error(
      `esbuild could not bundle the page for the browser:\n${errors
        .map((m) => `${m.location ? `${m.location.file}:${m.location.line}: ` : ''}${m.text}`)
        .join('\n')}`,
    );
  }
}

/** Serves the page and its bundle on 127.0.0.1; resolves with the server and its origin. */
async function servePage(bundle: string): Promise<{ server: http.Server; origin: string }> {
  const server = http.createServer((request, response) => {
    const file = new URL(request.url ?? '/', 'http://page').pathname;
    if (request.method === 'GET' && file === '/') {
      response.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
      response.end(INDEX_HTML);
    } else if (request.method === 'GET' && file === '/app.js') {
      response.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' });
      response.end(bundle);
    } else {
      response.writeHead(404, { 'Content-Type': 'text/plain' });
      response.end('not found\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return { server, origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/** `promise`'s value, or `fallback` after `ms` (the timer is cleared either way, so none outlives the spec). */
async function within<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** `compressiblePattern()` as a payload compressed with `format`, kept as it is (`deserialize: false`) to be forwarded. */
function compressedElsewhere(format: string): unknown {
  const frames = daskCodec({ deserialize: true }).encode({ data: toSerialize(compressiblePattern()) }, { compression: format, maxMessageSize: 1 << 30 });
  return (daskCodec({ deserialize: false }).decode(frames) as { data: unknown }).data;
}

/** The description of the message set as Node makes it: what both ends must see. */
const expectedMessages = (): Described[] => messageSet().map(describeValue);

describe('rxcomm in a browser (headless Chromium)', () => {
  let project: string | undefined;
  let bundle: { code: string; metafile: Metafile };
  let pageServer: http.Server | undefined;
  let origin: string;
  let browser: Browser | undefined;
  let page: Page;

  const statuses = new ReplaySubject<CommStatus>();
  let statusSubscription: Subscription | undefined;
  let allowing: Listener | undefined;
  let refusing: Listener | undefined;
  let compressing: Listener | undefined;
  const nodeComms: NodeComm[] = [];
  const refusedComms: Comm[] = [];

  /** The page's errors: uncaught exceptions, console.error and the browser's own error logs. */
  const pageErrors: string[] = [];
  const consoleErrors: string[] = [];
  const rxcommWarnings: string[] = [];

  /** Calls one of the page's test functions. */
  function inPage<K extends keyof PageTests>(name: K, ...args: Parameters<PageTests[K]>): Promise<Awaited<ReturnType<PageTests[K]>>> {
    return page.evaluate(
      (fn: string, fnArgs: unknown[]) =>
        (globalThis as unknown as { rxcommPage: Record<string, (...a: unknown[]) => Promise<unknown>> }).rxcommPage[fn](...fnArgs),
      name,
      args as unknown[],
    ) as Promise<Awaited<ReturnType<PageTests[K]>>>;
  }

  beforeAll(async () => {
    statusSubscription = status$.subscribe(statuses);
    const executablePath = chromiumOrFail();

    await ensureBuilt();
    project = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-browser-page-'));
    installPacked(project);
    bundle = await bundlePage(project);
    ({ server: pageServer, origin } = await servePage(bundle.code));

    // An echo listener that allows the page's origin, recording what it reads.
    allowing = listen(
      'ws://127.0.0.1:0',
      (comm) => {
        const messages: unknown[] = [];
        const ended = new Promise<string>((resolve) => {
          comm.read$.subscribe({
            next: (message) => {
              messages.push(message);
              comm.next(message);
            },
            complete: () => {
              resolve('complete');
              comm.complete();
            },
            error: (err: unknown) => {
              resolve(`error ${String(err)}`);
              comm.error(err);
            },
          });
        });
        nodeComms.push({ comm, messages, ended });
      },
      { allowedOrigins: [origin] },
    );
    // The same with the default settings: the page's origin is neither listed nor its own.
    refusing = listen('ws://127.0.0.1:0', (comm) => {
      refusedComms.push(comm);
      comm.read$.subscribe(comm);
    });
    // lz4 advertised: it echoes a payload compressed, and on request sends one payload
    // compressed in each format whatever was negotiated (a scheduler forwards them so).
    compressing = listen(
      'ws://127.0.0.1:0',
      (comm) => {
        comm.read$.subscribe(async (message) => {
          const { op, data } = message as { op: string; data: Uint8Array };
          if (op === 'echo') {
            const echo = { op, data: toSerialize(data), wireSize: 0 };
            echo.wireSize = await comm.write(echo);
          } else {
            for (const format of ['lz4', 'zstd', 'snappy', 'zlib']) await comm.write({ op: format, data: compressedElsewhere(format) });
          }
        });
      },
      { allowedOrigins: [origin], compression: 'lz4' },
    );
    await Promise.all([allowing.start(), refusing.start(), compressing.start()]);
    // zstd's encoder (WebAssembly) loads with the first listen that names it.
    await listen('inproc://', { compression: 'zstd' }).start().then((zstd) => zstd.stop());

    browser = await puppeteer.launch({
      executablePath,
      headless: true,
      args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run', '--no-default-browser-check'],
      timeout: 60_000,
      protocolTimeout: 120_000,
    });
    page = await browser.newPage();
    page.on('pageerror', (error) => pageErrors.push(String((error as Error)?.stack ?? error)));
    page.on('console', (message) => {
      const where = message.location()?.url ?? '';
      if (message.type() === 'error') consoleErrors.push(`${message.text()}${where ? ` (${where})` : ''}`);
      if (message.type() === 'warn' && message.text().startsWith('rxcomm ')) rxcommWarnings.push(message.text());
    });
    const response = await page.goto(`${origin}/`, { waitUntil: 'load', timeout: 60_000 });
    if (!response?.ok()) throw new Error(`the page did not load: HTTP ${response?.status()} from ${origin}/`);
    await page.waitForFunction(() => (globalThis as { rxcommPage?: unknown }).rxcommPage !== undefined, { timeout: 30_000 });
  }, 240_000);

  afterAll(async () => {
    if (browser) {
      const pid = browser.process()?.pid;
      const closed = browser.close().then(
        () => true,
        () => false,
      );
      const inTime = await within(closed, 15_000, false);
      if (!inTime && pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
    }
    allowing?.stop();
    refusing?.stop();
    compressing?.stop();
    for (const { comm } of nodeComms) comm.abort();
    for (const comm of refusedComms) comm.abort();
    if (pageServer) {
      pageServer.closeAllConnections();
      await new Promise((resolve) => pageServer!.close(resolve));
    }
    statusSubscription?.unsubscribe();
    if (project) fs.rmSync(project, { recursive: true, force: true });
  }, 60_000);

  /** The first status event matching `predicate`, seen since beforeAll or within WAIT_MS. */
  function statusEvent(predicate: (event: CommStatus) => boolean, what: string): Promise<CommStatus> {
    return firstValueFrom(
      statuses.pipe(
        filter(predicate),
        timeout({ first: WAIT_MS, with: () => Promise.reject(new Error(`no status event within ${WAIT_MS} ms: ${what}`)) }),
      ),
    );
  }

  it('should bundle the page from the packed package through its browser entry points, with nothing of Node', () => {
    const inputs = Object.keys(bundle.metafile.inputs);
    const ours = inputs.filter((f) => f.startsWith('node_modules/rxcomm/'));
    expect(ours).toEqual(expect.arrayContaining(['node_modules/rxcomm/dist/browser.js', 'node_modules/rxcomm/dist/testing/browser.js']));
    // Not the Node entry points, nor what only they load.
    const nodeOnly = ours.filter((f) =>
      /\/dist\/(index|platform\/(node|discover)|testing\/(index|certificates)|transports\/(tcp|tls|socket|ws\/node)\/.*)\.js$/.test(f),
    );
    expect(nodeOnly).toEqual([]);
    // Nothing from the repository's own sources or build: only the installed package.
    const fromRepository = inputs
      .map((f) => path.resolve(project!, f))
      .filter((f) => ['lib', 'dist'].some((dir) => f.startsWith(path.join(root, dir) + path.sep)));
    expect(fromRepository).toEqual([]);
    expect(bundle.code.match(/["']node:[\w/]+["']/g) ?? []).toEqual([]);
    for (const name of ['tcpBackend', 'tlsBackend', 'createTestCertificates', 'WebSocketServer']) {
      expect([name, bundle.code.includes(name)]).toEqual([name, false]);
    }
  });

  it('should load the page from its own origin, where there is no Buffer nor process', async () => {
    expect(await inPage('environment')).toEqual({ origin, nodeGlobals: ['undefined', 'undefined'] });
  });

  describe('over ws:// to a Node listener that allows the page’s origin', () => {
    let report: Awaited<ReturnType<PageTests['ws']>>;

    beforeAll(async () => {
      report = await inPage('ws', allowing!.contactAddress);
    }, 60_000);

    it('should round-trip the message set: strings, int-keyed Map, nested values, bigints, floats, constants', () => {
      const expected = expectedMessages();
      expect(report.sent).toEqual(expected);
      expect(report.received).toEqual(expected);
      // Spelled out, so that a describer that loses kinds cannot pass the comparison above.
      expect(report.received[1]).toBe('non-ASCII: ünïcødé, 日本語, שלום, emoji 🚀🧪 (astral)');
      expect(report.received[2]).toEqual({
        object: {
          op: 'int-keys',
          keys: {
            map: [
              [{ number: '1' }, 'one'],
              [{ number: '2' }, 'two'],
              [{ number: '-7' }, 'minus seven'],
              [{ number: String(2 ** 40) }, 'two to the 40'],
            ],
          },
        },
      });
      expect(report.received[5]).toEqual({
        object: { op: 'bigint', big: { bigint: String(BIG) }, negative: { bigint: String(-BIG) }, safe: { number: '9007199254740991' } },
      });
      expect(report.received[6]).toEqual({
        object: { op: 'floats', values: { array: ['0.5', '-1.25', String(Math.PI), '0.1', '1e+300', '-2.5e-300'].map((n) => ({ number: n })) } },
      });
    });

    it('should bring the 1 MiB of bytes back as a Uint8Array, every byte in place', () => {
      expect(report.binary).toEqual({ constructorName: 'Uint8Array', isUint8Array: true, length: BINARY_LENGTH, firstMismatch: -1 });
      expect(report.received[4]).toEqual({ object: { op: 'binary', data: { bytes: BINARY_LENGTH, fnv1a: fnv1a(binaryPattern()) } } });
    });

    it('should close cleanly: close() resolves and read$ completes', () => {
      expect(report.ended).toBe('complete');
      expect(report.closed).toBe(true);
      expect(report.peerAddress).toBe(allowing!.contactAddress);
      expect(report.localAddress).toMatch(/^ws:\/\/127\.0\.0\.1:\d+$/); // the page's host; a page learns no port
      expect(report.remoteInfo).toEqual(
        expect.objectContaining({
          object: expect.objectContaining({ compression: null, 'pickle-protocol': { number: '5' } }),
        }),
      );
    });

    it('should be seen by the Node listener: one comm, the page’s handshake, the message set decoded, a clean end', async () => {
      expect(nodeComms).toHaveLength(1);
      const [{ comm, messages, ended }] = nodeComms;
      expect(comm.peerAddress).toMatch(/^ws:\/\/127\.0\.0\.1:[1-9]\d*$/);
      expect(comm.remoteInfo).toMatchObject({ compression: null, 'pickle-protocol': 5 });
      expect(messages.map(describeValue)).toEqual(expectedMessages());
      const binary = (messages[4] as { data: Uint8Array }).data;
      expect(Object.prototype.toString.call(binary)).toBe('[object Uint8Array]');
      expect(Buffer.from(binary.buffer, binary.byteOffset, binary.byteLength).equals(Buffer.from(binaryPattern()))).toBe(true);
      expect(typeof (messages[5] as { big: unknown }).big).toBe('bigint');
      expect(await within(ended, WAIT_MS, 'not ended')).toBe('complete');
    });
  });

  it('should round-trip the message set over inproc:// within the page', async () => {
    const report = await inPage('inproc');
    expect(report.contactAddress).toMatch(/^inproc:\/\/127\.0\.0\.1\/[1-9]\d*\/\d+$/);
    expect(report.peerAddress).toBe(report.contactAddress);
    expect(report.sent).toEqual(expectedMessages());
    expect(report.received).toEqual(expectedMessages());
    expect(report.binary).toEqual({ constructorName: 'Uint8Array', isUint8Array: true, length: BINARY_LENGTH, firstMismatch: -1 });
    expect([report.ended, report.closed, report.echoEnded]).toEqual(['complete', true, 'complete']);
  });

  it('should round-trip the message set over a comm pair of rxcomm/testing', async () => {
    const report = await inPage('commPair');
    expect(report.received).toEqual(expectedMessages());
    expect(report.binary).toEqual({ constructorName: 'Uint8Array', isUint8Array: true, length: BINARY_LENGTH, firstMismatch: -1 });
    expect([report.ended, report.closed, report.echoClosed]).toEqual(['complete', true, true]);
  });

  it('should not connect to a listener that does not allow the page’s origin, which reports the refusal', async () => {
    const result = await inPage('connectError', refusing!.contactAddress, 2000);
    // Browsers hide the 403 (close code 1006): connect() retries until its timeout.
    expect(result).toEqual({ error: expect.objectContaining({ isCommClosedError: true }) });
    const { error } = result as { error: { name: string } };
    expect(['ConnectTimeoutError', 'CommClosedError']).toContain(error.name);

    const rejected = await statusEvent(
      (e) => e.type === 'listen:rejected' && e.listenAddress === refusing!.listenAddress,
      `listen:rejected on ${refusing!.listenAddress}`,
    );
    expect(rejected).toMatchObject({ type: 'listen:rejected', peerAddress: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/) });
    const message = (rejected as { error: Error }).error.message;
    expect(message).toContain(`origin ${origin} refused (403)`);
    expect(refusedComms).toEqual([]);
  });

  it('should compress with lz4 both ways, read every format with its pure-JS decoders, and refuse to choose zstd', async () => {
    const report = await inPage('compression', compressing!.contactAddress);
    expect(report.negotiated).toBe('lz4');
    expect(report.wireSize).toBeLessThan(BINARY_LENGTH / 10);
    expect(report.echo).toEqual({ firstMismatch: -1, wireSize: expect.any(Number) });
    expect(report.echo.wireSize).toBeLessThan(BINARY_LENGTH / 10);
    const intact = { isUint8Array: true, firstMismatch: -1 };
    expect(report.formats).toEqual({ lz4: intact, zstd: intact, snappy: intact, zlib: intact });
    expect(report.zstdRefused).toBe("compression 'zstd' cannot compress on this platform (it reads zstd payloads, but has no zstd encoder)");
  }, 60_000);

  // Dask's own ws listener refuses other origins: a page reaches a scheduler through the bridge.
  (daskAvailability().available || process.env.CI ? it : it.skip)(
    "should get a real Dask scheduler's identity through `rxcomm bridge ws:// tcp://`",
    async () => {
      const scheduler = await startServer(['scheduler']);
      const { bridge, address } = await startBridge('ws://127.0.0.1:0', scheduler.ready.address, ['--allow-origin', origin]);
      try {
        const identity = await inPage('schedulerIdentity', address);
        // The page's handshake is with the bridge (rxcomm: no compression); the bridge's with Dask.
        expect(identity).toEqual({ type: 'Scheduler', id: scheduler.ready.id, remoteCompression: null });
      } finally {
        expect(await bridge.interrupt()).toBe(0);
        await scheduler.peer.stop();
      }
      expect(bridge.stderr).toContain('bridged 1 comm (0 could not reach');
      expect(bridge.stderr).toContain('1 message to the target, 1 back');
    },
    90_000,
  );

  it('should refuse tcp:// with an UnknownSchemeError saying it needs Node.js', async () => {
    expect(await inPage('connectError', 'tcp://127.0.0.1:1', 2000)).toEqual({
      error: {
        name: 'UnknownSchemeError',
        code: 'ERR_UNKNOWN_SCHEME',
        message: expect.stringMatching(/^address scheme 'tcp' needs Node\.js\b/),
        isCommClosedError: false,
        isUnknownSchemeError: true,
        cause: null,
      },
    });
  });

  // Last: it reads the console of every test above.
  it('should log no error in the page but the browser’s own for the refused origin, and no rxcomm warning', () => {
    expect(pageErrors).toEqual([]);
    const refusedUrl = `${refusing!.contactAddress}/`;
    const unexpected = consoleErrors.filter((line) => !(line.includes(refusedUrl) && /\b403\b/.test(line)));
    expect(unexpected).toEqual([]);
    expect(rxcommWarnings).toEqual([]);
  });
});
