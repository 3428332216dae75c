import { MessageTooLargeError, ProtocolError } from '../../lib/errors';
import { FrameParser } from '../../lib/protocol';
import { pattern } from '../helpers/bytes';

function u64(value: number): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

function framed(frames: Uint8Array[]): Buffer {
  const total = 8 * (1 + frames.length) + frames.reduce((sum, frame) => sum + frame.length, 0);
  return Buffer.concat([u64(total), u64(frames.length), ...frames.map((f) => u64(f.length)), ...frames]);
}

/** Frame by frame with Buffer.equals: jest's toEqual walks large buffers byte by byte, slowly. */
function expectSameFrames(actual: Uint8Array[][], expected: Uint8Array[][]): void {
  expect(actual.map((frames) => frames.map((f) => f.length))).toEqual(expected.map((frames) => frames.map((f) => f.length)));
  actual.forEach((frames, i) => frames.forEach((frame, j) => expect(Buffer.from(frame).equals(expected[i][j])).toBe(true)));
}

interface Received {
  frames: Uint8Array[];
  nbytes: number;
}

function collect(config: { maxMessageSize?: number; firstMessageLimit?: number } = {}) {
  const received: Received[] = [];
  const parser = new FrameParser({
    maxMessageSize: config.maxMessageSize ?? 1 << 30,
    firstMessageLimit: config.firstMessageLimit,
    onMessage: (frames, nbytes) => received.push({ frames, nbytes }),
  });
  return { parser, received };
}

/**
 * Feeds `stream` as the tcp transport's reader does (lib/transports/socket/direct-reader.ts):
 * into the parser's window when it offers one of at least `minimum` bytes (at most
 * `readSize` at a time), else through a reused scratch buffer of `readSize` bytes, whose
 * read is copied into the frame being filled when it all belongs there, or else pushed as
 * a copy of its own; the scratch is overwritten after each read.
 */
function feedLikeOnread(parser: FrameParser, stream: Buffer, readSize: number, minimum: number): { direct: number; scratch: number } {
  const scratch = Buffer.alloc(readSize);
  let pos = 0;
  const counts = { direct: 0, scratch: 0 };
  while (pos < stream.length) {
    const window = parser.receiveWindow(minimum);
    const target = window ?? scratch;
    const n = Math.min(target.length, readSize, stream.length - pos);
    stream.copy(target, 0, pos, pos + n);
    pos += n;
    if (window) {
      counts.direct += n;
      parser.received(n);
      continue;
    }
    counts.scratch += n;
    const frame = parser.receiveWindow(n);
    if (frame) {
      frame.set(scratch.subarray(0, n));
      parser.received(n);
    } else {
      parser.push(Buffer.from(scratch.subarray(0, n)));
    }
    scratch.fill(0xee); // the next read overwrites it
  }
  return counts;
}

describe('FrameParser receive windows (zero-copy reads)', () => {
  it('should offer no window outside a frame, nor for a frame shorter than the minimum', () => {
    const { parser, received } = collect();
    expect(parser.receiveWindow(1)).toBeUndefined();
    const small = pattern(100, 1);
    const bytes = framed([small]);
    parser.push(bytes.subarray(0, 24)); // the prelude only
    expect(parser.receiveWindow(101)).toBeUndefined();
    parser.push(bytes.subarray(24));
    expect(received).toHaveLength(1);
    expect(Buffer.from(received[0].frames[0]).equals(small)).toBe(true);
  });

  it('should hand out the unfilled rest of a large frame, and finish the message when it is filled', () => {
    const { parser, received } = collect();
    const big = pattern(1_000_003, 2);
    const bytes = framed([big]);
    parser.push(bytes.subarray(0, 24 + 17)); // the prelude and 17 bytes of the frame
    const window = parser.receiveWindow(4096)!;
    expect(window.length).toBe(big.length - 17);
    bytes.copy(window, 0, 24 + 17, 24 + 17 + 500_000);
    parser.received(500_000);
    expect(received).toHaveLength(0);
    expect(parser.midMessage).toBe(true);
    const rest = parser.receiveWindow(4096)!;
    expect(rest.length).toBe(big.length - 17 - 500_000);
    bytes.copy(rest, 0, 24 + 17 + 500_000);
    parser.received(rest.length);
    expect(received).toHaveLength(1);
    expect(received[0].nbytes).toBe(bytes.length);
    expect(Buffer.from(received[0].frames[0]).equals(big)).toBe(true);
    expect(parser.midMessage).toBe(false);
    expect(parser.receiveWindow(1)).toBeUndefined();
  });

  it('should allocate the frame for a window right after its prelude, at its final size', () => {
    const { parser, received } = collect();
    const frames = [pattern(10, 3), pattern(300_000, 4), Buffer.alloc(0), pattern(70_000, 5)];
    const bytes = framed(frames);
    const prelude = 8 * (1 + frames.length) + 8;
    parser.push(bytes.subarray(0, prelude + 10)); // prelude and the whole first frame
    const window = parser.receiveWindow(65536)!;
    expect(window.length).toBe(300_000);
    expect(window.byteOffset).toBe(0);
    expect(window.buffer.byteLength).toBeGreaterThanOrEqual(300_000);
    bytes.copy(window, 0, prelude + 10, prelude + 10 + 300_000);
    parser.received(300_000);
    // The empty frame is taken at once; then the last one, pushed in odd pieces.
    parser.push(bytes.subarray(prelude + 10 + 300_000, prelude + 10 + 300_001));
    parser.push(bytes.subarray(prelude + 10 + 300_001));
    expect(received).toHaveLength(1);
    expectSameFrames([received[0].frames], [frames]);
  });

  it('should read many messages, large and small, exactly, through windows and a reused scratch buffer', () => {
    const messages: Buffer[][] = [];
    for (let i = 0; i < 12; i++) {
      if (i % 3 === 0) messages.push([pattern(3 * 1024 * 1024 + i * 7919, 10 + i)]);
      else if (i % 3 === 1) messages.push([pattern(i * 13, 10 + i), pattern(200_001 + i, 20 + i), pattern(5, 30 + i)]);
      else messages.push([pattern(40 + i, 10 + i)]);
    }
    messages.push([]); // a heartbeat
    messages.push([pattern(64 * 1024, 99)]); // exactly the minimum
    const stream = Buffer.concat(messages.map(framed));
    for (const readSize of [65536, 65537, 4093, 1 << 20]) {
      const { parser, received } = collect();
      const counts = feedLikeOnread(parser, stream, readSize, 65536);
      expectSameFrames(
        received.map((m) => m.frames),
        messages,
      );
      expect(counts.direct).toBeGreaterThan(stream.length / 2);
      expect(counts.direct + counts.scratch).toBe(stream.length);
    }
  });

  it('should check the limits before a window is allocated', () => {
    const { parser } = collect({ maxMessageSize: 1 << 30, firstMessageLimit: 1024 });
    expect(() => parser.push(Buffer.concat([u64(8 + 8 + 8 + (1 << 20)), u64(1), u64(1 << 20)]))).toThrow(ProtocolError);
    expect(parser.receiveWindow(1)).toBeUndefined();
    const limited = collect({ maxMessageSize: 1000 }).parser;
    expect(() => limited.push(Buffer.concat([u64(24 + 4096), u64(1), u64(4096)]))).toThrow(MessageTooLargeError);
    expect(limited.receiveWindow(1)).toBeUndefined();
  });

  it('should refuse a received() that does not match a window', () => {
    const { parser } = collect();
    expect(() => parser.received(1)).toThrow(RangeError);
    const other = collect().parser;
    other.push(framed([pattern(100_000, 8)]).subarray(0, 24));
    const window = other.receiveWindow(1)!;
    expect(() => other.received(window.length + 1)).toThrow(RangeError);
  });
});
