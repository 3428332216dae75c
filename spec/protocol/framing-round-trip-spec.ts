/**
 * Write, then parse: whatever a FrameWriter writes, a FrameParser reads back frame for
 * frame, with the same size on the wire, however the bytes are cut into chunks.
 */
import { frameMessage, FrameParser, FrameWriter, type FramePieces, wireSize } from '../../lib/protocol';
import { packMessage } from '../../lib/protocol/msgpack';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

/** {op: "identity", reply: true} as Dask 2022.12.1 frames it. */
const IDENTITY_FRAMED = hex(`
  24 00 00 00 00 00 00 00  01 00 00 00 00 00 00 00  14 00 00 00 00 00 00 00
  82 a2 6f 70 a8 69 64 65 6e 74 69 74 79 a5 72 65 70 6c 79 c3`);

/** mulberry32: a small seeded PRNG, so that every run cuts the same chunks. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 0x1_0000_0000;
  };
}

/** Bytes that differ from frame to frame, so that a frame read at the wrong place shows. */
function bytes(length: number, seed: number): Buffer {
  const random = prng(seed);
  const buffer = Buffer.allocUnsafe(length);
  for (let i = 0; i < length; i++) buffer[i] = random() * 256;
  return buffer;
}

const whole = (frame: FramePieces): Buffer => Buffer.concat(frame instanceof Uint8Array ? [frame] : frame);

/** Cuts a stream into chunks of random sizes: mostly small, some large. */
function randomChunks(stream: Buffer, seed: number): Buffer[] {
  const random = prng(seed);
  const chunks: Buffer[] = [];
  for (let at = 0; at < stream.length; ) {
    const size = 1 + Math.floor(random() < 0.7 ? random() * 40 : random() * 70_000);
    chunks.push(stream.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

/**
 * Where two lists of messages first differ, or undefined. Jest's deep equality walks a
 * Buffer byte by byte as an object: far too slow for megabytes.
 */
function firstDifference(got: Buffer[][], want: Buffer[][]): string | undefined {
  if (got.length !== want.length) return `${got.length} messages, not ${want.length}`;
  for (let m = 0; m < want.length; m++) {
    if (got[m].length !== want[m].length) return `message ${m}: ${got[m].length} frames, not ${want[m].length}`;
    for (let f = 0; f < want[m].length; f++) {
      if (!got[m][f].equals(want[m][f])) return `message ${m}, frame ${f}: other bytes`;
    }
  }
  return undefined;
}

interface Written {
  chunks: Uint8Array[];
  sizes: number[];
}

function write(messages: FramePieces[][]): Written {
  const writer = new FrameWriter();
  const sizes = messages.map((frames) => writer.add(frames));
  expect(writer.pendingBytes).toBe(sizes.reduce((a, b) => a + b, 0));
  const chunks = writer.take();
  expect(writer.pendingBytes).toBe(0);
  return { chunks, sizes };
}

function parse(chunks: Buffer[]): { messages: Buffer[][]; sizes: number[]; midMessage: boolean } {
  const messages: Buffer[][] = [];
  const sizes: number[] = [];
  const parser = new FrameParser({
    maxMessageSize: 1 << 30,
    onMessage: (frames, nbytes) => {
      messages.push(frames.map((frame) => Buffer.from(frame)));
      sizes.push(nbytes);
    },
  });
  for (const chunk of chunks) parser.push(chunk);
  return { messages, sizes, midMessage: parser.midMessage };
}

/** Writes the messages, parses them back in chunks of random sizes, and checks both ends agree. */
function roundTrip(messages: FramePieces[][], seeds = [1, 2, 3]): Written {
  const written = write(messages);
  const stream = Buffer.concat(written.chunks);
  expect(stream.length).toBe(written.sizes.reduce((a, b) => a + b, 0));
  expect(written.sizes).toEqual(messages.map((frames) => wireSize(frames)));
  // frameMessage lays every message out the same way, on its own.
  expect(stream.equals(Buffer.concat(messages.map((frames) => frameMessage(frames))))).toBe(true);
  const expected = messages.map((frames) => frames.map(whole));
  for (const chunks of [[stream], ...seeds.map((seed) => randomChunks(stream, seed))]) {
    const parsed = parse(chunks);
    expect(parsed.sizes).toEqual(written.sizes);
    expect(firstDifference(parsed.messages, expected)).toBeUndefined();
    expect(parsed.midMessage).toBe(false);
  }
  return written;
}

describe('FrameWriter, then FrameParser', () => {
  it('should write the golden bytes of a one-frame message and read them back', () => {
    const { chunks, sizes } = roundTrip([[packMessage({ op: 'identity', reply: true })]]);
    expect(Buffer.concat(chunks)).toEqual(IDENTITY_FRAMED);
    expect(sizes).toEqual([44]);
  });

  it('should round-trip messages of no frames, and of empty frames', () => {
    const empty = Buffer.alloc(0);
    const { chunks } = roundTrip([[], [empty], [empty, empty], [Buffer.from('a'), empty, Buffer.from('b'), empty], []]);
    expect(Buffer.concat(chunks).subarray(0, 16)).toEqual(hex('08 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00'));
  });

  it('should round-trip messages of many frames of assorted sizes', () => {
    const random = prng(42);
    const messages = Array.from({ length: 12 }, (_, m) =>
      Array.from({ length: 1 + Math.floor(random() * 40) }, (_, f) => bytes(Math.floor(random() ** 3 * 40_000), m * 100 + f)),
    );
    roundTrip(messages);
  });

  it('should round-trip a message whose header alone is larger than a batch buffer', () => {
    const frames = Array.from({ length: 10_000 }, (_, i) => bytes(i % 7, i));
    const { sizes } = roundTrip([[Buffer.from('before')], frames, [Buffer.from('after')]]);
    expect(sizes[1]).toBe(8 * 10_002 + frames.reduce((n, f) => n + f.length, 0));
  });

  it('should round-trip frames given as pieces, copying small pieces and passing large ones by reference', () => {
    const big = bytes(20_000, 1);
    const bigger = bytes(100_000, 2);
    const small = [bytes(10, 3), bytes(16 * 1024, 4)];
    const messages: FramePieces[][] = [
      [[small[0], big, small[1]], bytes(5, 5), [], [bigger]],
      [[Buffer.alloc(0), small[0]], big],
    ];
    const { chunks } = roundTrip(messages);
    // The large pieces are the very buffers given, once per time they were added.
    expect(chunks.filter((chunk) => chunk === big)).toHaveLength(2);
    expect(chunks.filter((chunk) => chunk === bigger)).toHaveLength(1);
    // The small ones (16 KiB included) were copied into the batch.
    expect(chunks).not.toContain(small[0]);
    expect(chunks).not.toContain(small[1]);
  });

  it('should batch many small messages into few chunks, and read them all back in order', () => {
    const messages = Array.from({ length: 20_000 }, (_, i) => [packMessage({ op: 'x', i })]);
    const { chunks } = roundTrip(messages);
    const total = chunks.reduce((n, chunk) => n + chunk.byteLength, 0);
    expect(chunks.length).toBeLessThanOrEqual(Math.ceil(total / (64 * 1024)) + 1);
  });

  it('should round-trip messages added across several take() calls', () => {
    const writer = new FrameWriter();
    const random = prng(7);
    const messages: Buffer[][] = [];
    const sizes: number[] = [];
    const chunks: Uint8Array[] = [];
    for (let round = 0; round < 50; round++) {
      for (let i = Math.floor(random() * 30); i > 0; i--) {
        const frames = Array.from({ length: Math.floor(random() * 3) }, () => bytes(Math.floor(random() ** 4 * 30_000), round * 1000 + i));
        messages.push(frames);
        sizes.push(writer.add(frames));
      }
      chunks.push(...writer.take());
    }
    const parsed = parse(randomChunks(Buffer.concat(chunks), 11));
    expect(parsed.sizes).toEqual(sizes);
    expect(firstDifference(parsed.messages, messages)).toBeUndefined();
  });
});
