import { readFileSync } from 'fs';
import { join } from 'path';
import { ProtocolError } from '../../lib/errors';
import { MsgpackEncoder, packMessage, unpackMessage } from '../../lib/protocol/msgpack';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Bytes written by Python's msgpack 1.0.3 (see fixtures/generate.py). */
const python: { values: Record<string, string> } = JSON.parse(
  readFileSync(join(__dirname, 'fixtures', 'python-msgpack.json'), 'utf8'),
);

/** The JS value of each Python value in the fixture, as it decodes and as it must encode. */
const jsValues: Record<string, unknown> = {
  identity: { op: 'identity', reply: true },
  handshake: { compression: 'lz4', python: [3, 11, 2], 'pickle-protocol': 5 },
  ints: [0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 40, 2 ** 53 - 1, 2 ** 53,
    -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, -(2 ** 40), -(2 ** 53)],
  'big-ints': [2n ** 53n + 1n, 2n ** 63n - 1n, 2n ** 63n, 2n ** 64n - 1n, -(2n ** 53n) - 1n, -(2n ** 63n)],
  floats: [1.5, -0, 0.1, 1e300, Infinity, -Infinity, NaN],
  strings: ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256),
    'héllo', '日本語', '😀', 'é'.repeat(16), 'é'.repeat(200)],
  bins: [Buffer.alloc(0), Buffer.from([0, 1, 255]), Buffer.alloc(255, 'x'), Buffer.alloc(256, 'x')],
  scalars: [null, true, false],
  nested: { a: [1, [2, { b: null }]], c: { d: false, e: [] }, f: {} },
  'int-keys': new Map([[1, 'a'], [2, 'b'], [-3, 'c']]),
  'tuple-keys': new Map<unknown, unknown>([[['x', 0, 1], 1], [['y', 2], [1, 2]]]),
  'bytes-keys': new Map([[Buffer.from('k'), 1], [Buffer.from([0]), 2]]),
  'mixed-keys': new Map<unknown, unknown>([['a', 1], [2, 2], [null, 3], [true, 4], [1.5, 5]]),
  set: new Set([1, 2, 3]),
  map16: Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`k${i}`, i])),
  array16: Array.from({ length: 20 }, (_, i) => i),
  // JSON.parse makes `__proto__` an own property, as the decoder must.
  'proto-key': JSON.parse('{"__proto__": {"polluted": true}, "x": 2}'),
};

describe('msgpack as Python writes it', () => {
  it('should cover every fixture value', () => {
    expect(Object.keys(jsValues).sort()).toEqual(Object.keys(python.values).sort());
  });

  describe.each(Object.keys(python.values))('%s', (name) => {
    it("should encode to Python's bytes", () => {
      expect(Buffer.from(packMessage(jsValues[name])).toString('hex')).toBe(python.values[name]);
    });

    it("should decode Python's bytes", () => {
      expect(unpackMessage(hex(python.values[name]))).toEqual(jsValues[name]);
    });
  });

  it('should encode {op: "identity", reply: true} to the golden bytes', () => {
    expect(packMessage({ op: 'identity', reply: true })).toEqual(hex('82 a2 6f 70 a8 69 64 65 6e 74 69 74 79 a5 72 65 70 6c 79 c3'));
  });
});

function roundTrip(value: unknown): unknown {
  return unpackMessage(packMessage(value));
}

describe('msgpack round trips', () => {
  it('should round trip unicode strings of every length class', () => {
    const strings = ['', 'ascii', 'é', '日本語テキスト', '😀 emoji 🎉', 'mixed é 日 😀 ascii'];
    for (const base of strings) {
      for (const times of [1, 3, 10, 40, 100, 3000, 30000]) {
        const text = base.repeat(times);
        expect(roundTrip(text)).toBe(text);
        expect(packMessage(text).length).toBeGreaterThanOrEqual(Buffer.byteLength(text));
      }
    }
  });

  it('should write the smallest str header, moving bytes when UTF-8 length crosses a boundary', () => {
    expect(packMessage('é'.repeat(15)).subarray(0, 1)).toEqual(hex('be')); // 30 bytes: fixstr
    expect(packMessage('é'.repeat(16)).subarray(0, 2)).toEqual(hex('d9 20')); // 32 bytes: str8
    expect(packMessage('a'.repeat(63) + '日').subarray(0, 2)).toEqual(hex('d9 42'));
    expect(packMessage('x'.repeat(65535)).subarray(0, 3)).toEqual(hex('da ff ff'));
    expect(packMessage('x'.repeat(65536)).subarray(0, 5)).toEqual(hex('db 00 01 00 00'));
  });

  it('should write a lone surrogate as U+FFFD, as Buffer does', () => {
    expect(packMessage('a\ud800b')).toEqual(hex('a5 61 ef bf bd 62'));
    expect(roundTrip('\udc00'.repeat(70))).toBe('\ufffd'.repeat(70));
  });

  it('should round trip bin as Buffers, from any byte view', () => {
    const bytes = Buffer.from([1, 2, 3, 250]);
    expect(roundTrip(bytes)).toEqual(bytes);
    expect(roundTrip(new Uint8Array([1, 2, 3, 250]))).toEqual(bytes);
    expect(roundTrip(new Uint8Array([9, 1, 2, 3, 250]).subarray(1))).toEqual(bytes);
    expect(roundTrip(new Uint8Array([1, 2, 3, 250]).buffer)).toEqual(bytes);
    expect(roundTrip(new Uint16Array([0x0201]))).toEqual(Buffer.from([1, 2]));
    expect(packMessage(Buffer.alloc(65536)).subarray(0, 5)).toEqual(hex('c6 00 01 00 00'));
    expect(packMessage(Buffer.alloc(300)).subarray(0, 3)).toEqual(hex('c5 01 2c'));
  });

  it('should decode a bin as a view of the input, not a copy', () => {
    const encoded = packMessage({ data: Buffer.alloc(5000, 1) });
    const decoded = unpackMessage(encoded) as { data: Buffer };
    expect(decoded.data.buffer).toBe(encoded.buffer);
  });

  it('should round trip ints beyond 2^53 as bigint, both signs, and keep smaller ones numbers', () => {
    const values = [2n ** 53n + 1n, 2n ** 64n - 1n, -(2n ** 53n) - 1n, -(2n ** 63n), 12345678901234567890n];
    expect(roundTrip(values)).toEqual(values);
    expect(roundTrip([2 ** 40, -(2 ** 40), 2 ** 53])).toEqual([2 ** 40, -(2 ** 40), 2 ** 53]);
    expect(roundTrip(5n)).toBe(5);
    expect(packMessage(5n)).toEqual(hex('05')); // the smallest int, as Python writes it
    expect(() => packMessage(2n ** 64n)).toThrow(RangeError);
    expect(() => packMessage(-(2n ** 63n) - 1n)).toThrow(RangeError);
  });

  it('should write integers beyond 32 bits as ints, not floats (unlike msgpackr)', () => {
    expect(packMessage(8e9)).toEqual(hex('cf 00 00 00 01 dc d6 50 00'));
    expect(packMessage(-8e9)).toEqual(hex('d3 ff ff ff fe 23 29 b0 00'));
  });

  it('should round trip inf, -inf, NaN, -0 and fractions as float64', () => {
    for (const value of [Infinity, -Infinity, NaN, -0, 0.5, 1e-300, 2 ** 60, Number.MAX_VALUE]) {
      expect(roundTrip(value)).toEqual(value);
    }
    expect(packMessage(2 ** 60)[0]).toBe(0xcb); // beyond 2^53 a number is a float
  });

  it('should decode an integral float (3.0) as 3 and re-encode it as an int (a known limitation)', () => {
    const decoded = unpackMessage(hex('cb 40 08 00 00 00 00 00 00'));
    expect(decoded).toBe(3);
    expect(packMessage(decoded)).toEqual(hex('03'));
  });

  it('should round trip null, booleans, and write undefined as nil', () => {
    expect(roundTrip([null, true, false])).toEqual([null, true, false]);
    expect(packMessage(undefined)).toEqual(hex('c0'));
    expect(packMessage({ a: undefined })).toEqual(hex('81 a1 61 c0'));
  });

  it('should round trip nested arrays and maps, large ones included', () => {
    const value = {
      list: [1, [2, [3, [4, { deep: ['x'] }]]]],
      big: Array.from({ length: 70000 }, (_, i) => i % 7),
      wide: Object.fromEntries(Array.from({ length: 70000 }, (_, i) => [`k${i}`, i])),
      empty: { a: {}, b: [] },
    };
    expect(roundTrip(value)).toEqual(value);
    expect(packMessage(value.big).subarray(0, 5)).toEqual(hex('dd 00 01 11 70'));
  });

  it('should round trip a Map with int keys, keeping them ints', () => {
    const value = new Map([[1, 'one'], [2, 'two']]);
    const decoded = roundTrip(value) as Map<number, string>;
    expect(decoded).toBeInstanceOf(Map);
    expect(decoded.get(1)).toBe('one');
    expect(packMessage(decoded)).toEqual(packMessage(value));
  });

  it('should round trip a Map with tuple (array) keys', () => {
    const value = new Map<unknown, unknown>([[['x', 0, 1], 'a'], [['x', 0, 2], { nested: new Map([[3, 4]]) }]]);
    const decoded = roundTrip(value) as Map<unknown, unknown>;
    expect(decoded).toEqual(value);
    expect([...decoded.keys()]).toEqual([['x', 0, 1], ['x', 0, 2]]);
    expect(packMessage(decoded)).toEqual(packMessage(value));
  });

  it('should round trip a Map with bytes keys', () => {
    const value = new Map([[Buffer.from('key'), 1]]);
    const decoded = roundTrip(value) as Map<Buffer, number>;
    expect([...decoded.keys()]).toEqual([Buffer.from('key')]);
    expect(packMessage(decoded)).toEqual(packMessage(value));
  });

  it('should decode a string-keyed Map as a plain object, and string-keyed maps inside a Map too', () => {
    expect(roundTrip(new Map([['a', 1]]))).toEqual({ a: 1 });
    const decoded = roundTrip(new Map<unknown, unknown>([[1, new Map([['b', 2]])], ['s', [{ c: 3 }]]]));
    expect(decoded).toEqual(new Map<unknown, unknown>([[1, { b: 2 }], ['s', [{ c: 3 }]]]));
  });

  it('should keep int keys exact where msgpackr alone would make them strings', () => {
    const decoded = unpackMessage(hex('81 01 a1 61')) as Map<number, string>;
    expect(decoded).toEqual(new Map([[1, 'a']]));
  });

  it('should round trip a Set as Dask does', () => {
    const value = { s: new Set(['a', 1]) };
    expect(packMessage(value)).toEqual(packMessage({ s: { __Set__: true, 'as-list': ['a', 1] } }));
    expect(roundTrip(value)).toEqual(value);
  });

  it('should leave a __Set__ map alone without the object hook, as Dask payloads are read', () => {
    const bytes = packMessage({ __Set__: true, 'as-list': [1] });
    expect(unpackMessage(bytes, null)).toEqual({ __Set__: true, 'as-list': [1] });
    expect(() => unpackMessage(packMessage({ __Set__: true }))).toThrow(ProtocolError);
  });

  it('should keep a __proto__ key as an own property without polluting any prototype', () => {
    for (const bytes of [
      hex('82 a9 5f5f70726f746f5f5f 81 a8 706f6c6c75746564 c3 a1 78 02'),
      // and nested inside a map that needs the Map path anyway
      hex('82 01 82 a9 5f5f70726f746f5f5f 81 a8 706f6c6c75746564 c3 a1 78 02 a1 79 03'),
    ]) {
      const decoded = unpackMessage(bytes) as Record<string, unknown>;
      const object = (decoded instanceof Map ? decoded.get(1) : decoded) as Record<string, unknown>;
      expect(Object.getPrototypeOf(object)).toBe(Object.prototype);
      expect(Object.keys(object)).toEqual(['__proto__', 'x']);
      expect(object.polluted).toBeUndefined();
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(packMessage(decoded)).toEqual(bytes);
    }
  });

  it('should encode a Date by its toJSON, and class instances by their own fields', () => {
    expect(roundTrip(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
    class Point {
      constructor(
        readonly x: number,
        readonly y: number,
      ) {}
    }
    expect(roundTrip(new Point(1, 2))).toEqual({ x: 1, y: 2 });
    expect(roundTrip(Object.assign(Object.create(null), { a: 1 }))).toEqual({ a: 1 });
  });

  it('should refuse functions, symbols and cycles', () => {
    expect(() => packMessage({ f: () => 1 })).toThrow(TypeError);
    expect(() => packMessage(Symbol('s'))).toThrow(TypeError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => packMessage(cyclic)).toThrow(RangeError);
    expect(packMessage({ ok: 1 })).toEqual(hex('81 a2 6f 6b 01')); // and the encoder still works
  });

  it('should never overwrite earlier results while encoding many messages', () => {
    const first = packMessage({ op: 'first', data: 'x'.repeat(100) });
    const copy = Buffer.from(first);
    const results = Array.from({ length: 20000 }, (_, i) => packMessage({ op: 'next', i }));
    packMessage({ big: Buffer.alloc(300000, 2) });
    expect(first).toEqual(copy);
    expect(unpackMessage(results[12345])).toEqual({ op: 'next', i: 12345 });
  });

  it('should encode a large bin after a small head into one frame', () => {
    const big = Buffer.alloc(10 << 20, 7);
    const encoded = packMessage({ op: 'put', data: big });
    expect(encoded.length).toBe(1 + 3 + 4 + 5 + 5 + big.length);
    expect((unpackMessage(encoded) as { data: Buffer }).data.equals(big)).toBe(true);
  });

  it('should let a re-entrant encodeDefault encode on its own without corrupting the message', () => {
    class Inner {}
    const encoder: MsgpackEncoder = new MsgpackEncoder({
      encodeDefault: (value) => (value instanceof Inner ? encoder.encode('inner') : value),
    });
    expect(unpackMessage(encoder.encode({ a: new Inner(), b: 'after' }))).toEqual({ a: hex('a5 69 6e 6e 65 72'), b: 'after' });
  });
});

describe('msgpack decoding of malformed data', () => {
  it.each([
    ['truncated map', '82 a1 61 01'],
    ['truncated string', 'a5 61 62'],
    ['truncated int', 'cd 01'],
    ['empty input', ''],
    ['trailing bytes', 'c0 c0'],
    ['the never-used byte 0xc1', 'c1'],
    ['an extension type', 'd4 01 00'],
    ["msgpackr's record extension", 'd4 72 40 91 a1 61'],
    ['an array claiming 2^32-1 items', 'dd ff ff ff ff 01'],
    ['a map claiming 65535 entries', 'de ff ff 01 02'],
  ])('should refuse %s with a ProtocolError', (_, bytes) => {
    expect(() => unpackMessage(hex(bytes))).toThrow(ProtocolError);
  });

  it('should refuse nesting deeper than Python allows, without overflowing the stack', () => {
    expect(() => unpackMessage(Buffer.alloc(100000, 0x91))).toThrow(/deeper than 1024/);
    const ok = Buffer.concat([Buffer.alloc(1000, 0x91), hex('01')]);
    expect(unpackMessage(ok)).toBeDefined();
  });
});
