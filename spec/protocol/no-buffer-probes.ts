/**
 * The checks of no-buffer-spec.ts, run twice: under Node as is, and bundled for the
 * browser with the protocol layer into a `node:vm` context that has no Buffer. So this
 * module imports nothing but the protocol layer, uses nothing of Node, and reports only
 * plain JSON-able data (values do not compare across realms): the spec compares the two
 * reports.
 */
import { daskCodec, FrameParser, frameMessage, FrameWriter, packMessage, Pickled, Serialized, serializeMsgpack, toSerialize } from '../../lib/protocol';
import { HAS_NODE_BUFFER, MAX_BYTE_LENGTH } from '../../lib/protocol/bytes';

/** A decoded value as data: what it is, without the class of its bins (see `Report.binClasses`). */
export type Described =
  | null
  | boolean
  | { num: string }
  | { str: string }
  | { big: string }
  | { bin: string }
  | { arr: Described[] }
  | { obj: Array<[string, Described]> }
  | { map: Array<[Described, Described]> }
  | { set: Described[] }
  | { serialized: { header: Described; frames: Described[] } }
  | { pickled: { header: Described; frames: Described[] } };

export interface Environment {
  /** `typeof Buffer` where the probes run. */
  bufferGlobal: string;
  /** What bytes.ts found. */
  hasNodeBuffer: boolean;
  maxByteLength: number;
}

export function environment(): Environment {
  return { bufferGlobal: typeof Buffer, hasNodeBuffer: HAS_NODE_BUFFER, maxByteLength: MAX_BYTE_LENGTH };
}

export function hex(bytes: Uint8Array): string {
  let text = '';
  for (let i = 0; i < bytes.length; i++) text += (bytes[i] < 16 ? '0' : '') + bytes[i].toString(16);
  return text;
}

export function fromHex(text: string): Uint8Array {
  const bytes = new Uint8Array(text.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/** The classes of the bins met by `describe`, in order: Buffer on Node, Uint8Array elsewhere. */
let binClasses: string[] = [];

export function describe(value: unknown): Described {
  switch (typeof value) {
    case 'undefined':
      return null;
    case 'boolean':
      return value;
    case 'number':
      return { num: Object.is(value, -0) ? '-0' : String(value) };
    case 'string':
      return { str: value };
    case 'bigint':
      return { big: value.toString() };
    case 'object':
      break;
    default:
      throw new TypeError(`unexpected ${typeof value}`);
  }
  if (value === null) return null;
  if (value instanceof Uint8Array) {
    binClasses.push(value.constructor.name);
    return { bin: hex(value) };
  }
  if (Array.isArray(value)) return { arr: value.map(describe) };
  if (value instanceof Map) return { map: Array.from(value, ([k, v]): [Described, Described] => [describe(k), describe(v)]) };
  if (value instanceof Set) return { set: Array.from(value, describe) };
  if (value instanceof Serialized) return { serialized: { header: describe(value.header), frames: value.frames.map(describe) } };
  if (value instanceof Pickled) return { pickled: { header: describe(value.header), frames: value.frames.map(describe) } };
  return { obj: Object.entries(value).map(([k, v]): [string, Described] => [k, describe(v)]) };
}

/** A deterministic generator (mulberry32), so both runs split the same way. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const MIB = 1 << 20;

/** Every kind of value the codec handles, built in the realm that runs the probes. */
function messages(): unknown[] {
  const mib = new Uint8Array(MIB);
  for (let i = 0; i < mib.length; i++) mib[i] = (i * 31 + (i >> 8)) & 0xff;
  // A msgpack value split in two frames: the codec joins them (concatBytes) to decode it.
  const payload = packMessage({ joined: ['from', 2, 'frames'], n: 1.5 });
  const split = new Serialized({ serializer: 'msgpack', compression: [null, null] }, [
    payload.subarray(0, 5),
    payload.subarray(5),
  ]);
  const pickled = new Pickled({ 'pickled-obj': Uint8Array.from([0x80, 0x05, 0x4b, 0x01, 0x2e]), writeable: [] }, [
    Uint8Array.from([1, 2, 3]),
  ]);
  const longText = 'héllo wörld ✓ 日本語 🎉 '.repeat(40);
  return [
    { op: 'identity', reply: true },
    { ascii: 'abc', accents: 'héllo wörld', cjk: '日本語', emoji: '🎉👍🏽', empty: '' },
    { lone: ['\ud800', 'a\udc00b', '\udbff\udbff', 'x\ud83d'], longLone: `${'é'.repeat(50)}\ud800${'z'.repeat(30)}` },
    { long: longText, veryLong: `${longText.repeat(100)}\udc00`, key64: { ['k'.repeat(64)]: 1, ['ü'.repeat(40)]: 2 } },
    new Map<unknown, unknown>([
      [1, 'one'],
      [-5, 'minus five'],
      [2 ** 40, 'big'],
      [['tuple', 0], 'tuple key'],
      [Uint8Array.from([0xde, 0xad]), 'bytes key'],
      ['s', new Map([[7, [1, 2]]])],
    ]),
    { nested: [[1, [2, [3, [[], {}]]]], [[[['deep']]]]], list: Array.from({ length: 20 }, (_, i) => [i, -i]) },
    { data: mib, small: Uint8Array.from([1, 2, 3]), empty: new Uint8Array(0) },
    { ints: [0, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, -(2 ** 53)] },
    { bigints: [2n ** 64n - 1n, 2n ** 63n, -(2n ** 63n), 2n ** 53n + 1n, -(2n ** 53n) - 1n, 5n] },
    { floats: [1.5, -0.25, 3.141592653589793, 1e300, -1e-300, Number.MIN_VALUE, Infinity, -Infinity, NaN, -0] },
    { nothing: null, undef: undefined, yes: true, no: false },
    { set: new Set(['a', 1, null]) },
    { msgpack: serializeMsgpack({ x: [1, 2, 3], s: 'ünïcode' }), split, pickled, more: serializeMsgpack(mib.subarray(0, 1000)) },
  ];
}

export interface CodecReport {
  /** Per message: the frames of `encode`, in hex. */
  encoded: string[][];
  /** Per message: `encodePieces` joined, frame by frame, equals `encode`'s frames. */
  piecesMatch: boolean[];
  /** Per message: decoded with deserialize false and true. */
  opaque: Described[];
  deserialized: Described[];
  /** Per message: the opaque decoding re-encoded, in hex. */
  reencoded: string[][];
  /** The class of every bin decoded, and of `packMessage`'s result. */
  binClasses: string[];
  packClass: string;
  /** Decoded bins are views of the frame they came in (no copy). */
  binIsView: boolean;
}

function joinPieces(frame: Uint8Array | readonly Uint8Array[]): Uint8Array {
  if (frame instanceof Uint8Array) return frame;
  let length = 0;
  for (const piece of frame) length += piece.length;
  const joined = new Uint8Array(length);
  let at = 0;
  for (const piece of frame) {
    joined.set(piece, at);
    at += piece.length;
  }
  return joined;
}

/** Dask codec: encode → decode → encode of every message. */
export function codecRoundTrip(): CodecReport {
  const opaqueCodec = daskCodec({ deserialize: false });
  const deserializingCodec = daskCodec({ deserialize: true });
  binClasses = [];
  const report: CodecReport = {
    encoded: [],
    piecesMatch: [],
    opaque: [],
    deserialized: [],
    reencoded: [],
    binClasses,
    packClass: packMessage({}).constructor.name,
    binIsView: false,
  };
  for (const message of messages()) {
    // Views of the encoder's slab, which later messages never overwrite.
    const frames = opaqueCodec.encode(message);
    report.encoded.push(frames.map(hex));
    report.piecesMatch.push(
      opaqueCodec
        .encodePieces!(message)
        .map((frame) => hex(joinPieces(frame)))
        .join(',') === report.encoded[report.encoded.length - 1].join(','),
    );
    const opaque = opaqueCodec.decode(frames);
    report.opaque.push(describe(opaque));
    report.deserialized.push(describe(deserializingCodec.decode(frames)));
    report.reencoded.push(opaqueCodec.encode(opaque).map(hex));
  }
  const withBin = opaqueCodec.encode({ data: Uint8Array.from([9, 8, 7]) });
  const bin = (opaqueCodec.decode(withBin) as { data: Uint8Array }).data;
  report.binIsView = bin.buffer === withBin[0].buffer && bin[0] === 9;
  binClasses = [];
  return report;
}

export interface FramingReport {
  /** The length and a checksum of the stream the writer wrote. */
  wireLength: number;
  wireChecksum: number;
  /** `frameMessage` of each message, back to back, is the same stream. */
  frameMessageMatches: boolean;
  /** Per split: the messages parsed, their sizes, and whether the parser ends mid-message. */
  splits: Array<{ chunks: number; messages: Described[]; sizes: number[]; midMessage: boolean }>;
}

/** FNV-1a, 32 bits: enough to tell two streams apart. */
function checksum(bytes: Uint8Array): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) hash = Math.imul(hash ^ bytes[i], 0x01000193) >>> 0;
  return hash;
}

/** FrameWriter → FrameParser, the stream cut at random chunk sizes up to each of `maxChunks`. */
export function framingRoundTrip(seed: number, maxChunks: number[]): FramingReport {
  const codec = daskCodec({ deserialize: false });
  const writer = new FrameWriter();
  const all = messages();
  const framed: Uint8Array[] = [];
  for (const message of all) {
    writer.add(codec.encodePieces!(message));
    framed.push(frameMessage(codec.encode(message)));
  }
  const wire = joinPieces(writer.take());
  const report: FramingReport = {
    wireLength: wire.length,
    wireChecksum: checksum(wire),
    frameMessageMatches: hex(joinPieces(framed)) === hex(wire),
    splits: [],
  };
  const next = random(seed);
  for (const maxChunk of maxChunks) {
    binClasses = [];
    const messagesOut: Described[] = [];
    const sizes: number[] = [];
    const parser = new FrameParser({
      maxMessageSize: 16 * MIB,
      onMessage: (frames, nbytes) => {
        messagesOut.push(describe(codec.decode(frames)));
        sizes.push(nbytes);
      },
    });
    let chunks = 0;
    for (let at = 0; at < wire.length; chunks++) {
      const size = 1 + Math.floor(next() * maxChunk);
      parser.push(wire.subarray(at, at + size));
      at += size;
    }
    report.splits.push({ chunks, messages: messagesOut, sizes, midMessage: parser.midMessage });
  }
  binClasses = [];
  return report;
}

export interface GoldenReport {
  messages: Described[];
  sizes: number[];
  midMessage: boolean;
  /** Parsed identically fed byte by byte and split in two at every offset. */
  sameWhenSplit: boolean;
  /** Each message re-encoded (frameMessage, and a FrameWriter) is the stream again. */
  reencodedMatches: boolean;
  writerMatches: boolean;
}

/** One golden byte stream, given in hex: parse it as golden-stream-spec does. */
export function goldenStream(streamHex: string): GoldenReport {
  const stream = fromHex(streamHex);
  const decodeAll = (chunks: Uint8Array[]): { messages: unknown[]; sizes: number[]; midMessage: boolean } => {
    const codec = daskCodec({ deserialize: true });
    const messagesOut: unknown[] = [];
    const sizes: number[] = [];
    const parser = new FrameParser({
      maxMessageSize: MIB,
      onMessage: (frames, nbytes) => {
        messagesOut.push(codec.decode(frames));
        sizes.push(nbytes);
      },
    });
    for (const chunk of chunks) parser.push(chunk);
    return { messages: messagesOut, sizes, midMessage: parser.midMessage };
  };
  const whole = decodeAll([stream]);
  const expected = JSON.stringify(whole.messages.map(describe));
  let sameWhenSplit =
    JSON.stringify(decodeAll(Array.from(stream, (_, i) => stream.subarray(i, i + 1))).messages.map(describe)) === expected;
  for (let at = 0; at <= stream.length && sameWhenSplit; at++) {
    const split = decodeAll([stream.subarray(0, at), stream.subarray(at)]);
    sameWhenSplit = JSON.stringify(split.messages.map(describe)) === expected;
  }
  const codec = daskCodec({ deserialize: false });
  const writer = new FrameWriter();
  for (const message of whole.messages) writer.add(codec.encodePieces!(message));
  return {
    messages: whole.messages.map(describe),
    sizes: whole.sizes,
    midMessage: whole.midMessage,
    sameWhenSplit,
    reencodedMatches: whole.messages.map((message) => hex(frameMessage(codec.encode(message)))).join('') === streamHex,
    writerMatches: hex(joinPieces(writer.take())) === streamHex,
  };
}

/** What the pure decoders and encoders made of Python's compressed bytes, and of bad ones. */
export interface CompressionReport {
  /** `format/input` → the decompressed bytes in hex, or the error's message. */
  decoded: Record<string, string>;
  /** `format` → whether a compressible payload written compressed came back intact, and its wire size. */
  roundTrips: Record<string, { labelled: string; intact: boolean; frameBytes: number }>;
  /** Hostile frames → the error class and message. */
  refused: Record<string, string>;
}

/**
 * The compression formats with nothing but the protocol layer: the pure-TypeScript
 * decoders (Node's platform swaps in native lz4 and Node's zlib, which this module never
 * loads). `formats` is python-compression.json's `formats` (hex by format and input).
 */
export function compression(formats: Record<string, Record<string, string>>): CompressionReport {
  const opaque = daskCodec({ deserialize: false });
  const decoding = daskCodec({ deserialize: true });
  const context = (compression: string | null, maxMessageSize = 1 << 30) => ({ compression, maxMessageSize });
  const labelled = (label: string, frame: Uint8Array) =>
    opaque.encode({ data: new Serialized({ serializer: 'test-bytes', compression: [label] }, [frame]) });
  const attempt = (fn: () => string): string => {
    try {
      return fn();
    } catch (err) {
      return `${(err as Error).name}: ${(err as Error).message}`;
    }
  };
  const decoded: Record<string, string> = {};
  for (const [format, inputs] of Object.entries(formats)) {
    for (const [input, compressed] of Object.entries(inputs)) {
      decoded[`${format}/${input}`] = attempt(() => hex((decoding.decode(labelled(format, fromHex(compressed))) as { data: Serialized }).data.frames[0]));
    }
  }
  const value = new Uint8Array(300_000).map((_, i) => (i % 1000 < 10 ? i & 0xff : 0));
  const roundTrips: CompressionReport['roundTrips'] = {};
  for (const format of ['lz4', 'snappy', 'zlib']) {
    const frames = decoding.encode({ data: toSerialize(value) }, context(format));
    const header = (opaque.decode(frames) as { data: Serialized }).data.header as { compression: string[] };
    const back = (decoding.decode(frames) as { data: Uint8Array }).data;
    roundTrips[format] = { labelled: String(header.compression[0]), intact: hex(back) === hex(value), frameBytes: frames[2].length };
  }
  const refused: Record<string, string> = {
    'lz4 size above the limit': attempt(() => String(decoding.decode(labelled('lz4', Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x10, 0))))),
    'lz4 short of its size': attempt(() => {
      const frame = fromHex(formats.lz4['zeros-20000']);
      frame[0] += 1;
      return String(decoding.decode(labelled('lz4', frame)));
    }),
    'snappy short of its size': attempt(() => {
      const frame = fromHex(formats.snappy['zeros-20000']);
      frame[0] += 1;
      return String(decoding.decode(labelled('snappy', frame)));
    }),
    'zlib bomb': attempt(() => String(decoding.decode(labelled('zlib', fromHex(formats.zlib['zeros-20000'])), context(null, 10_000)))),
    'zstd truncated': attempt(() => String(decoding.decode(labelled('zstd', fromHex(formats.zstd['text-30000']).subarray(0, 40))))),
  };
  return { decoded, roundTrips, refused };
}
