/**
 * The protocol layer runs where there is no Node: it is bundled for the browser with
 * esbuild (which refuses any Node built-in on that platform) and run in a `node:vm`
 * context that has only the language's built-ins plus TextEncoder and TextDecoder, as a
 * browser page would: no Buffer, no process, no require. The checks themselves live in
 * no-buffer-probes.ts, bundled with it; they run there and under Node, and the two
 * reports must agree, down to the bytes written and the values decoded (only the class of
 * the byte arrays differs: Buffer on Node, Uint8Array in the bundle).
 */
import { buildSync } from 'esbuild';
import { constants as bufferConstants } from 'node:buffer';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as vm from 'node:vm';
import { packMessage } from '../../lib/protocol';
import { golden, GOLDEN_HANDSHAKE, GOLDEN_IDENTITY_REPLY } from '../fixtures/golden';
import * as probes from './no-buffer-probes';

const ROOT = join(__dirname, '../..');
const GLOBAL_NAME = 'rxcommProtocol';
/** All of lib/protocol's index, and the probes. */
const ENTRY = `export * from './lib/protocol/index.ts';\nexport * as probes from './spec/protocol/no-buffer-probes.ts';\n`;

function bundle(contents: string, define?: Record<string, string>): string {
  const result = buildSync({
    stdin: { contents, resolveDir: ROOT, sourcefile: 'no-buffer-entry.ts', loader: 'ts' },
    bundle: true,
    platform: 'browser', // also picks msgpackr's `browser` export (index.js)
    format: 'iife',
    globalName: GLOBAL_NAME,
    target: 'es2022',
    write: false,
    logLevel: 'silent',
    define,
  });
  return result.outputFiles[0].text;
}

/** The bundle's text by the source module each part came from (esbuild marks them `// path`). */
function modules(text: string): Map<string, string> {
  const parts = new Map<string, string>();
  let current = '(prologue)';
  for (const line of text.split('\n')) {
    const marker = /^\s*\/\/ ((?:[\w@.-]+\/)*[\w@.-]+\.(?:ts|js|mjs|cjs))$/.exec(line);
    if (marker !== null) current = marker[1];
    else parts.set(current, `${parts.get(current) ?? ''}${line}\n`);
  }
  return parts;
}

/** A plain-data report from both sides: JSON, because values do not compare across realms. */
const asData = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

describe('the protocol layer without Buffer (bundled for the browser, run in a vm context)', () => {
  let context: vm.Context;
  /** Calls `probes.<call>` in the context; `call` is JavaScript, its arguments literals. */
  const inContext = <T>(call: string): T =>
    JSON.parse(vm.runInContext(`JSON.stringify(${GLOBAL_NAME}.probes.${call})`, context) as string) as T;

  beforeAll(() => {
    // A fresh realm has only the language's built-ins. Text codecs are the web platform's:
    // lend Node's (they accept the context's typed arrays).
    context = vm.createContext({ TextEncoder, TextDecoder });
    vm.runInContext(bundle(ENTRY), context, { filename: 'rxcomm-protocol.browser.js' });
  });

  it('should bundle for the browser, where a Node built-in fails the build', () => {
    expect(() => bundle(`import { constants } from 'buffer';\nexport const max = constants.MAX_LENGTH;\n`)).toThrow(/buffer/);
    expect(vm.runInContext(`Object.keys(${GLOBAL_NAME}).sort()`, context)).toEqual(
      expect.arrayContaining(['FrameParser', 'FrameWriter', 'daskCodec', 'packMessage', 'unpackMessage']),
    );
  });

  it('should reference no Node global in lib/, and Buffer in msgpackr only behind a typeof check', () => {
    // `define` renames exactly the free references to these globals (not properties such as
    // `globalThis.Buffer`, not strings or comments), so they can be found in the text.
    const mark = (name: string): string => `NODE_GLOBAL_${name}`;
    const names = ['Buffer', 'process', 'require', 'global', 'setImmediate', '__dirname'];
    const text = bundle(ENTRY, Object.fromEntries(names.map((name) => [name, mark(name)])));
    const parts = modules(text);
    expect([...parts.keys()]).toEqual(expect.arrayContaining(['lib/protocol/bytes.ts', 'node_modules/msgpackr/unpack.js']));

    const references = (code: string): number[] => [...code.matchAll(/NODE_GLOBAL_(\w+)/g)].map((match) => match.index);
    for (const [source, code] of parts) {
      if (source.startsWith('lib/')) {
        expect({ source, references: references(code).map((at) => code.slice(at, at + 30)) }).toEqual({ source, references: [] });
        continue;
      }
      // msgpackr (pack.js, unpack.js) tests `typeof Buffer !== 'undefined'` (as `hasNodeBuffer`
      // in pack.js) and uses Buffer only on that branch: acceptable, as it never runs without
      // one. Every reference must be that test or follow one closely.
      for (const at of references(code)) {
        const found = code.slice(at, at + 30);
        const before = code.slice(Math.max(0, at - 200), at);
        const guarded =
          /typeof $/.test(before) || before.includes(`typeof ${mark('Buffer')} !== "undefined"`) || before.includes('hasNodeBuffer');
        expect({ source, found, guarded: guarded && found.startsWith(mark('Buffer')) }).toEqual({ source, found, guarded: true });
      }
    }
  });

  it('should run where there is no Buffer, process or require', () => {
    expect(vm.runInContext('[typeof Buffer, typeof globalThis.Buffer, typeof process, typeof require]', context)).toEqual([
      'undefined',
      'undefined',
      'undefined',
      'undefined',
    ]);
    expect(inContext('environment()')).toEqual({ bufferGlobal: 'undefined', hasNodeBuffer: false, maxByteLength: 2 ** 31 - 1 });
    expect(asData(probes.environment())).toEqual({
      bufferGlobal: 'function',
      hasNodeBuffer: true,
      maxByteLength: bufferConstants.MAX_LENGTH,
    });
  });

  it('should encode and decode every kind of message as on Node, bins as Uint8Array views', () => {
    const browser = inContext<probes.CodecReport>('codecRoundTrip()');
    const node = asData(probes.codecRoundTrip());

    const messageCount = node.encoded.length;
    expect(node.piecesMatch).toEqual(Array(messageCount).fill(true));
    expect(node.reencoded).toEqual(node.encoded);
    expect(node.binClasses.length).toBeGreaterThan(10);
    // On Node every decoded bin is a Buffer; the frames of a payload are the frames given to
    // `decode`, here the Pickled's out-of-band frame, a Uint8Array passed through by reference
    // by encode (once per decoding: opaque, then deserialized).
    expect(node.binClasses.filter((name) => name !== 'Buffer')).toEqual(['Uint8Array', 'Uint8Array']);
    expect(node.packClass).toBe('Buffer');
    expect(node.binIsView).toBe(true);

    expect(browser.binClasses).toEqual(node.binClasses.map(() => 'Uint8Array'));
    expect(browser.packClass).toBe('Uint8Array');
    expect({ ...browser, binClasses: [], packClass: '' }).toEqual({ ...node, binClasses: [], packClass: '' });
  });

  it("should read Python's lz4, zstd, snappy and zlib with the pure decoders, write lz4, snappy and zlib, and refuse bad frames, as on Node", () => {
    const python = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'python-compression.json'), 'utf8')) as {
      formats: Record<string, Record<string, string>>;
    };
    const browser = inContext<probes.CompressionReport>(`compression(${JSON.stringify(python.formats)})`);
    const node = asData(probes.compression(python.formats));
    expect(browser).toEqual(node);
    const zeros = '00'.repeat(20000);
    for (const format of ['lz4', 'zstd', 'snappy', 'zlib']) {
      expect(node.decoded[`${format}/zeros-20000`]).toBe(zeros);
      expect(node.decoded[`${format}/ramp-256`]).toBe(Buffer.from(Array.from({ length: 256 }, (_, i) => i)).toString('hex'));
      expect(node.decoded[`${format}/empty`]).toBe('');
      expect(node.decoded[`${format}/text-30000`]).toMatch(/^726f772030/); // "row 0"
    }
    for (const format of ['lz4', 'snappy', 'zlib']) {
      expect(node.roundTrips[format]).toEqual({ labelled: format, intact: true, frameBytes: expect.any(Number) });
      expect(node.roundTrips[format].frameBytes).toBeLessThan(300_000 * 0.7);
    }
    expect(node.refused).toEqual({
      'lz4 size above the limit': 'ProtocolError: an lz4 payload declares 4294967295 bytes, above the limit of 1073741824',
      'lz4 short of its size': 'ProtocolError: an lz4 payload declares 20001 bytes but holds 20000',
      'snappy short of its size': expect.stringMatching(/^ProtocolError: a snappy payload declares \d+ bytes but holds/),
      'zlib bomb': 'ProtocolError: a zlib payload inflates past the limit of 10000 bytes',
      'zstd truncated': expect.stringMatching(/^ProtocolError: a zstd payload/),
    });
  });

  it('should encode strings to the same UTF-8 through TextEncoder as through Buffer, lone surrogates as U+FFFD', () => {
    const strings = ['héllo ✓ 🎉', '\ud800', 'a\udc00b', `${'ü'.repeat(70)}\ud83d`, `${'z'.repeat(100)}\udfff${'€'.repeat(30)}`];
    const literal = JSON.stringify(strings);
    const browser = vm.runInContext(
      `${literal}.map((s) => Array.from(${GLOBAL_NAME}.packMessage(s), (b) => b.toString(16).padStart(2, '0')).join(''))`,
      context,
    ) as string[];
    expect(Array.from(browser)).toEqual(strings.map((s) => hex(packMessage(s))));
    expect(browser[1]).toBe('a3efbfbd');
  });

  it('should write and parse framed messages cut at random chunk sizes as on Node', () => {
    const maxChunks = [7, 1000, 70_000, 3 << 20];
    const browser = inContext<probes.FramingReport>(`framingRoundTrip(20251, ${JSON.stringify(maxChunks)})`);
    const node = asData(probes.framingRoundTrip(20251, maxChunks));

    expect(node.frameMessageMatches).toBe(true);
    expect(node.splits).toHaveLength(maxChunks.length);
    for (const split of node.splits) {
      expect(split.midMessage).toBe(false);
      expect(split.messages).toEqual(node.splits[0].messages);
      expect(split.sizes).toEqual(node.splits[0].sizes);
    }
    expect(node.splits[0].chunks).toBeGreaterThan(100_000); // 1-7 bytes at a time
    expect(node.splits[0].sizes.reduce((sum, size) => sum + size, 0)).toBe(node.wireLength);
    expect(browser).toEqual(node);
  });

  it.each([
    ['dask-2022.12.1-client-to-scheduler.bin', [GOLDEN_HANDSHAKE, { op: 'identity', reply: true }]],
    ['dask-2022.12.1-scheduler-to-client.bin', [GOLDEN_HANDSHAKE, GOLDEN_IDENTITY_REPLY]],
  ])('should parse the golden stream %s as on Node', (file, expected) => {
    const streamHex = golden(file).toString('hex');
    const browser = inContext<probes.GoldenReport>(`goldenStream(${JSON.stringify(streamHex)})`);
    const node = asData(probes.goldenStream(streamHex));

    expect(node).toEqual({
      messages: asData(expected.map(probes.describe)),
      sizes: node.sizes,
      midMessage: false,
      sameWhenSplit: true,
      reencodedMatches: true,
      writerMatches: true,
    });
    expect(node.sizes.reduce((sum, size) => sum + size, 0)).toBe(streamHex.length / 2);
    expect(browser).toEqual(node);
  });
});
