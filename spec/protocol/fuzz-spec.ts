/**
 * Property-based fuzzing of what reads peer bytes: the TCP frame parser, the WebSocket
 * message reader, the msgpack decoder and Dask's codec. Whatever a peer sends, in whatever
 * chunks it arrives, the result is messages or a `ProtocolError` (`MessageTooLargeError`
 * is one): never a TypeError or RangeError, never a different result for another chunking,
 * never an allocation beyond the small `maxMessageSize` used here.
 *
 * Bounded: a few hundred runs per property keeps the file at a few seconds. Seeds are
 * random; on a failure fast-check prints `{ seed, path }`, which replays it when passed as
 * the third argument of `fc.assert`.
 */
import fc from 'fast-check';
import { MessageTooLargeError, ProtocolError } from '../../lib/errors';
import {
  daskCodec,
  FrameParser,
  FrameWriter,
  joinPieces,
  packMessage,
  Pickled,
  Serialized,
  unpackMessage,
  WsMessageReader,
  wsMessagesOf,
} from '../../lib/protocol';

const RUNS = 300;

/** A byte view, by its bytes. */
class Bytes {
  constructor(readonly hex: string) {}
}

/**
 * A value with its byte views replaced by `Bytes`, for `toEqual`: Jest's deep equality
 * walks a Buffer byte by byte as an object, far too slow for the 64 KiB bins.
 */
function comparable(value: unknown): unknown {
  if (value instanceof Uint8Array) return new Bytes(hex(value));
  if (Array.isArray(value)) return value.map(comparable);
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [comparable(k), comparable(v)]));
  if (value instanceof Set) return new Set([...value].map(comparable));
  if (typeof value === 'object' && value !== null) {
    const object: Record<string, unknown> = {};
    for (const [key, entry] of Object.entries(value)) {
      Object.defineProperty(object, key, { value: comparable(entry), enumerable: true, writable: true, configurable: true });
    }
    return object;
  }
  return value;
}

/** Little-endian u64, as every integer of Dask's framing. */
function u64(value: number | bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

const hex = (bytes: Uint8Array): string => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');

/** Cuts `stream` at the given points (taken modulo its length): any chunking, shrinkable. */
function chunked(stream: Uint8Array, cuts: number[]): Uint8Array[] {
  const points = [...new Set(cuts.map((cut) => cut % (stream.length + 1)))].sort((a, b) => a - b);
  const chunks: Uint8Array[] = [];
  let at = 0;
  for (const point of [...points, stream.length]) {
    if (point > at) chunks.push(stream.subarray(at, point));
    at = point;
  }
  return chunks;
}

/** The only kind of error reading peer bytes may throw. */
function expectTyped(error: unknown): void {
  if (!(error instanceof ProtocolError)) {
    throw new Error(`an untyped error escaped: ${String(error)}`, { cause: error });
  }
  if (error instanceof MessageTooLargeError) expect(Number(error.size)).toBeGreaterThan(error.limit);
}

interface ParserLimits {
  maxMessageSize: number;
  firstMessageLimit?: number;
  maxFrameCount?: number;
}

interface Parsed {
  /** Each message as its frames' hex, joined by '|': comparable across chunkings. */
  messages: string[];
  frames: Uint8Array[][];
  error?: Error;
  midMessage: boolean;
}

/** Feeds `chunks` to a FrameParser until it throws; checks what it guarantees on the way. */
function parseChunks(chunks: Uint8Array[], limits: ParserLimits): Parsed {
  const frames: Uint8Array[][] = [];
  let consumed = 0;
  let checkFailed: unknown; // a failed expectation below leaves push() too: tell it apart
  const parser = new FrameParser({
    ...limits,
    onMessage: (message, nbytes) => {
      frames.push(message);
      consumed += nbytes;
      const limit = frames.length === 1 ? Math.min(limits.maxMessageSize, limits.firstMessageLimit ?? Infinity) : limits.maxMessageSize;
      try {
        // No message is larger than its limit: nothing beyond it was ever allocated.
        expect(nbytes - 8).toBeLessThanOrEqual(limit);
        expect(message.reduce((sum, frame) => sum + frame.length, 8 + 8 * (1 + message.length))).toBe(nbytes);
      } catch (failure) {
        throw (checkFailed = failure);
      }
    },
  });
  let error: Error | undefined;
  let pushed = 0;
  for (const chunk of chunks) {
    try {
      parser.push(chunk);
      pushed += chunk.length;
    } catch (err) {
      if (checkFailed !== undefined) throw checkFailed;
      expectTyped(err);
      error = err as Error;
      // A dead parser stays dead, with the same error.
      expect(() => parser.push(Uint8Array.of(0))).toThrow(error);
      break;
    }
  }
  // Every byte is accounted for: in a message, or in the one being read.
  if (!error) expect(consumed === pushed).toBe(!parser.midMessage);
  return { messages: frames.map((message) => message.map(hex).join('|')), frames, error, midMessage: parser.midMessage };
}

/** The same outcome whatever the chunking: same messages, same kind of error, same end state. */
function expectSameOutcome(a: Parsed, b: Parsed): void {
  expect(a.messages).toEqual(b.messages);
  expect(a.error?.constructor).toBe(b.error?.constructor);
  if (!a.error) expect(a.midMessage).toBe(b.midMessage);
}

const codecs = [daskCodec({ deserialize: true }), daskCodec({ deserialize: false })];

/** Decodes a message with both codecs: a value or a ProtocolError, nothing else. */
function decodeOrTypedError(frames: Uint8Array[]): void {
  for (const codec of codecs) {
    try {
      codec.decode(frames);
    } catch (err) {
      expectTyped(err);
    }
  }
}

// ---------------------------------------------------------------------------------------
// Generators

const limitsArb: fc.Arbitrary<ParserLimits> = fc.record(
  {
    maxMessageSize: fc.integer({ min: 1, max: 4096 }),
    firstMessageLimit: fc.integer({ min: 1, max: 4096 }),
    maxFrameCount: fc.integer({ min: 1, max: 64 }),
  },
  { requiredKeys: ['maxMessageSize'] },
);

/** u64 values a header might hold: mostly small and plausible, some at the edges. */
const wordValueArb: fc.Arbitrary<bigint> = fc.oneof(
  { weight: 6, arbitrary: fc.bigInt({ min: 0n, max: 300n }) },
  { weight: 1, arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(2n ** 32n - 1n, 2n ** 32n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n),
  },
);

/**
 * Bytes that look like Dask framing often enough to go deep into the parser: u64 words of
 * small values, messages with consistent headers and random frames, and plain noise.
 */
const streamArb: fc.Arbitrary<Uint8Array> = fc
  .array(
    fc.oneof(
      wordValueArb.map(u64),
      fc.uint8Array({ maxLength: 40 }),
      fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 4 }).map((frames) =>
        Buffer.concat([u64(8 * (1 + frames.length) + frames.reduce((n, f) => n + f.length, 0)), u64(frames.length), ...frames.map((f) => u64(f.length)), ...frames]),
      ),
      fc.constantFrom(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), Buffer.from('SSH-2.0-OpenSSH_9.2\r\n')),
    ),
    { maxLength: 12 },
  )
  .map((parts) => Buffer.concat(parts));

const cutsArb = fc.array(fc.nat(), { maxLength: 24 });

/** Keys that change what a map means to Dask's codec: kept out of round-trip values. */
const RESERVED = new Set(['__Set__', '__Serialized__', '__Pickled__']);

const bigintArb = fc.oneof(
  fc.bigInt({ min: 2n ** 53n + 1n, max: 2n ** 64n - 1n }),
  fc.bigInt({ min: -(2n ** 63n), max: -(2n ** 53n) - 1n }),
);
/** Buffers: most short, a few above 64 KiB, which the encoder sends by reference. */
const binArb = fc.oneof(
  { weight: 20, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)) },
  {
    weight: 1,
    arbitrary: fc.tuple(fc.integer({ min: 64 * 1024, max: 70_000 }), fc.integer({ min: 0, max: 255 })).map(([length, seed]) => {
      const bytes = Buffer.allocUnsafe(length);
      for (let i = 0; i < length; i++) bytes[i] = (i * 31 + seed) & 0xff;
      return bytes;
    }),
  },
);
const stringArb = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 300 }));
/** Containers past 15 items: array16, map16. */
const wideArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.array(fc.integer(), { minLength: 16, maxLength: 40 }),
  fc.dictionary(fc.string({ minLength: 1, maxLength: 6 }).filter((key) => !key.startsWith('__')), fc.integer(), { minKeys: 16, maxKeys: 40 }),
);
/** Past 64 Ki items or bytes: str32, array32, map32 (few runs: each is large). */
const hugeArb: fc.Arbitrary<unknown> = fc.oneof(
  fc
    .tuple(fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }), fc.integer({ min: 65_536, max: 70_000 }))
    .map(([part, length]) => part.repeat(Math.ceil(length / part.length))),
  fc.integer({ min: 65_536, max: 66_000 }).map((length) => Array.from({ length }, (_, i) => i % 300)),
  fc.integer({ min: 65_536, max: 66_000 }).map((size) => new Map(Array.from({ length: size }, (_, i) => [i, i % 7]))),
);
const scalarArb = fc.oneof(
  stringArb,
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double(),
  bigintArb,
  fc.boolean(),
  fc.constant(null),
);
/** What Python hashes as a dict key: ints, floats, strings, bytes, None, bools, tuples of those. */
const nonStringKeyArb: fc.Arbitrary<unknown> = fc.oneof(
  fc.integer(),
  fc.maxSafeInteger(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.uint8Array({ maxLength: 8 }).map((bytes) => Buffer.from(bytes)),
  fc.array(fc.oneof(fc.integer(), fc.string({ maxLength: 8 }), fc.constant(null)), { maxLength: 4 }),
);
const objectKeyArb = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom('__proto__', '__x', 'constructor', '1', '0', 'op'),
).filter((key) => !RESERVED.has(key));

/** Anything Dask's codec writes and reads back as the same JavaScript value. */
const { value: valueArb } = fc.letrec<{ value: unknown; array: unknown[]; object: Record<string, unknown>; map: Map<unknown, unknown>; set: Set<unknown> }>(
  (tie) => ({
    value: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      { weight: 4, arbitrary: scalarArb },
      { weight: 2, arbitrary: binArb },
      { weight: 1, arbitrary: wideArb },
      { weight: 2, arbitrary: tie('array') },
      { weight: 2, arbitrary: tie('object') },
      { weight: 2, arbitrary: tie('map') },
      { weight: 1, arbitrary: tie('set') },
    ),
    array: fc.array(tie('value'), { maxLength: 5 }),
    object: fc
      .array(fc.tuple(objectKeyArb, tie('value')), { maxLength: 5 })
      .map((entries) => {
        const object: Record<string, unknown> = {};
        // Own data properties: `object['__proto__'] = x` would set the prototype.
        for (const [key, value] of entries) Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
        return object;
      }),
    // At least one key that is not a string, else it decodes as a plain object.
    map: fc
      .tuple(nonStringKeyArb, tie('value'), fc.array(fc.tuple(fc.oneof(nonStringKeyArb, fc.string({ maxLength: 8 })), tie('value')), { maxLength: 4 }))
      .map(([key, value, rest]) => new Map<unknown, unknown>([[key, value], ...rest])),
    set: fc.array(scalarArb, { maxLength: 5 }).map((items) => new Set(items)),
  }),
);

/** Messages as the codec writes them: a whole stream of them. */
function encodeStream(values: unknown[]): { stream: Buffer; sizes: number[] } {
  const codec = daskCodec({ deserialize: true });
  const writer = new FrameWriter();
  const sizes = values.map((value) => writer.add(codec.encodePieces!(value)));
  return { stream: Buffer.concat(writer.take()), sizes };
}

const MAX = 1 << 24; // room for the large bins; still nothing like the default 1 GiB

// ---------------------------------------------------------------------------------------

describe('FrameParser and the Dask codec under fuzzing', () => {
  it('should turn any bytes, in any chunking, into messages or a ProtocolError, the same for every chunking', () => {
    fc.assert(
      fc.property(streamArb, cutsArb, limitsArb, (stream, cuts, limits) => {
        const whole = parseChunks([stream], limits);
        const pieces = parseChunks(chunked(stream, cuts), limits);
        const bytewise = parseChunks(chunked(stream, [...Array(stream.length).keys()]), limits);
        expectSameOutcome(pieces, whole);
        expectSameOutcome(bytewise, whole);
        for (const frames of whole.frames) decodeOrTypedError(frames);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('should refuse a declared size above maxMessageSize before its bytes arrive', () => {
    fc.assert(
      fc.property(fc.integer({ min: 8, max: 4096 }), fc.bigInt({ min: 1n, max: 2n ** 64n - 1n - 4096n }), (limit, excess) => {
        const announced = BigInt(limit) + excess;
        const parsed = parseChunks([u64(announced)], { maxMessageSize: limit });
        if ([...u64(announced)].every((byte) => byte >= 0x20 && byte < 0x7f)) {
          // Eight printable bytes: a peer speaking a text protocol, and the error says so.
          expect(parsed.error).toBeInstanceOf(ProtocolError);
          expect(parsed.error?.message).toMatch(/does not speak Dask's protocol/);
        } else {
          expect(parsed.error).toBeInstanceOf(MessageTooLargeError);
          expect(BigInt((parsed.error as MessageTooLargeError).size)).toBe(announced);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('should decode any msgpack-shaped bytes to a value or a ProtocolError', () => {
    // Tokens of msgpack's grammar with random lengths and counts: containers that hold
    // fewer or more items than they say, strings cut short, extension types, 0xc1.
    const tokenArb = fc.oneof(
      fc.integer({ min: 0, max: 255 }).map((byte) => Buffer.of(byte)),
      fc.tuple(fc.constantFrom(0x80, 0x90, 0xa0), fc.integer({ min: 0, max: 15 })).map(([base, n]) => Buffer.of(base | n)),
      fc.tuple(fc.constantFrom(0xd9, 0xc4, 0xc7, 0xd4), fc.integer({ min: 0, max: 255 })).map(([type, n]) => Buffer.of(type, n)),
      fc.tuple(fc.constantFrom(0xda, 0xdc, 0xde, 0xc5), fc.integer({ min: 0, max: 0xffff })).map(([type, n]) => Buffer.of(type, n >> 8, n & 0xff)),
      fc.tuple(fc.constantFrom(0xdb, 0xdd, 0xdf, 0xc6), fc.nat()).map(([type, n]) => Buffer.concat([Buffer.of(type), Buffer.from(new Uint32Array([n]).buffer).reverse()])),
      fc.constantFrom(...['__Set__', '__Serialized__', '__Pickled__', '__proto__', 'as-list', 'num-sub-frames', 'serializer', 'msgpack', 'compression'].map((key) => packMessage(key))),
      fc.double().map((x) => packMessage(x)),
      bigintArb.map((x) => packMessage(x)),
    );
    fc.assert(
      fc.property(fc.array(tokenArb, { minLength: 1, maxLength: 30 }), (tokens) => {
        const bytes = Buffer.concat(tokens);
        try {
          unpackMessage(bytes);
        } catch (err) {
          expectTyped(err);
        }
        try {
          unpackMessage(bytes, null);
        } catch (err) {
          expectTyped(err);
        }
        decodeOrTypedError([bytes]);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it("should decode Dask's payload pointers with any frames behind them to a value or a ProtocolError", () => {
    // `{__Serialized__: k}` / `{__Pickled__: k}` / `{__Set__: ...}` pointing anywhere, and
    // sub-headers with any num-sub-frames, serializer and compression.
    const pointerArb = fc.oneof(
      fc.record({ __Serialized__: fc.oneof(fc.integer({ min: -2, max: 6 }), scalarArb) }),
      fc.record({ __Pickled__: fc.oneof(fc.integer({ min: -2, max: 6 }), scalarArb) }),
      fc.record({ __Set__: fc.boolean(), 'as-list': fc.oneof(fc.array(scalarArb, { maxLength: 3 }), scalarArb) }, { requiredKeys: ['__Set__'] }),
    );
    const subHeaderArb = fc.oneof(
      fc
        .record(
          {
            serializer: fc.constantFrom('msgpack', 'pickle', 'dask', 'error', 'other'),
            'num-sub-frames': fc.oneof(fc.integer({ min: -1, max: 6 }), scalarArb),
            compression: fc.oneof(fc.constant(null), fc.array(fc.constantFrom(null, 'lz4'), { maxLength: 3 }), scalarArb),
            'is-collection': fc.boolean(),
            'pickled-obj': binArb,
          },
          { requiredKeys: [] },
        )
        .map((header) => packMessage(header)),
      valueArb.map((value) => packMessage(value)),
      fc.uint8Array({ maxLength: 16 }),
    );
    const frameArb = fc.oneof(subHeaderArb, valueArb.map((value) => packMessage(value)), fc.uint8Array({ maxLength: 16 }));
    fc.assert(
      fc.property(fc.array(pointerArb, { minLength: 1, maxLength: 3 }), fc.array(frameArb, { maxLength: 6 }), (pointers, frames) => {
        decodeOrTypedError([packMessage({ op: 'x', data: pointers }), ...frames]);
      }),
      { numRuns: RUNS * 2 },
    );
  });

  it('should give back any msgpack-able values, written then parsed in any chunking', () => {
    fc.assert(
      fc.property(fc.array(valueArb, { minLength: 1, maxLength: 4 }), cutsArb, (values, cuts) => {
        const { stream, sizes } = encodeStream(values);
        const parsed = parseChunks(chunked(stream, cuts), { maxMessageSize: MAX });
        expect(parsed.error).toBeUndefined();
        expect(parsed.midMessage).toBe(false);
        const codec = daskCodec({ deserialize: true });
        expect(comparable(parsed.frames.map((frames) => codec.decode(frames)))).toEqual(comparable(values));
        expect(parsed.frames.map((frames) => frames.reduce((n, f) => n + f.length, 8 * (2 + frames.length)))).toEqual(sizes);
      }),
      { numRuns: RUNS },
    );
  });

  it('should give back strings, arrays and maps past 65,535 bytes or items, written then parsed in any chunking', () => {
    fc.assert(
      fc.property(hugeArb, valueArb, cutsArb, (huge, other, cuts) => {
        const values = [{ huge, other }, huge];
        const parsed = parseChunks(chunked(encodeStream(values).stream, cuts), { maxMessageSize: MAX });
        expect(parsed.error).toBeUndefined();
        const codec = daskCodec({ deserialize: true });
        expect(comparable(parsed.frames.map((frames) => codec.decode(frames)))).toEqual(comparable(values));
      }),
      { numRuns: 6 },
    );
  });

  it('should give back opaque payloads byte for byte, written then parsed in any chunking', () => {
    const headerArb = fc.record({ serializer: fc.constantFrom('pickle', 'dask'), extra: scalarArb }, { requiredKeys: ['serializer'] });
    const payloadArb = fc.oneof(
      fc.tuple(headerArb, fc.array(binArb, { maxLength: 3 })).map(([header, frames]) => new Serialized(header, frames)),
      fc.tuple(headerArb, fc.array(binArb, { maxLength: 3 })).map(([header, frames]) => new Pickled(header, frames)),
    );
    fc.assert(
      fc.property(fc.array(payloadArb, { minLength: 1, maxLength: 3 }), cutsArb, (payloads, cuts) => {
        const message = { op: 'forward', payloads };
        const { stream } = encodeStream([message]);
        const parsed = parseChunks(chunked(stream, cuts), { maxMessageSize: MAX });
        expect(parsed.error).toBeUndefined();
        const decoded = daskCodec({ deserialize: false }).decode(parsed.frames[0]) as typeof message;
        expect(decoded.payloads.map((p) => p.constructor)).toEqual(payloads.map((p) => p.constructor));
        decoded.payloads.forEach((payload, i) => {
          expect(payload.header).toEqual({ ...(payloads[i].header as object), 'num-sub-frames': payloads[i].frames.length });
          expect(payload.frames.map(hex)).toEqual(payloads[i].frames.map(hex));
        });
      }),
      { numRuns: RUNS / 3 },
    );
  });

  it('should give mutated valid streams (bit flips, cuts, changed lengths, spliced bytes) messages or a ProtocolError, the same for every chunking', () => {
    const mutationArb = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('word' as const), message: fc.nat(), field: fc.nat(), value: wordValueArb, delta: fc.integer({ min: -16, max: 16 }) }),
      fc.record({ kind: fc.constant('splice' as const), at: fc.nat(), remove: fc.integer({ min: 0, max: 16 }), insert: fc.uint8Array({ maxLength: 16 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(valueArb, { minLength: 1, maxLength: 4 }),
        fc.array(mutationArb, { minLength: 1, maxLength: 4 }),
        cutsArb,
        fc.integer({ min: 64, max: 1 << 20 }),
        (values, mutations, cuts, maxMessageSize) => {
          const { stream: valid, sizes } = encodeStream(values);
          const starts = sizes.map((_, i) => sizes.slice(0, i).reduce((a, b) => a + b, 0));
          let stream = Buffer.from(valid);
          for (const mutation of mutations) {
            const at = mutation.kind === 'word' ? 0 : mutation.at % (stream.length + 1);
            if (mutation.kind === 'flip' && at < stream.length) stream[at] ^= 1 << mutation.bit;
            else if (mutation.kind === 'truncate') stream = stream.subarray(0, at);
            else if (mutation.kind === 'splice') stream = Buffer.concat([stream.subarray(0, at), mutation.insert, stream.subarray(at + mutation.remove)]);
            else if (mutation.kind === 'word') {
              // T, N or one of the lengths of one message: replaced, or nudged by a little.
              const start = starts[mutation.message % starts.length];
              const frameCount = Number(valid.readBigUInt64LE(start + 8));
              const offset = start + 8 * (mutation.field % (2 + frameCount));
              if (offset + 8 > stream.length) continue;
              const old = stream.readBigUInt64LE(offset);
              const nudged = old + BigInt(mutation.delta);
              const next = mutation.delta === 0 ? mutation.value : nudged < 0n ? 0n : nudged;
              stream.writeBigUInt64LE(next, offset);
            }
          }
          const limits = { maxMessageSize, firstMessageLimit: 64 * 1024 };
          const whole = parseChunks([stream], limits);
          const pieces = parseChunks(chunked(stream, cuts), limits);
          expectSameOutcome(pieces, whole);
          for (const frames of whole.frames) decodeOrTypedError(frames);
        },
      ),
      { numRuns: RUNS },
    );
  });
});

// ---------------------------------------------------------------------------------------

interface WsPart {
  data: Uint8Array;
  binary: boolean;
}

function readWs(parts: WsPart[], maxMessageSize: number, maxFrameCount?: number): { frames: Uint8Array[][]; error?: Error } {
  const frames: Uint8Array[][] = [];
  const reader = new WsMessageReader({
    maxMessageSize,
    maxFrameCount,
    onMessage: (message, nbytes) => {
      frames.push(message);
      expect(nbytes).toBe(8 + message.reduce((n, f) => n + f.length, 0));
      expect(nbytes - 8 + 8 * (1 + message.length)).toBeLessThanOrEqual(maxMessageSize);
    },
  });
  for (const part of parts) {
    try {
      reader.push(part.data, part.binary);
    } catch (err) {
      expectTyped(err);
      expect(() => reader.push(Uint8Array.of(0))).toThrow(err as Error);
      return { frames, error: err as Error };
    }
  }
  return { frames };
}

describe('WsMessageReader and the Dask codec under fuzzing', () => {
  const countArb = wordValueArb.map((n) => u64(n));
  const partArb: fc.Arbitrary<WsPart> = fc.record({
    data: fc.oneof(countArb, fc.uint8Array({ maxLength: 40 }), fc.constant(u64(1))),
    binary: fc.oneof({ weight: 9, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
  });

  it('should turn any WebSocket messages into messages or a ProtocolError', () => {
    fc.assert(
      fc.property(fc.array(partArb, { maxLength: 20 }), fc.integer({ min: 1, max: 4096 }), fc.option(fc.integer({ min: 1, max: 64 }), { nil: undefined }), (parts, maxMessageSize, maxFrameCount) => {
        const { frames } = readWs(parts, maxMessageSize, maxFrameCount);
        for (const message of frames) decodeOrTypedError(message);
      }),
      { numRuns: RUNS * 3 },
    );
  });

  it('should give back any msgpack-able values sent as Dask ws messages', () => {
    fc.assert(
      fc.property(fc.array(valueArb, { minLength: 1, maxLength: 4 }), (values) => {
        const codec = daskCodec({ deserialize: true });
        const parts = values.flatMap((value) => wsMessagesOf(codec.encodePieces!(value)).map((part) => ({ data: joinPieces(part), binary: true })));
        const { frames, error } = readWs(parts, MAX);
        expect(error).toBeUndefined();
        expect(comparable(frames.map((message) => codec.decode(message)))).toEqual(comparable(values));
      }),
      { numRuns: RUNS },
    );
  });

  it('should give mutated valid ws messages (dropped, repeated, flipped, text) messages or a ProtocolError', () => {
    const mutationArb = fc.oneof(
      fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('repeat' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), byte: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
      fc.record({ kind: fc.constant('text' as const), at: fc.nat() }),
      fc.record({ kind: fc.constant('count' as const), at: fc.nat(), value: countArb }),
      fc.record({ kind: fc.constant('split' as const), at: fc.nat(), cut: fc.nat() }),
    );
    fc.assert(
      fc.property(fc.array(valueArb, { minLength: 1, maxLength: 3 }), fc.array(mutationArb, { minLength: 1, maxLength: 4 }), fc.integer({ min: 16, max: 1 << 20 }), (values, mutations, maxMessageSize) => {
        const codec = daskCodec({ deserialize: true });
        let parts: WsPart[] = values.flatMap((value) => wsMessagesOf(codec.encode(value)).map((part) => ({ data: Buffer.from(joinPieces(part)), binary: true })));
        for (const mutation of mutations) {
          if (parts.length === 0) break;
          const at = mutation.at % parts.length;
          const part = parts[at];
          if (mutation.kind === 'drop') parts = [...parts.slice(0, at), ...parts.slice(at + 1)];
          else if (mutation.kind === 'repeat') parts = [...parts.slice(0, at + 1), part, ...parts.slice(at + 1)];
          else if (mutation.kind === 'text') parts[at] = { ...part, binary: false };
          else if (mutation.kind === 'count') parts[at] = { data: mutation.value, binary: true };
          else if (mutation.kind === 'flip' && part.data.length > 0) {
            const data = Buffer.from(part.data);
            data[mutation.byte % data.length] ^= 1 << mutation.bit;
            parts[at] = { data, binary: true };
          } else if (mutation.kind === 'split') {
            const cut = mutation.cut % (part.data.length + 1);
            parts = [...parts.slice(0, at), { data: part.data.subarray(0, cut), binary: true }, { data: part.data.subarray(cut), binary: true }, ...parts.slice(at + 1)];
          }
        }
        const { frames } = readWs(parts, maxMessageSize);
        for (const message of frames) decodeOrTypedError(message);
      }),
      { numRuns: RUNS },
    );
  });
});
