/**
 * Dask's frame compression through the public codec: every format against bytes Python
 * made (fixtures/python-compression.json, from fixtures/compression.py), Dask's rule for
 * when to compress, and malformed and hostile frames, which must be a `ProtocolError`
 * and nothing else.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { type CodecContext, daskCodec, listen, ProtocolError, Serialized, toSerialize } from 'rxcomm';

const python = JSON.parse(readFileSync(join(__dirname, 'fixtures', 'python-compression.json'), 'utf8')) as {
  formats: Record<Format, Record<string, string>>;
  messages: Record<Format, string[]>;
  'dask-serializer-lz4': string[];
};

type Format = 'lz4' | 'zstd' | 'snappy' | 'zlib';
const FORMATS: Format[] = ['lz4', 'zstd', 'snappy', 'zlib'];

const hex = (text: string) => Uint8Array.from(Buffer.from(text, 'hex'));
const encoder = new TextEncoder();

/** The inputs compression.py compressed, rebuilt from their names. */
const INPUTS: Record<string, Uint8Array> = {
  'zeros-20000': new Uint8Array(20000),
  'text-30000': encoder.encode(Array.from({ length: 1200 }, (_, i) => `row ${i}, value ${(i * 7) % 1000}, label alpha\n`).join('')).subarray(0, 30000),
  'ramp-256': Uint8Array.from({ length: 256 }, (_, i) => i),
  empty: new Uint8Array(0),
};

const opaque = daskCodec({ deserialize: false });
const deserializing = daskCodec({ deserialize: true });
const context = (compression: string | null, maxMessageSize = 1 << 30): CodecContext => ({ compression, maxMessageSize });

/** A message whose one payload frame is `frame`, labelled `label`, of a serializer we cannot decode. */
function labelled(label: unknown, frame: Uint8Array): Uint8Array[] {
  return opaque.encode({ op: 'x', data: new Serialized({ serializer: 'test-bytes', compression: [label] }, [frame]) });
}

function readPayload(frames: Uint8Array[], maxMessageSize?: number): Serialized {
  return (deserializing.decode(frames, context(null, maxMessageSize)) as { data: Serialized }).data;
}

// zstd's encoder is WebAssembly, loaded by the first listen or connect that names it.
beforeAll(async () => {
  const listener = listen('inproc://', { compression: 'zstd' });
  await listener.start();
  await listener.stop();
});

describe.each(FORMATS)('%s', (format) => {
  it.each(Object.keys(INPUTS))("should read Python's compression of %s", (input) => {
    const payload = readPayload(labelled(format, hex(python.formats[format][input])));
    expect(payload.frames).toEqual([INPUTS[input]]);
    // The frames are decompressed, so the header no longer says they are compressed.
    expect(payload.header).toMatchObject({ compression: [null] });
  });

  it("should decode a message Dask wrote with a compressed msgpack payload to its value", () => {
    const frames = python.messages[format].map(hex);
    expect((frames.length, JSON.stringify(opaque.decode(frames), (_k, v) => (v instanceof Uint8Array ? undefined : v)))).toContain(`"${format}"`);
    expect(deserializing.decode(frames)).toEqual({ op: 'x', data: Buffer.from(INPUTS['text-30000']) });
  });

  it('should forward a compressed payload byte-identically with deserialize: false', () => {
    const frames = python.messages[format].map(hex);
    expect(opaque.encode(opaque.decode(frames)).map((f) => Buffer.from(f).toString('hex'))).toEqual(python.messages[format]);
  });

  it('should compress a compressible toSerialize payload and read it back', () => {
    const value = new Uint8Array(200_000).map((_, i) => (i % 1000 < 10 ? i & 0xff : 0));
    const frames = deserializing.encode({ op: 'x', data: toSerialize(value) }, context(format));
    const header = opaque.decode(frames) as { data: Serialized };
    expect(header.data.header).toMatchObject({ serializer: 'msgpack', compression: [format], 'num-sub-frames': 1 });
    expect(frames[2].length).toBeLessThan(value.length * 0.7);
    expect(frames[0]).toEqual(deserializing.encode({ op: 'x', data: toSerialize(value) }, context(null))[0]); // frame 0 never compressed
    const decoded = deserializing.decode(frames) as { data: Uint8Array };
    expect(Buffer.from(decoded.data).equals(value)).toBe(true);
  });

  it('should round-trip any bytes that it chooses to compress', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 3000 }), fc.integer({ min: 1, max: 40 }), (seed, repeats) => {
        // Repeated random runs: compressible, with matches at every offset and length.
        const value = new Uint8Array(seed.length * repeats);
        for (let i = 0; i < repeats; i++) value.set(seed.subarray(0, seed.length - (i % 7)), i * seed.length);
        const frames = deserializing.encode({ data: toSerialize(value) }, context(format));
        expect(deserializing.decode(frames)).toEqual({ data: Buffer.from(value) });
      }),
      { numRuns: 60 },
    );
  });

  it('should refuse a frame that does not decode, whatever its bytes, with a ProtocolError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          readPayload(labelled(format, bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(ProtocolError);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('should refuse every truncation of a valid frame with a ProtocolError', () => {
    const valid = hex(python.formats[format]['text-30000']);
    for (const cut of [1, 2, 5, 9, Math.floor(valid.length / 2), valid.length - 1]) {
      expect(() => readPayload(labelled(format, valid.subarray(0, cut)))).toThrow(ProtocolError);
    }
  });
});

describe('Dask\'s rule for compressing', () => {
  it.each(FORMATS)('should leave a frame under 10,000 bytes raw, and compress one of 10,000 (%s)', (format) => {
    // A bin of n bytes is a frame of n + 3 (msgpack's bin16 header).
    const small = deserializing.encode({ data: toSerialize(new Uint8Array(9_996)) }, context(format));
    expect((opaque.decode(small) as { data: Serialized }).data.header).toMatchObject({ compression: [null] });
    const large = deserializing.encode({ data: toSerialize(new Uint8Array(9_997)) }, context(format));
    expect((opaque.decode(large) as { data: Serialized }).data.header).toMatchObject({ compression: [format] });
  });

  it.each(FORMATS)('should leave an incompressible payload raw, judged on a sample (%s)', (format) => {
    const random = Uint8Array.from(fc.sample(fc.integer({ min: 0, max: 255 }), { numRuns: 100_000, seed: 7 }));
    const frames = deserializing.encode({ data: toSerialize(random) }, context(format));
    expect((opaque.decode(frames) as { data: Serialized }).data.header).toMatchObject({ compression: [null] });
    expect(Buffer.from((deserializing.decode(frames) as { data: Uint8Array }).data).equals(random)).toBe(true);
  });

  it.each([0, 5, 9, 10, 11, 250, 251, 300, 70_000])(
    'should compress a large bin whose first %i bytes do not repeat without joining it to its header (lz4)',
    (literals) => {
      // The bin's header becomes extra literals of the first sequence: every literal-length encoding.
      const value = new Uint8Array(literals + 100_000);
      value.set(Uint8Array.from(fc.sample(fc.integer({ min: 0, max: 255 }), { numRuns: literals, seed: literals })), 0);
      const frames = deserializing.encodePieces!({ data: toSerialize(value) }, context('lz4'));
      expect((opaque.decode(frames as Uint8Array[]) as { data: Serialized }).data.header).toMatchObject({ compression: ['lz4'] });
      const decoded = deserializing.decode(frames as Uint8Array[]) as { data: Uint8Array };
      expect(Buffer.from(decoded.data).equals(value)).toBe(true);
    },
  );

  it('should compress nothing without a negotiated compression, nor an already serialized payload', () => {
    const zeros = new Uint8Array(100_000);
    const none = deserializing.encode({ data: toSerialize(zeros) }, context(null));
    expect(none[2].length).toBeGreaterThan(100_000);
    const serialized = new Serialized({ serializer: 'msgpack', compression: [null] }, [zeros]);
    expect(deserializing.encode({ data: serialized }, context('lz4'))[2]).toBe(zeros);
  });

  it('should refuse a payload that nests another in a toSerialize value', () => {
    expect(() => deserializing.encode({ data: toSerialize({ inner: toSerialize(1) }) })).toThrow(/cannot hold a Serialize/);
  });
});

describe('hostile compressed frames', () => {
  it('should refuse a label it does not know', () => {
    expect(() => readPayload(labelled('blosc', new Uint8Array(10)))).toThrow(new ProtocolError("a payload frame is compressed with 'blosc', which rxcomm does not know"));
    expect(() => readPayload(labelled(7, new Uint8Array(10)))).toThrow(ProtocolError);
  });

  it('should refuse a declared size above maxMessageSize before allocating it', () => {
    // 4 GiB - 1 declared: allocating it would throw a RangeError, not a ProtocolError.
    const lz4 = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x10, 0);
    expect(() => readPayload(labelled('lz4', lz4))).toThrow(/declares 4294967295 bytes, above the limit of 1073741824/);
    const snappy = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0x0f, 0);
    expect(() => readPayload(labelled('snappy', snappy))).toThrow(/declares 4294967295 bytes, above the limit/);
    const zstd = hex(python.formats.zstd['zeros-20000']);
    expect(() => readPayload(labelled('zstd', zstd), 19_999)).toThrow(/declares 20000 bytes, above the limit of 19999/);
  });

  it.each([0, 1000])('should refuse a zstd frame of %i bytes with a 512 MiB window (fzstd would allocate the window)', (size) => {
    // magic, not single-segment with a 4-byte content size, window 2^29, the content size, one last raw block of it
    const block = (size << 3) | 1;
    const frame = new Uint8Array(13 + size);
    frame.set([0x28, 0xb5, 0x2f, 0xfd, 0x80, 0x98, size & 0xff, size >> 8, 0, 0, block & 0xff, (block >> 8) & 0xff, block >> 16]);
    const before = process.memoryUsage().arrayBuffers;
    expect(() => readPayload(labelled('zstd', frame))).toThrow(`a zstd payload declares ${size} bytes but a window of 536870912 bytes`);
    expect(process.memoryUsage().arrayBuffers - before).toBeLessThan(16 * 1024 * 1024);
  });

  it("should read Python's zstd frames, whose windows fit their content", () => {
    for (const input of Object.keys(INPUTS)) {
      expect(readPayload(labelled('zstd', hex(python.formats.zstd[input]))).frames).toEqual([INPUTS[input]]);
    }
  });

  it('should refuse a zlib stream that inflates past maxMessageSize', () => {
    const bomb = hex(python.formats.zlib['zeros-20000']); // 20,000 bytes from a few dozen
    expect(() => readPayload(labelled('zlib', bomb), 10_000)).toThrow(/inflates past the limit of 10000 bytes/);
    expect(readPayload(labelled('zlib', bomb), 20_000).frames[0].length).toBe(20_000);
  });

  it('should count every payload of a message against one maxMessageSize', () => {
    const frame = hex(python.formats.lz4['zeros-20000']);
    const two = opaque.encode({
      a: new Serialized({ serializer: 'test-bytes', compression: ['lz4'] }, [frame]),
      b: new Serialized({ serializer: 'test-bytes', compression: ['lz4'] }, [frame]),
    });
    expect(() => deserializing.decode(two, context(null, 30_000))).toThrow(/above the limit of 10000/);
    expect(() => deserializing.decode(two, context(null, 40_000))).not.toThrow();
  });

  it.each([
    ['lz4', 'zeros-20000', (b: Uint8Array) => (b[0] += 1)],
    ['snappy', 'zeros-20000', (b: Uint8Array) => (b[0] += 1)],
    ['zstd', 'zeros-20000', (b: Uint8Array) => (b[5] += 1)],
  ] as const)('should refuse a %s frame whose output disagrees with its declared size', (format, input, grow) => {
    const frame = hex(python.formats[format][input]);
    grow(frame);
    expect(() => readPayload(labelled(format, frame))).toThrow(/declares 20001 bytes but holds 20000/);
  });

  it('should refuse a compression entry that is not a list', () => {
    const frames = opaque.encode({ data: new Serialized({ serializer: 'test-bytes', compression: 'lz4' }, [new Uint8Array(4)]) });
    expect(() => deserializing.decode(frames)).toThrow(/"compression" must be a list/);
  });

  it("should give Dask's own bytes serializer's payload as a Serialized of decompressed frames", () => {
    const payload = readPayload(python['dask-serializer-lz4'].map(hex));
    expect(payload.header).toMatchObject({ serializer: 'dask', compression: [null] });
    expect(payload.frames).toEqual([INPUTS['zeros-20000']]);
  });
});
