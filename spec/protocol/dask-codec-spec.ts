import { readFileSync } from 'fs';
import { join } from 'path';
import { ProtocolError } from '../../lib/errors';
import { daskCodec } from '../../lib/protocol/dask-codec';
import { packMessage, unpackMessage } from '../../lib/protocol/msgpack';
import { Pickled, Serialized, serializeMsgpack } from '../../lib/protocol/serialized';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** Frames written by Dask 2022.12.1's `distributed.protocol.dumps` (see fixtures/generate.py). */
const python: { messages: Record<string, string[]> } = JSON.parse(
  readFileSync(join(__dirname, 'fixtures', 'python-msgpack.json'), 'utf8'),
);
const daskFrames = (name: string): Buffer[] => python.messages[name].map((frame) => hex(frame));
const asHex = (frames: Uint8Array[]): string[] => frames.map((frame) => Buffer.from(frame).toString('hex'));

describe('daskCodec', () => {
  const opaque = daskCodec({ deserialize: false });
  const deserializing = daskCodec({ deserialize: true });

  it('should encode a plain message as one frame, the golden bytes', () => {
    expect(opaque.encode({ op: 'identity', reply: true })).toEqual([
      hex('82 a2 6f 70 a8 69 64 65 6e 74 69 74 79 a5 72 65 70 6c 79 c3'),
    ]);
  });

  it('should decode a plain message, and refuse no frames', () => {
    expect(opaque.decode([packMessage({ op: 'x', s: new Set([1]) })])).toEqual({ op: 'x', s: new Set([1]) });
    expect(() => opaque.decode([])).toThrow(ProtocolError);
  });

  describe('Serialized and Pickled built by hand, the way Python lays them out', () => {
    // Dask's dumps: frame 0 points at frame k; frame k is the sub-header (with
    // num-sub-frames); the payload frames follow. Offsets start at 1.
    const pickleHeader = { serializer: 'pickle', writeable: [], compression: [null, null] };
    const subHeader = packMessage({ ...pickleHeader, 'num-sub-frames': 2 });
    const pickledHeader = packMessage({ 'pickled-obj': Buffer.from('80054b7b2e', 'hex'), 'num-sub-frames': 1 });
    const pythonFrames = [
      packMessage({ op: 'x', a: { __Serialized__: 1 }, b: [{ __Pickled__: 4 }] }),
      subHeader,
      Buffer.from('payload one'),
      Buffer.alloc(0),
      pickledHeader,
      Buffer.from('oob buffer'),
    ];

    it('should decode them to opaque Serialized and Pickled that keep the header bytes', () => {
      const message = opaque.decode(pythonFrames) as { a: Serialized; b: [Pickled] };
      expect(message.a).toBeInstanceOf(Serialized);
      expect(message.a.header).toEqual({ ...pickleHeader, 'num-sub-frames': 2 });
      expect(message.a.frames).toEqual([Buffer.from('payload one'), Buffer.alloc(0)]);
      expect(message.a.headerBytes).toBe(subHeader);
      expect(message.b[0]).toBeInstanceOf(Pickled);
      expect(message.b[0].frames).toEqual([Buffer.from('oob buffer')]);
    });

    it('should forward them byte-identically with deserialize: false', () => {
      expect(asHex(opaque.encode(opaque.decode(pythonFrames)))).toEqual(asHex(pythonFrames));
    });

    it('should encode new ones without header bytes exactly as Dask lays them out', () => {
      const message = {
        op: 'x',
        a: new Serialized(pickleHeader, [Buffer.from('payload one'), Buffer.alloc(0)]),
        b: [new Pickled({ 'pickled-obj': Buffer.from('80054b7b2e', 'hex') }, [Buffer.from('oob buffer')])],
      };
      expect(asHex(opaque.encode(message))).toEqual(asHex(pythonFrames));
    });

    it('should re-encode the header when the frames no longer match its count', () => {
      const decoded = opaque.decode(pythonFrames) as { a: Serialized };
      const changed = new Serialized(decoded.a.header, [Buffer.from('only one')], decoded.a.headerBytes);
      const frames = opaque.encode({ x: changed });
      expect(unpackMessage(frames[1])).toEqual({ ...pickleHeader, 'num-sub-frames': 1 });
    });

    it('should accept a header that is a Map', () => {
      const header = new Map<unknown, unknown>([['serializer', 'pickle'], [1, 'odd key']]);
      const frames = opaque.encode({ x: new Serialized(header, [Buffer.from('p')]) });
      expect(frames).toHaveLength(3);
      expect(unpackMessage(frames[1])).toEqual(new Map<unknown, unknown>([['serializer', 'pickle'], [1, 'odd key'], ['num-sub-frames', 1]]));
      expect(() => opaque.encode({ x: new Serialized('not a map', []) })).toThrow(TypeError);
    });
  });

  describe("frames written by Dask's dumps", () => {
    it.each(['serialized-msgpack', 'serialized-msgpack-map', 'serialized-pickle', 'pickled', 'many', 'compressed'])(
      'should forward %s byte-identically with deserialize: false',
      (name) => {
        const frames = daskFrames(name);
        expect(asHex(opaque.encode(opaque.decode(frames)))).toEqual(asHex(frames));
      },
    );

    it('should decode a msgpack-serialized payload with deserialize: true, and keep it opaque without', () => {
      const frames = daskFrames('serialized-msgpack');
      expect(deserializing.decode(frames)).toEqual({ op: 'x', data: 123 });
      const kept = opaque.decode(frames) as { data: Serialized };
      expect(kept.data).toBeInstanceOf(Serialized);
      expect(kept.data.header).toEqual({
        serializer: 'msgpack',
        'split-num-sub-frames': [1],
        'split-offsets': [0],
        compression: [null],
        'num-sub-frames': 1,
      });
      expect(kept.data.frames).toEqual([hex('7b')]);
    });

    it('should keep pickle-serialized payloads opaque even with deserialize: true', () => {
      const message = deserializing.decode(daskFrames('serialized-pickle')) as { data: Serialized };
      expect(message.data).toBeInstanceOf(Serialized);
      expect((message.data.header as { serializer: string }).serializer).toBe('pickle');
      expect(message.data.frames).toEqual([hex('80054b7b2e')]);
    });

    it('should keep Pickled opaque, never unpickling', () => {
      const message = deserializing.decode(daskFrames('pickled')) as { data: Pickled };
      expect(message.data).toBeInstanceOf(Pickled);
      expect(message.data.header).toEqual({ 'pickled-obj': hex('80054b7b2e'), compression: [], 'num-sub-frames': 0 });
      expect(message.data.frames).toEqual([]);
    });

    it("should decompress an lz4 payload by its label with deserialize: true, and keep it as it came without", () => {
      const frames = daskFrames('compressed');
      expect(deserializing.decode(frames)).toEqual({ op: 'x', data: new Uint8Array(100000).fill(0x78) });
      const kept = opaque.decode(frames) as { data: Serialized };
      expect((kept.data.header as { compression: unknown }).compression).toEqual(['lz4']);
      expect(kept.data.frames).toEqual([frames[2]]);
    });

    it('should keep collection payloads opaque even with deserialize: true', () => {
      const collection = deserializing.decode(daskFrames('serialized-msgpack-map')) as { data: Serialized };
      expect(collection.data).toBeInstanceOf(Serialized);
      expect((collection.data.header as Record<string, unknown>)['is-collection']).toBe(true);
    });

    it('should resolve several payloads by their frame offsets', () => {
      const message = deserializing.decode(daskFrames('many')) as { a: unknown; b: [Pickled, Serialized] };
      expect(message.a).toBe('first');
      expect(message.b[0]).toBeInstanceOf(Pickled);
      expect((message.b[0].header as Record<string, unknown>)['pickled-obj']).toEqual(hex('80054b052e'));
      expect(message.b[1]).toBeInstanceOf(Serialized); // a dict: Dask's collection form
      expect(message.b[1].frames).toEqual([hex('01')]);
    });

    it("should make serializeMsgpack(123) the frames of Dask's to_serialize(123) with the msgpack serializer", () => {
      const frames = opaque.encode({ op: 'x', data: serializeMsgpack(123) });
      expect(asHex(frames)).toEqual(python.messages['serialized-msgpack']);
      expect(deserializing.decode(opaque.encode({ v: serializeMsgpack({ k: [1, 'a'] }) }))).toEqual({ v: { k: [1, 'a'] } });
    });

    it('should join sharded msgpack payload frames before decoding, as Dask does', () => {
      const payload = packMessage({ big: 'x'.repeat(100) });
      const header = { serializer: 'msgpack', 'split-num-sub-frames': [2], 'split-offsets': [0], compression: [null, null] };
      const message = { data: new Serialized(header, [payload.subarray(0, 10), payload.subarray(10)]) };
      expect(deserializing.decode(opaque.encode(message))).toEqual({ data: { big: 'x'.repeat(100) } });
    });
  });

  describe('malformed references', () => {
    const header = packMessage({ serializer: 'pickle', 'num-sub-frames': 1 });
    it.each([
      ['a frame beyond the message', [packMessage({ a: { __Serialized__: 3 } }), header, Buffer.from('p')]],
      ['frame 0', [packMessage({ a: { __Serialized__: 0 } }), header, Buffer.from('p')]],
      ['a non-integer offset', [packMessage({ a: { __Pickled__: 'one' } }), header, Buffer.from('p')]],
      ['a header without num-sub-frames', [packMessage({ a: { __Serialized__: 1 } }), packMessage({ serializer: 'pickle' })]],
      ['fewer payload frames than announced', [packMessage({ a: { __Serialized__: 1 } }), header]],
      ['a header that is not msgpack', [packMessage({ a: { __Serialized__: 1 } }), hex('c1'), Buffer.from('p')]],
    ])('should refuse %s with a ProtocolError', (_, frames) => {
      expect(() => opaque.decode(frames as Buffer[])).toThrow(ProtocolError);
    });
  });
});
