/**
 * Dask's message codec: what `distributed/protocol/core.py` `dumps` and `loads` do
 * (2022.12.1), minus everything that needs Python.
 *
 * Frame 0 is the msgpack of the message. Each `Serialized` or `Pickled` value in it is
 * written as `{"__Serialized__": k}` / `{"__Pickled__": k}`, with frame k its msgpack
 * sub-header (counting `num-sub-frames`) and the payload frames right after; frame
 * numbers start at 1 and follow the order in which the encoder meets the values.
 */
import { ProtocolError } from '../errors';
import { concatBytes } from './bytes';
import type { FramePieces, MessageCodec } from './codec';
import { MsgpackEncoder, type ObjectHook, decodeDaskDefaults, packMessage, unpackMessage } from './msgpack';
import { Pickled, Serialized } from './serialized';

export interface DaskCodecConfig {
  /**
   * Decode what can be decoded without Python: `__Serialized__` payloads of Dask's
   * `msgpack` serializer, uncompressed, become their values. Everything else (pickle,
   * dask, error, compressed payloads) stays an opaque `Serialized`, and `__Pickled__`
   * always stays an opaque `Pickled`. With `false`, every payload stays opaque, as with
   * Dask's `deserialize=False`.
   */
  deserialize: boolean;
}

const NUM_SUB_FRAMES = 'num-sub-frames';
const NO_FRAMES: Uint8Array[] = [];

/**
 * ## Example
 *
 * ```ts
 * const codec = daskCodec({ deserialize: false });
 * const frames = codec.encode({ op: 'identity', reply: true });
 * codec.decode(frames); // { op: 'identity', reply: true }
 * ```
 */
export function daskCodec(config: DaskCodecConfig): MessageCodec {
  return new DaskCodec(config);
}

const sharedCodecs = new Map<boolean, DaskCodec>();

/**
 * The process's Dask codec for `deserialize`, shared by every comm that has no codec of
 * its own: one encoder and its slab for the process rather than per connect.
 */
export function sharedDaskCodec(deserialize: boolean): DaskCodec {
  let codec = sharedCodecs.get(deserialize);
  if (codec === undefined) sharedCodecs.set(deserialize, (codec = new DaskCodec({ deserialize })));
  return codec;
}

/** One per comm is fine, or one shared: encode and decode each run to completion. */
export class DaskCodec implements MessageCodec {
  private readonly deserialize: boolean;
  private readonly encoder = new MsgpackEncoder({ encodeDefault: (value) => this.encodePayload(value) });
  /** Payloads met while encoding frame 0; null for the usual message with none. */
  private pending: Array<Serialized | Pickled> | null = null;
  private nextFrame = 1;
  /** The frames of the message being decoded, for the hook. */
  private decoding: Uint8Array[] = NO_FRAMES;
  private readonly objectHook: ObjectHook = (object) => this.decodeReserved(object);

  constructor(config: DaskCodecConfig) {
    this.deserialize = config.deserialize;
  }

  encode(message: unknown): Uint8Array[] {
    return this.encodeWith(message, false) as Uint8Array[];
  }

  /** Like `encode`, but frame 0 may come as pieces, its large bins uncopied. */
  encodePieces(message: unknown): FramePieces[] {
    return this.encodeWith(message, true);
  }

  private encodeWith(message: unknown, inPieces: boolean): FramePieces[] {
    // Re-entrant (a toJSON that writes to another comm sharing this codec): the outer
    // message's payload bookkeeping is put back when this one is done.
    const outerPending = this.pending;
    const outerNext = this.nextFrame;
    try {
      return this.encodeOne(message, inPieces);
    } finally {
      this.pending = outerPending;
      this.nextFrame = outerNext;
    }
  }

  private encodeOne(message: unknown, inPieces: boolean): FramePieces[] {
    this.pending = null;
    this.nextFrame = 1;
    let head: FramePieces;
    if (inPieces) {
      const pieces = this.encoder.encodePieces(message);
      head = pieces.length === 1 ? pieces[0] : pieces.slice();
    } else {
      head = this.encoder.encode(message);
    }
    const pending = this.pending as Array<Serialized | Pickled> | null;
    if (pending === null) return [head];
    this.pending = null;
    // Sub-headers are encoded after frame 0 is done: the encoder is not re-entrant.
    const frames: FramePieces[] = [head];
    for (const payload of pending) {
      frames.push(subHeaderBytes(payload));
      for (const frame of payload.frames) frames.push(frame);
    }
    return frames;
  }

  decode(frames: Uint8Array[]): unknown {
    if (frames.length === 0) throw new ProtocolError('a Dask message needs at least one frame');
    this.decoding = frames;
    try {
      return unpackMessage(frames[0], this.objectHook);
    } finally {
      this.decoding = NO_FRAMES;
    }
  }

  /** The encoder's `default`: reserves the frames of a payload and leaves a pointer to them. */
  private encodePayload(value: object): unknown {
    const isSerialized = value instanceof Serialized;
    if (!isSerialized && !(value instanceof Pickled)) return value;
    const at = this.nextFrame;
    this.nextFrame += 1 + value.frames.length;
    (this.pending ??= []).push(value);
    return isSerialized ? { __Serialized__: at } : { __Pickled__: at };
  }

  /** Dask's `_decode_default`, in its order: `__Serialized__`, `__Pickled__`, then the msgpack defaults. */
  private decodeReserved(object: Record<string, unknown>): unknown {
    if ('__Serialized__' in object) {
      const at = object.__Serialized__;
      const headerBytes = this.headerFrame('__Serialized__', at);
      const header = unpackMessage(headerBytes);
      const frames = this.payloadFrames('__Serialized__', at as number, header);
      if (this.deserialize && isPlainMsgpack(header)) {
        // Dask's msgpack_loads: the frames joined, read without its object hook.
        return unpackMessage(frames.length === 1 ? frames[0] : concatBytes(frames), null);
      }
      return new Serialized(header, frames, headerBytes);
    }
    if ('__Pickled__' in object) {
      const at = object.__Pickled__;
      const headerBytes = this.headerFrame('__Pickled__', at);
      const header = unpackMessage(headerBytes, null); // Dask reads it with no hook either
      return new Pickled(header, this.payloadFrames('__Pickled__', at as number, header), headerBytes);
    }
    return decodeDaskDefaults(object);
  }

  private headerFrame(kind: string, at: unknown): Uint8Array {
    const frames = this.decoding;
    if (typeof at !== 'number' || !Number.isInteger(at) || at < 1 || at >= frames.length) {
      throw new ProtocolError(`${kind} points at frame ${String(at)} of a message of ${frames.length} frames`);
    }
    return frames[at];
  }

  private payloadFrames(kind: string, at: number, header: unknown): Uint8Array[] {
    const count = header !== null && typeof header === 'object' ? (header as Record<string, unknown>)[NUM_SUB_FRAMES] : undefined;
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) {
      throw new ProtocolError(`the sub-header of ${kind} ${at} has no valid "${NUM_SUB_FRAMES}"`);
    }
    const frames = this.decoding;
    // Dask would slice short without a word; a missing frame here is a broken message.
    if (at + 1 + count > frames.length) {
      throw new ProtocolError(`${kind} ${at} needs ${count} frames after it, but the message has ${frames.length} frames`);
    }
    return frames.slice(at + 1, at + 1 + count);
  }
}

/** The sub-header frame: the bytes it arrived as when they still fit, else Dask's encoding. */
function subHeaderBytes(payload: Serialized | Pickled): Uint8Array {
  const count = payload.frames.length;
  const header = payload.header;
  if (header instanceof Map) {
    if (payload.headerBytes !== undefined && header.get(NUM_SUB_FRAMES) === count) return payload.headerBytes;
    // Like Dask's `sub_header["num-sub-frames"] = ...`: in place if present, else last.
    return packMessage(new Map(header).set(NUM_SUB_FRAMES, count));
  }
  if (header !== null && typeof header === 'object' && !Array.isArray(header)) {
    if (payload.headerBytes !== undefined && (header as Record<string, unknown>)[NUM_SUB_FRAMES] === count) {
      return payload.headerBytes;
    }
    return packMessage({ ...header, [NUM_SUB_FRAMES]: count });
  }
  throw new TypeError(`the header of a ${payload.constructor.name} must be a map, got ${String(header)}`);
}

/** Dask's `msgpack` serializer, with nothing compressed: decodable here without Python. */
function isPlainMsgpack(header: unknown): boolean {
  if (header === null || typeof header !== 'object') return false;
  const fields = header as Record<string, unknown>;
  if (fields.serializer !== 'msgpack' || 'is-collection' in fields) return false;
  const compression = fields.compression;
  if (compression === undefined || compression === null) return true;
  return Array.isArray(compression) && compression.every((entry) => entry === null);
}
