import { daskCodec } from '../../lib/protocol/dask-codec';
import { encodePrelude, frameMessage, FrameParser, FrameWriter } from '../../lib/protocol';
import { golden, GOLDEN_HANDSHAKE as HANDSHAKE, GOLDEN_IDENTITY_REPLY } from '../fixtures/golden';

const streams: Array<[string, unknown[], number[]]> = [
  ['dask-2022.12.1-client-to-scheduler.bin', [HANDSHAKE, { op: 'identity', reply: true }], [69, 44]],
  [
    'dask-2022.12.1-scheduler-to-client.bin',
    [
      HANDSHAKE,
      GOLDEN_IDENTITY_REPLY,
    ],
    [69, 170],
  ],
];

function decodeAll(chunks: Buffer[]): { messages: unknown[]; sizes: number[]; midMessage: boolean } {
  const codec = daskCodec({ deserialize: true });
  const messages: unknown[] = [];
  const sizes: number[] = [];
  const parser = new FrameParser({
    maxMessageSize: 1 << 20,
    onMessage: (frames, nbytes) => {
      messages.push(codec.decode(frames));
      sizes.push(nbytes);
    },
  });
  for (const chunk of chunks) parser.push(chunk);
  return { messages, sizes, midMessage: parser.midMessage };
}

describe.each(streams)('golden stream %s', (file, expected, sizes) => {
  const stream = golden(file);

  it('should decode in one chunk to what Dask sent', () => {
    expect(decodeAll([stream])).toEqual({ messages: expected, sizes, midMessage: false });
  });

  it('should decode fed byte by byte', () => {
    const bytes = Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1));
    expect(decodeAll(bytes).messages).toEqual(expected);
  });

  it('should decode split in two at every offset', () => {
    for (let at = 0; at <= stream.length; at++) {
      expect(decodeAll([stream.subarray(0, at), stream.subarray(at)]).messages).toEqual(expected);
    }
  });

  it('should decode thousands of copies in one chunk', () => {
    const { messages } = decodeAll([Buffer.concat(Array.from({ length: 2000 }, () => stream))]);
    expect(messages).toHaveLength(4000);
    expect(messages.slice(-2)).toEqual(expected);
  });

  it('should say mid-message when the stream is cut short', () => {
    expect(decodeAll([stream.subarray(0, stream.length - 1)]).midMessage).toBe(true);
  });

  it('should re-encode every message to the bytes Dask wrote', () => {
    const codec = daskCodec({ deserialize: false });
    const reencoded = expected.map((message) => {
      const frames = codec.encode(message);
      return Buffer.concat([encodePrelude(frames), ...frames]);
    });
    expect(Buffer.concat(reencoded)).toEqual(stream);
    expect(Buffer.concat(expected.map((message) => frameMessage(codec.encode(message))))).toEqual(stream);
  });

  it('should write every message through a FrameWriter as the bytes Dask wrote, sizes included', () => {
    const codec = daskCodec({ deserialize: false });
    const writer = new FrameWriter();
    expect(expected.map((message) => writer.add(codec.encodePieces!(message)))).toEqual(sizes);
    expect(writer.pendingBytes).toBe(stream.length);
    expect(Buffer.concat(writer.take())).toEqual(stream);
    expect(writer.pendingBytes).toBe(0);
    expect(writer.take()).toEqual([]);
  });
});
