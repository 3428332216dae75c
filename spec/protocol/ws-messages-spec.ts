/**
 * Dask's framing over WebSocket, both directions: `wsMessagesOf` lays a message out as a
 * count message and one message per frame; `WsMessageReader` puts them back together.
 * Fed with the payloads of a real Dask 2022.12.1 ws:// exchange (the golden capture).
 */
import { daskCodec, MessageTooLargeError, ProtocolError } from 'rxcomm';
import { messageSize } from '../../lib/protocol';
import { countMessage, joinPieces, WsMessageReader, wsMessageSize, wsMessagesOf } from '../../lib/protocol/framing/ws-messages';
import {
  GOLDEN_WS_CLIENT_HANDSHAKE,
  GOLDEN_WS_COUNT_1,
  GOLDEN_WS_DECODED,
  GOLDEN_WS_IDENTITY_REPLY,
  GOLDEN_WS_IDENTITY_REQUEST,
  GOLDEN_WS_SERVER_HANDSHAKE,
} from '../fixtures/golden/ws-dask-2022.12.1';

const hex = (text: string): Buffer => Buffer.from(text.replace(/\s+/g, ''), 'hex');

function u64(value: number | bigint): Buffer {
  const bytes = Buffer.alloc(8);
  bytes.writeBigUInt64LE(BigInt(value));
  return bytes;
}

interface Received {
  frames: Uint8Array[];
  nbytes: number;
}

function reader(maxMessageSize = 1 << 30, maxFrameCount?: number): { reader: WsMessageReader; received: Received[] } {
  const received: Received[] = [];
  const wsReader = new WsMessageReader({
    maxMessageSize,
    maxFrameCount,
    onMessage: (frames, nbytes) => received.push({ frames, nbytes }),
  });
  return { reader: wsReader, received };
}

/** Pushes `messages` and returns the error the reader threw (or fails the test). */
function failureOf(wsReader: WsMessageReader, ...messages: [Uint8Array, boolean?][]): Error {
  try {
    for (const [data, binary] of messages) wsReader.push(data, binary);
  } catch (err) {
    return err as Error;
  }
  throw new Error('the reader accepted every message');
}

describe('countMessage', () => {
  it("should write the golden count message for a message of one frame", () => {
    expect(Buffer.from(countMessage(1))).toEqual(GOLDEN_WS_COUNT_1);
    expect(Buffer.from(countMessage(1))).toEqual(hex('01 00 00 00 00 00 00 00'));
  });

  it('should write counts as u64 little-endian, both words', () => {
    expect(Buffer.from(countMessage(0x0102))).toEqual(hex('02 01 00 00 00 00 00 00'));
    expect(Buffer.from(countMessage(2 ** 32 + 5))).toEqual(u64(2n ** 32n + 5n));
    expect(Buffer.from(countMessage(2 ** 53 - 1))).toEqual(u64(2n ** 53n - 1n));
  });
});

/** What a peer receives for each part: one whole WebSocket message (fragments reassembled). */
const received = (parts: ReturnType<typeof wsMessagesOf>): Buffer[] => parts.map((part) => Buffer.from(joinPieces(part)));

describe('wsMessagesOf', () => {
  it('should lay a message out as its count, then one message per frame, frames kept by reference', () => {
    const frames = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(300, 1)];
    const parts = wsMessagesOf(frames);
    expect(received(parts)).toEqual([u64(3), ...frames]);
    expect(parts[1]).toBe(frames[0]);
    expect(parts[3]).toBe(frames[2]);
  });

  it('should keep a frame given as pieces as its pieces (sent as fragments of one message), uncopied', () => {
    const big = Buffer.alloc(200, 2);
    const pieces = [[Buffer.from('a'), Buffer.from('bc')], [], [Buffer.alloc(100, 1), big], [Buffer.from('solo')]];
    const parts = wsMessagesOf(pieces);
    expect(parts).toHaveLength(5);
    expect(parts[3]).toBe(pieces[2]);
    expect(received(parts)).toEqual([
      u64(4),
      Buffer.from('abc'),
      Buffer.alloc(0),
      Buffer.concat([Buffer.alloc(100, 1), big]),
      Buffer.from('solo'),
    ]);
  });

  it("should encode Dask's identity request as the golden payloads", () => {
    const parts = wsMessagesOf(daskCodec({ deserialize: true }).encode({ op: 'identity', reply: true }));
    expect(received(parts)).toEqual([GOLDEN_WS_COUNT_1, GOLDEN_WS_IDENTITY_REQUEST]);
  });

  it("should encode a handshake as the golden client's handshake payloads", () => {
    const parts = wsMessagesOf(daskCodec({ deserialize: true }).encode(GOLDEN_WS_DECODED.clientHandshake));
    expect(received(parts)).toEqual([GOLDEN_WS_COUNT_1, GOLDEN_WS_CLIENT_HANDSHAKE]);
  });

  it('should give the same bytes for a count however often it is asked for', () => {
    for (const count of [1, 2, 63, 64, 65, 1000]) {
      expect(Buffer.from(countMessage(count))).toEqual(u64(count));
      expect(Buffer.from(countMessage(count))).toEqual(u64(count));
    }
  });

  it('should measure a message as tcp does, so that one maxMessageSize means the same on both', () => {
    const frames = [Buffer.from('abc'), Buffer.alloc(0), Buffer.alloc(300, 1)];
    expect(wsMessageSize(3, 303)).toBe(messageSize(frames));
  });
});

describe('joinPieces', () => {
  it('should give a whole frame, and a frame of one piece, as it is', () => {
    const frame = Buffer.from('whole');
    expect(joinPieces(frame)).toBe(frame);
    expect(joinPieces([frame])).toBe(frame);
  });

  it('should join pieces in order, and no pieces into an empty message', () => {
    expect(Buffer.from(joinPieces([Buffer.from('a'), Buffer.alloc(0), Buffer.from('bc')]))).toEqual(Buffer.from('abc'));
    expect(joinPieces([]).byteLength).toBe(0);
  });
});

describe('WsMessageReader', () => {
  describe('write then parse', () => {
    const messages: Uint8Array[][] = [
      [Buffer.from('one frame')],
      [Buffer.from('first'), Buffer.alloc(0), Buffer.alloc(1000, 7), Buffer.from('last')],
      // 8-byte frames look like counts: only the state machine tells them apart
      [u64(1), u64(2), u64(0)],
      [Buffer.alloc(0)],
    ];

    it('should give back every multi-frame message, frame for frame, in order', () => {
      const { reader: wsReader, received } = reader();
      for (const message of messages) for (const part of wsMessagesOf(message)) wsReader.push(joinPieces(part));
      expect(received.map((r) => r.frames.map((f) => Buffer.from(f)))).toEqual(messages);
      expect(received.map((r) => r.nbytes)).toEqual(messages.map((m) => 8 + m.reduce((n, f) => n + f.byteLength, 0)));
      expect(wsReader.midMessage).toBe(false);
    });

    it('should give back messages whose frames were written as pieces', () => {
      const { reader: wsReader, received } = reader();
      const pieces = [[Buffer.from('ab'), Buffer.from('c')], [], [Buffer.alloc(10, 1), Buffer.alloc(5, 2)]];
      for (const part of wsMessagesOf(pieces)) wsReader.push(joinPieces(part));
      expect(received).toHaveLength(1);
      expect(received[0].frames.map((f) => Buffer.from(f))).toEqual([
        Buffer.from('abc'),
        Buffer.alloc(0),
        Buffer.concat([Buffer.alloc(10, 1), Buffer.alloc(5, 2)]),
      ]);
      expect(received[0].nbytes).toBe(8 + 3 + 0 + 15);
    });

    it('should hand over the WebSocket messages themselves, without copying', () => {
      const { reader: wsReader, received } = reader();
      const frame = Buffer.from('kept');
      wsReader.push(u64(1));
      wsReader.push(frame);
      expect(received[0].frames[0]).toBe(frame);
    });

    it('should say it is mid-message from the count until the last frame', () => {
      const { reader: wsReader } = reader();
      expect(wsReader.midMessage).toBe(false);
      wsReader.push(u64(3));
      expect(wsReader.midMessage).toBe(true);
      wsReader.push(Buffer.from('a'));
      expect(wsReader.midMessage).toBe(true);
      wsReader.push(Buffer.from('b'));
      expect(wsReader.midMessage).toBe(true);
      wsReader.push(Buffer.from('c'));
      expect(wsReader.midMessage).toBe(false);
    });
  });

  describe('golden payloads of a Dask 2022.12.1 ws:// exchange', () => {
    const codec = daskCodec({ deserialize: true });
    const decodeAll = (...payloads: Buffer[]): unknown[] => {
      const decoded: unknown[] = [];
      const wsReader = new WsMessageReader({ maxMessageSize: 1 << 30, onMessage: (frames) => decoded.push(codec.decode(frames)) });
      for (const payload of payloads) wsReader.push(payload);
      expect(wsReader.midMessage).toBe(false);
      return decoded;
    };

    it("should read the scheduler's side: its handshake, then the identity reply", () => {
      expect(decodeAll(GOLDEN_WS_COUNT_1, GOLDEN_WS_SERVER_HANDSHAKE, GOLDEN_WS_COUNT_1, GOLDEN_WS_IDENTITY_REPLY)).toEqual([
        GOLDEN_WS_DECODED.serverHandshake,
        GOLDEN_WS_DECODED.identityReply,
      ]);
    });

    it("should read the client's side: its handshake, then the identity request", () => {
      expect(decodeAll(GOLDEN_WS_COUNT_1, GOLDEN_WS_CLIENT_HANDSHAKE, GOLDEN_WS_COUNT_1, GOLDEN_WS_IDENTITY_REQUEST)).toEqual([
        GOLDEN_WS_DECODED.clientHandshake,
        GOLDEN_WS_DECODED.identityRequest,
      ]);
    });
  });

  describe('faults', () => {
    it('should refuse a text message where a count is due', () => {
      const { reader: wsReader, received } = reader();
      const error = failureOf(wsReader, [GOLDEN_WS_COUNT_1, false]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error).not.toBeInstanceOf(MessageTooLargeError);
      expect(error.message).toMatch(/text/);
      expect(received).toEqual([]);
    });

    it('should refuse a text message where a frame is due', () => {
      const { reader: wsReader, received } = reader();
      const error = failureOf(wsReader, [GOLDEN_WS_COUNT_1], [Buffer.from('{"op": "identity"}'), false]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.message).toMatch(/text/);
      expect(received).toEqual([]);
    });

    it.each([
      ['7 bytes', Buffer.alloc(7, 0)],
      ['9 bytes', Buffer.concat([GOLDEN_WS_COUNT_1, Buffer.from([0])])],
      ['0 bytes', Buffer.alloc(0)],
      ['the count and frame 0 in one message', Buffer.concat([GOLDEN_WS_COUNT_1, GOLDEN_WS_IDENTITY_REQUEST])],
    ])('should refuse a count message of %s', (_name, count) => {
      const { reader: wsReader, received } = reader();
      const error = failureOf(wsReader, [count]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error).not.toBeInstanceOf(MessageTooLargeError);
      expect(error.message).toContain(`${count.length}-byte`);
      expect(received).toEqual([]);
    });

    it('should refuse a count of 0', () => {
      const error = failureOf(reader().reader, [u64(0)]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.message).toMatch(/0 frames/);
    });

    it('should refuse a count above maxFrameCount, and accept one at it', () => {
      const atLimit = reader(1 << 30, 4);
      atLimit.reader.push(u64(4));
      expect(atLimit.reader.midMessage).toBe(true);
      const error = failureOf(reader(1 << 30, 4).reader, [u64(5)]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error).not.toBeInstanceOf(MessageTooLargeError);
      expect(error.message).toMatch(/5 frames, more than 4/);
    });

    it('should refuse a count above the default maxFrameCount (2^20)', () => {
      const error = failureOf(reader().reader, [u64(2 ** 20 + 1)]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.message).toContain(String(2 ** 20));
    });

    it.each([2n ** 53n, 2n ** 53n + 1n, 2n ** 63n, 2n ** 64n - 1n])('should refuse a u64 count of %s, naming it exactly', (count) => {
      const error = failureOf(reader().reader, [u64(count)]);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.message).toContain(String(count));
    });

    it('should refuse a count whose lengths alone exceed maxMessageSize, before any frame', () => {
      // 20 frames cost 8 * 21 bytes of prelude over tcp: past a 100-byte limit
      const error = failureOf(reader(100, 1000).reader, [u64(20)]) as MessageTooLargeError;
      expect(error).toBeInstanceOf(MessageTooLargeError);
      expect(error.limit).toBe(100);
    });

    it('should refuse frames summing past maxMessageSize, naming size and limit', () => {
      // limit: a 3-frame message (32 bytes of prelude) with 60 bytes of frames
      const { reader: wsReader, received } = reader(32 + 60);
      const error = failureOf(wsReader, [u64(3)], [Buffer.alloc(30)], [Buffer.alloc(30)], [Buffer.alloc(1)]) as MessageTooLargeError;
      expect(error).toBeInstanceOf(MessageTooLargeError);
      expect(error).toBeInstanceOf(ProtocolError);
      expect(error.code).toBe('ERR_MESSAGE_TOO_LARGE');
      expect(error.size).toBe(32 + 61);
      expect(error.limit).toBe(32 + 60);
      expect(error.message).toContain('93');
      expect(error.message).toContain('92');
      expect(received).toEqual([]);
    });

    it('should accept a message of exactly maxMessageSize', () => {
      const { reader: wsReader, received } = reader(16 + 10);
      wsReader.push(u64(1));
      wsReader.push(Buffer.alloc(10));
      expect(received).toHaveLength(1);
      const error = failureOf(wsReader, [u64(1)], [Buffer.alloc(11)]);
      expect(error).toBeInstanceOf(MessageTooLargeError);
    });

    it('should stay dead after its first error, throwing it again for anything', () => {
      const { reader: wsReader, received } = reader();
      const first = failureOf(wsReader, [Buffer.alloc(7)]);
      expect(() => wsReader.push(GOLDEN_WS_COUNT_1)).toThrow(first);
      let again: unknown;
      try {
        wsReader.push(GOLDEN_WS_COUNT_1);
      } catch (err) {
        again = err;
      }
      expect(again).toBe(first);
      expect(() => wsReader.push(GOLDEN_WS_IDENTITY_REQUEST)).toThrow(first);
      expect(received).toEqual([]);
    });

    it('should stay dead after a size error in the middle of a message', () => {
      const { reader: wsReader, received } = reader(100);
      const first = failureOf(wsReader, [u64(2)], [Buffer.alloc(200)]);
      expect(first).toBeInstanceOf(MessageTooLargeError);
      expect(() => wsReader.push(Buffer.alloc(1))).toThrow(first);
      expect(() => wsReader.push(u64(1))).toThrow(first);
      expect(received).toEqual([]);
    });

    it('should refuse a maxMessageSize that is not positive', () => {
      expect(() => new WsMessageReader({ maxMessageSize: 0, onMessage: () => undefined })).toThrow(RangeError);
      expect(() => new WsMessageReader({ maxMessageSize: NaN, onMessage: () => undefined })).toThrow(RangeError);
    });
  });
});
