import { MessageTooLargeError, ProtocolError } from '../../lib/errors';
import { encodePrelude, frameMessage, FrameParser, wireSize } from '../../lib/protocol';
import { packMessage } from '../../lib/protocol/msgpack';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

const IDENTITY_FRAMED = hex(`
  24 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00  14 00 00 00 00 00 00 00
  82 a2 6f 70 a8 69 64 65 6e 74 69 74 79 a5 72 65 70 6c 79 c3`);
const HANDSHAKE_FRAMED = hex(`
  3d 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00  2d 00 00 00 00 00 00 00
  83 ab 63 6f 6d 70 72 65 73 73 69 6f 6e a3 6c 7a 34 a6 70 79 74 68 6f 6e
  93 03 0b 02 af 70 69 63 6b 6c 65 2d 70 72 6f 74 6f 63 6f 6c 05`);

function u64(value: number | bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

/** A message as Dask writes it, or with another T (newer Dask's shorter one, or garbage). */
function framed(frames: Uint8Array[], announced?: number | bigint): Buffer {
  const preludeSize = 8 * (1 + frames.length);
  const total = preludeSize + frames.reduce((sum, frame) => sum + frame.length, 0);
  return Buffer.concat([u64(announced ?? total), u64(frames.length), ...frames.map((f) => u64(f.length)), ...frames]);
}

interface Received {
  frames: Buffer[];
  nbytes: number;
}

function collect(maxMessageSize = 1 << 30): { parser: FrameParser; received: Received[] } {
  const received: Received[] = [];
  const parser = new FrameParser({
    maxMessageSize,
    onMessage: (frames, nbytes) => received.push({ frames: frames.map((f) => Buffer.from(f)), nbytes }),
  });
  return { parser, received };
}

describe('frameMessage', () => {
  it('should frame one message, header and frames, in one buffer of its own', () => {
    const frame = packMessage({ op: 'identity', reply: true });
    const message = frameMessage([frame]);
    expect(message).toEqual(IDENTITY_FRAMED);
    expect(message.buffer).not.toBe(frame.buffer);
  });

  it('should frame frames given as pieces, and messages of no frames', () => {
    const frames = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(300, 1)];
    const pieces = [[Buffer.from('a'), Buffer.from('bc')], [], [Buffer.alloc(100, 1), Buffer.alloc(200, 1)]];
    expect(frameMessage(pieces)).toEqual(framed(frames));
    expect(wireSize(pieces)).toBe(framed(frames).length);
    expect(frameMessage([])).toEqual(Buffer.concat([u64(8), u64(0)]));
  });
});

describe('encodePrelude', () => {
  it('should frame {op: "identity", reply: true} as the 44 golden bytes', () => {
    const frame = packMessage({ op: 'identity', reply: true });
    expect(Buffer.concat([encodePrelude([frame]), frame])).toEqual(IDENTITY_FRAMED);
  });

  it('should frame the Dask handshake as the 69 golden bytes', () => {
    const frame = packMessage({ compression: 'lz4', python: [3, 11, 2], 'pickle-protocol': 5 });
    expect(Buffer.concat([encodePrelude([frame]), frame])).toEqual(HANDSHAKE_FRAMED);
  });

  it('should write T, N and every length for several frames, zero-length ones included', () => {
    const frames = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(300)];
    expect(encodePrelude(frames)).toEqual(Buffer.concat([u64(8 * 4 + 303), u64(3), u64(3), u64(0), u64(300)]));
    expect(wireSize(frames)).toBe(8 * 5 + 303);
  });

  it('should write lengths beyond 32 bits', () => {
    const fake = Object.defineProperty(new Uint8Array(0), 'byteLength', { value: 2 ** 33 + 5 });
    expect(encodePrelude([fake]).subarray(16)).toEqual(u64(2 ** 33 + 5));
  });
});

describe('FrameParser', () => {
  it('should parse one message in one chunk, with nbytes its size on the wire', () => {
    const { parser, received } = collect();
    parser.push(IDENTITY_FRAMED);
    expect(received).toEqual([{ frames: [IDENTITY_FRAMED.subarray(24)], nbytes: 44 }]);
    expect(parser.midMessage).toBe(false);
  });

  it('should parse a message fed byte by byte, and say when it holds part of one', () => {
    const { parser, received } = collect();
    for (let i = 0; i < HANDSHAKE_FRAMED.length; i++) {
      expect(parser.midMessage).toBe(i !== 0);
      parser.push(HANDSHAKE_FRAMED.subarray(i, i + 1));
    }
    expect(parser.midMessage).toBe(false);
    expect(received).toEqual([{ frames: [HANDSHAKE_FRAMED.subarray(24)], nbytes: 69 }]);
  });

  it('should parse two messages split at every offset', () => {
    const stream = Buffer.concat([HANDSHAKE_FRAMED, IDENTITY_FRAMED]);
    for (let at = 0; at <= stream.length; at++) {
      const { parser, received } = collect();
      parser.push(stream.subarray(0, at));
      parser.push(stream.subarray(at));
      expect(received.map((r) => r.frames)).toEqual([[HANDSHAKE_FRAMED.subarray(24)], [IDENTITY_FRAMED.subarray(24)]]);
    }
  });

  it('should parse thousands of messages in one chunk, in order', () => {
    const messages = Array.from({ length: 5000 }, (_, i) => framed([packMessage({ op: 'x', i })]));
    const { parser, received } = collect();
    parser.push(Buffer.concat(messages));
    expect(received).toHaveLength(5000);
    received.forEach((r, i) => expect(Buffer.concat([encodePrelude(r.frames), ...r.frames])).toEqual(messages[i]));
  });

  it('should hand out a frame that lies inside the chunk as a view of it, without copying', () => {
    const chunk = Buffer.concat([IDENTITY_FRAMED, IDENTITY_FRAMED]);
    const frames: Uint8Array[] = [];
    const parser = new FrameParser({ maxMessageSize: 1 << 20, onMessage: (parts) => frames.push(...parts) });
    parser.push(chunk);
    expect(frames).toHaveLength(2);
    expect(frames[1].buffer).toBe(chunk.buffer);
    expect(frames[1].byteOffset).toBe(chunk.byteOffset + 44 + 24);
  });

  it('should parse multi-frame messages, zero-length frames included', () => {
    const frames = [Buffer.from('head'), Buffer.alloc(0), Buffer.from('x'.repeat(1000)), Buffer.alloc(0)];
    const stream = Buffer.concat([framed(frames), framed([Buffer.alloc(0)]), framed(frames)]);
    for (const chunkSize of [1, 7, 24, 1000, stream.length]) {
      const { parser, received } = collect();
      for (let at = 0; at < stream.length; at += chunkSize) parser.push(stream.subarray(at, at + chunkSize));
      expect(received.map((r) => r.frames)).toEqual([frames, [Buffer.alloc(0)], frames]);
      expect(received[0].nbytes).toBe(8 * 6 + 1004);
      expect(parser.midMessage).toBe(false);
    }
  });

  it('should finish a message whose last frames are empty when its bytes end exactly at a chunk end', () => {
    const message = framed([Buffer.from('ab'), Buffer.alloc(0)]);
    const { parser, received } = collect();
    parser.push(message);
    expect(received).toHaveLength(1);
    const onlyEmpty = framed([Buffer.alloc(0), Buffer.alloc(0)]);
    parser.push(onlyEmpty);
    expect(received[1].frames).toEqual([Buffer.alloc(0), Buffer.alloc(0)]);
  });

  it('should deliver a message of no frames', () => {
    const { parser, received } = collect();
    parser.push(Buffer.concat([u64(8), u64(0)]));
    expect(received).toEqual([{ frames: [], nbytes: 16 }]);
  });

  it("should accept newer Dask's shorter T that covers only the prelude, or the prelude and the first frames", () => {
    const frames = [Buffer.from('frame zero'), Buffer.from('one'), Buffer.alloc(5000, 7)];
    const preludeOnly = framed(frames, 8 * 4);
    const firstFrames = framed(frames, 8 * 4 + 10 + 3);
    for (const stream of [preludeOnly, firstFrames]) {
      for (const chunkSize of [1, 13, stream.length]) {
        const { parser, received } = collect();
        for (let at = 0; at < stream.length; at += chunkSize) parser.push(stream.subarray(at, at + chunkSize));
        expect(received).toEqual([{ frames, nbytes: wireSize(frames) }]);
      }
    }
  });

  describe('faults', () => {
    it('should refuse T = 2^63 with a MessageTooLargeError naming limit and size, before allocating or waiting', () => {
      const { parser, received } = collect(1 << 20);
      const allocUnsafe = jest.spyOn(Buffer, 'allocUnsafe');
      const allocUnsafeSlow = jest.spyOn(Buffer, 'allocUnsafeSlow');
      try {
        let error: unknown;
        try {
          parser.push(u64(2n ** 63n)); // T alone: nothing more is awaited
        } catch (err) {
          error = err;
        }
        expect(error).toBeInstanceOf(MessageTooLargeError);
        expect(error).toBeInstanceOf(ProtocolError);
        expect((error as MessageTooLargeError).size).toBe(2n ** 63n);
        expect((error as MessageTooLargeError).limit).toBe(1 << 20);
        expect((error as Error).message).toContain('9223372036854775808');
        expect((error as Error).message).toContain(String(1 << 20));
        expect(allocUnsafe).not.toHaveBeenCalled();
        expect(allocUnsafeSlow).not.toHaveBeenCalled();
        expect(received).toEqual([]);
      } finally {
        allocUnsafe.mockRestore();
        allocUnsafeSlow.mockRestore();
      }
    });

    describe('a peer that does not speak Dask', () => {
      // "HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n", as an HTTP server answers
      const HTTP_REPLY = hex(`
        48 54 54 50 2f 31 2e 31  20 34 30 30 20 42 61 64  20 52 65 71 75 65 73 74  0d 0a
        43 6f 6e 6e 65 63 74 69 6f 6e 3a 20 63 6c 6f 73 65 0d 0a 0d 0a`);
      const SAYS_HTTP = `the peer does not speak Dask's protocol: it sent "HTTP/1.1 400 Bad Request\\r\\nConnection: cl"...`;

      function errorOf(chunks: Buffer[], maxMessageSize = 1 << 20): unknown {
        const { parser, received } = collect(maxMessageSize);
        try {
          for (const chunk of chunks) parser.push(chunk);
        } catch (err) {
          expect(received).toEqual([]);
          return err;
        }
        throw new Error('no error');
      }

      it('should fail with a ProtocolError quoting what it sent, not a MessageTooLargeError', () => {
        for (const maxMessageSize of [1 << 20, Infinity]) {
          const error = errorOf([HTTP_REPLY], maxMessageSize);
          expect(error).toBeInstanceOf(ProtocolError);
          expect(error).not.toBeInstanceOf(MessageTooLargeError);
          expect((error as Error).message).toBe(SAYS_HTTP);
        }
      });

      it('should say so when the first 8 bytes are split between chunks', () => {
        for (let at = 1; at < 8; at++) {
          const error = errorOf([HTTP_REPLY.subarray(0, at), HTTP_REPLY.subarray(at)]);
          expect(error).not.toBeInstanceOf(MessageTooLargeError);
          expect((error as Error).message).toBe(SAYS_HTTP);
        }
        // Byte by byte, nothing follows the 8th byte in its chunk: only those 8 are quoted.
        const bytes = Array.from(HTTP_REPLY.subarray(0, 8), (byte) => Buffer.of(byte));
        expect((errorOf(bytes) as Error).message).toBe(`the peer does not speak Dask's protocol: it sent "HTTP/1.1"`);
      });

      it('should quote a short answer whole, up to its first byte that is not text', () => {
        const ssh = Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'), Buffer.of(0, 0, 1, 0x14)]);
        const error = errorOf([ssh]);
        expect(error).not.toBeInstanceOf(MessageTooLargeError);
        expect((error as Error).message).toBe(`the peer does not speak Dask's protocol: it sent "SSH-2.0-OpenSSH_9.6\\r\\n"`);
      });

      it('should still call a huge T that is not text, or one after the first message, too large', () => {
        expect(errorOf([Buffer.from('ffffffffffffff7f48545450', 'hex')])).toBeInstanceOf(MessageTooLargeError);
        expect(errorOf([Buffer.from('4854545020000000', 'hex')])).toBeInstanceOf(MessageTooLargeError); // "HTTP \0\0\0"
        const { parser, received } = collect();
        parser.push(IDENTITY_FRAMED);
        expect(() => parser.push(HTTP_REPLY)).toThrow(MessageTooLargeError);
        expect(received).toHaveLength(1);
        const { parser: slow } = collect();
        slow.push(Buffer.concat([u64(16 + 2000), u64(1), u64(2000)]));
        slow.push(Buffer.alloc(2000));
        expect(() => slow.push(HTTP_REPLY)).toThrow(MessageTooLargeError);
      });
    });

    it('should check T as soon as its 8 bytes are in, even when they come one by one', () => {
      const { parser } = collect(1000);
      const header = u64(1001);
      for (let i = 0; i < 7; i++) parser.push(header.subarray(i, i + 1));
      expect(() => parser.push(header.subarray(7))).toThrow(MessageTooLargeError);
    });

    it('should refuse a T smaller than the prelude', () => {
      expect(() => collect().parser.push(Buffer.concat([u64(8), u64(1), u64(0)]))).toThrow(ProtocolError);
      expect(() => collect().parser.push(u64(7))).toThrow(ProtocolError);
      expect(() => collect().parser.push(Buffer.concat([u64(16), u64(2n ** 61n)]))).toThrow(/too few for the prelude/);
    });

    it('should refuse a T larger than the prelude and frames', () => {
      const message = framed([Buffer.from('abc')], 8 * 2 + 4);
      const { parser } = collect();
      // Refused once the lengths are known, before the frames are awaited.
      expect(() => parser.push(message.subarray(0, 24))).toThrow(/add up to 19/);
    });

    it('should refuse a frame larger than maxMessageSize before its bytes arrive', () => {
      const { parser } = collect(1000);
      const prelude = Buffer.concat([u64(16), u64(1), u64(2000)]);
      const allocUnsafe = jest.spyOn(Buffer, 'allocUnsafe');
      try {
        expect(() => parser.push(prelude)).toThrow(MessageTooLargeError);
        expect(allocUnsafe).not.toHaveBeenCalled();
      } finally {
        allocUnsafe.mockRestore();
      }
      const { parser: huge } = collect(1000);
      let error: unknown;
      try {
        huge.push(Buffer.concat([u64(16), u64(1), u64(2n ** 64n - 1n)]));
      } catch (err) {
        error = err;
      }
      expect(error).toBeInstanceOf(MessageTooLargeError);
      expect((error as MessageTooLargeError).size).toBe(2n ** 64n - 1n + 16n);
    });

    it('should refuse frames that add up to more than maxMessageSize (with a short T)', () => {
      const { parser } = collect(1000);
      expect(() => parser.push(Buffer.concat([u64(24), u64(2), u64(600), u64(600)]))).toThrow(
        expect.objectContaining({ size: 1224, limit: 1000 }),
      );
    });

    it('should refuse more frames than maxFrameCount', () => {
      const parser = new FrameParser({ maxMessageSize: 1 << 20, maxFrameCount: 2, onMessage: () => undefined });
      expect(() => parser.push(Buffer.concat([u64(32), u64(3)]))).toThrow(/3 frames exceeds the limit of 2/);
    });

    it('should stay dead after an error, throwing the same error', () => {
      const { parser, received } = collect();
      let first: unknown;
      try {
        parser.push(u64(3));
      } catch (err) {
        first = err;
      }
      expect(first).toBeInstanceOf(ProtocolError);
      expect(() => parser.push(IDENTITY_FRAMED)).toThrow(first as Error);
      expect(received).toEqual([]);
    });

    it('should die with the error an onMessage callback throws', () => {
      const failure = new Error('sink failed');
      const parser = new FrameParser({
        maxMessageSize: 1 << 20,
        onMessage: () => {
          throw failure;
        },
      });
      expect(() => parser.push(IDENTITY_FRAMED)).toThrow(failure);
      expect(() => parser.push(IDENTITY_FRAMED)).toThrow(failure);
    });

    it('should reject a bad configuration', () => {
      expect(() => new FrameParser({ maxMessageSize: 0, onMessage: () => undefined })).toThrow(RangeError);
      expect(() => new FrameParser({ maxMessageSize: NaN, onMessage: () => undefined })).toThrow(RangeError);
    });
  });

  it('should assemble a 64 MiB frame fed in 64 KiB chunks in one buffer allocated once at its final size', () => {
    const size = 64 << 20;
    const payload = Buffer.allocUnsafe(size);
    for (let at = 0; at < size; at += 4096) payload.writeUInt32LE(at, at);
    const stream = Buffer.concat([framed([Buffer.from('head'), payload]), IDENTITY_FRAMED]);
    const messages: Uint8Array[][] = [];
    const parser = new FrameParser({ maxMessageSize: 1 << 30, onMessage: (frames) => messages.push(frames) });
    const allocUnsafe = jest.spyOn(Buffer, 'allocUnsafe');
    const concat = jest.spyOn(Buffer, 'concat');
    try {
      for (let at = 0; at < stream.length; at += 64 << 10) parser.push(stream.subarray(at, at + (64 << 10)));
      // One allocation, for the one frame that spans chunks; nothing re-concatenated.
      expect(allocUnsafe.mock.calls).toEqual([[size]]);
      expect(concat).not.toHaveBeenCalled();
    } finally {
      allocUnsafe.mockRestore();
      concat.mockRestore();
    }
    expect(messages).toHaveLength(2);
    const [head, frame] = messages[0];
    expect(Buffer.from(head).toString()).toBe('head');
    expect(frame.byteLength).toBe(size);
    expect(frame.buffer.byteLength).toBe(size); // its own buffer, at its final size
    expect(frame.byteOffset).toBe(0);
    const view = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    for (let at = 0; at < size; at += 4096) {
      if (view.readUInt32LE(at) !== at) throw new Error(`frame corrupt at ${at}`);
    }
    expect(messages[1]).toEqual([IDENTITY_FRAMED.subarray(24)]);
  });
});
