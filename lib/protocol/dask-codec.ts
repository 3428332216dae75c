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
import type { CodecContext, FramePieces, MessageCodec } from './codec';
import { decompressFrame, isCompressionName, maybeCompress } from './compression';
import { MsgpackEncoder, type ObjectHook, decodeDaskDefaults, packMessage, unpackMessage } from './msgpack';
import { Pickled, Serialize, Serialized } from './serialized';

/**
 * Options of `daskCodec`.
 *
 * ## Example
 * ```ts
 * // A relay's codec: payloads stay as they came (Serialized, Pickled, still compressed).
 * const config: DaskCodecConfig = { deserialize: false };
 * const codec = daskCodec(config);
 * ```
 *
 * @group Transports
 */
export interface DaskCodecConfig {
  /**
   * Decode what can be decoded without Python: compressed payload frames are
   * decompressed as their labels say, and `__Serialized__` payloads of Dask's `msgpack`
   * serializer become their values. Everything else (pickle, dask, error) stays a
   * `Serialized` of decompressed frames, and `__Pickled__` always stays a `Pickled`.
   * With `false`, every payload stays opaque and as it came, still compressed, as with
   * Dask's `deserialize=False`, so that forwarding it is byte-identical.
   */
  deserialize: boolean;
}

const NUM_SUB_FRAMES = 'num-sub-frames';
const NO_FRAMES: Uint8Array[] = [];
/** Without a context: what one message may decompress to, `maxMessageSize`'s default. */
const DEFAULT_DECOMPRESS_LIMIT = 1024 * 1024 * 1024;
/** `toSerialize` payloads: Dask's `msgpack` serializer, one frame. */
const SERIALIZE_HEADER = { serializer: 'msgpack', 'split-num-sub-frames': [1], 'split-offsets': [0] } as const;

/**
 * Dask's codec, the one every comm uses unless given a `codec`: for a backend of your
 * own, or to encode and decode Dask messages outside a comm.
 *
 * ## Example
 *
 * ```ts
 * const codec = daskCodec({ deserialize: false });
 * const frames = codec.encode({ op: 'identity', reply: true });
 * codec.decode(frames); // { op: 'identity', reply: true }
 * ```
 *
 * @group Transports
 */
export function daskCodec(config: DaskCodecConfig): MessageCodec {
  return new DaskCodec(config);
}

/** A primitive msgpack writes as itself, always the same way. */
function isConstantValue(value: unknown): boolean {
  return value === null || (typeof value !== 'object' && typeof value !== 'function' && typeof value !== 'symbol');
}

/**
 * Whether `message` can never change, nor encode differently: a frozen plain map whose
 * values are data properties holding primitives or frozen arrays of them (no payload, so
 * its encoding does not depend on the comm's compression either). The handshake map a
 * comm sends is one (`LOCAL_HANDSHAKE` and the maps made from it), unchanged on every
 * connect and accept.
 */
function isConstantMessage(message: object): boolean {
  if (!Object.isFrozen(message) || Array.isArray(message)) return false;
  const proto = Object.getPrototypeOf(message);
  if (proto !== Object.prototype && proto !== null) return false;
  for (const key of Object.keys(message)) {
    const property = Object.getOwnPropertyDescriptor(message, key);
    if (property === undefined || !('value' in property)) return false;
    const value: unknown = property.value;
    if (isConstantValue(value)) continue;
    if (!Array.isArray(value) || !Object.isFrozen(value) || !value.every(isConstantValue)) return false;
  }
  return true;
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
  /** For `toSerialize` values, which Dask reads with plain msgpack: no payload may nest in one. */
  private readonly payloadEncoder = new MsgpackEncoder({ encodeDefault: refuseNestedPayload });
  /** Payloads met while encoding frame 0; null for the usual message with none. */
  private pending: Array<Serialized | Pickled | Serialize> | null = null;
  private nextFrame = 1;
  /** The frames of the message being decoded, for the hook. */
  private decoding: Uint8Array[] = NO_FRAMES;
  /** What the payloads of the message being decoded may still decompress to. */
  private decompressBudget = 0;
  /** The context of the message being decoded, told what decompressing added. */
  private decodeContext: CodecContext | undefined;
  private readonly objectHook: ObjectHook = (object) => this.decodeReserved(object);
  /** The last constant message encoded (`isConstantMessage`: the handshake map), and its frame 0, encoded once. */
  private constant: object | undefined;
  private constantFrame: Uint8Array | undefined;

  constructor(config: DaskCodecConfig) {
    this.deserialize = config.deserialize;
  }

  encode(message: unknown, context?: CodecContext): Uint8Array[] {
    return this.encodeWith(message, false, context) as Uint8Array[];
  }

  /** Like `encode`, but frame 0 may come as pieces, its large bins uncopied. */
  encodePieces(message: unknown, context?: CodecContext): FramePieces[] {
    return this.encodeWith(message, true, context);
  }

  private encodeWith(message: unknown, inPieces: boolean, context: CodecContext | undefined): FramePieces[] {
    if (message === this.constant) return [this.constantFrame as Uint8Array];
    if (typeof message === 'object' && message !== null && Object.isFrozen(message) && isConstantMessage(message)) {
      // Its own copy: what the encoder returns is a view into its slab, reused by the next.
      this.constantFrame = this.encoder.encode(message).slice();
      this.constant = message;
      return [this.constantFrame];
    }
    // Re-entrant (a toJSON that writes to another comm sharing this codec): the outer
    // message's payload bookkeeping is put back when this one is done.
    const outerPending = this.pending;
    const outerNext = this.nextFrame;
    try {
      return this.encodeOne(message, inPieces, context);
    } finally {
      this.pending = outerPending;
      this.nextFrame = outerNext;
    }
  }

  private encodeOne(message: unknown, inPieces: boolean, context: CodecContext | undefined): FramePieces[] {
    this.pending = null;
    this.nextFrame = 1;
    let head: FramePieces;
    if (inPieces) {
      const pieces = this.encoder.encodePieces(message);
      head = pieces.length === 1 ? pieces[0] : pieces.slice();
    } else {
      head = this.encoder.encode(message);
    }
    const pending = this.pending as Array<Serialized | Pickled | Serialize> | null;
    if (pending === null) return [head];
    this.pending = null;
    // Sub-headers are encoded after frame 0 is done: the encoder is not re-entrant.
    const frames: FramePieces[] = [head];
    for (const payload of pending) {
      if (payload instanceof Serialize) {
        this.pushSerialize(frames, payload.value, inPieces, context?.compression ?? null);
        continue;
      }
      frames.push(subHeaderBytes(payload));
      for (const frame of payload.frames) frames.push(frame);
    }
    return frames;
  }

  /**
   * A `toSerialize` payload: its sub-header and its one frame, Dask's `msgpack`
   * serializer, compressed with `compression` when Dask's rule says it pays. The frame
   * comes from the encoder like frame 0 (a large bin as a piece of its own, uncopied)
   * and is joined only to be compressed.
   */
  private pushSerialize(frames: FramePieces[], value: unknown, inPieces: boolean, compression: string | null): void {
    const pieces = this.payloadEncoder.encodePieces(value).slice();
    const compressed = compression !== null && isCompressionName(compression) ? maybeCompress(pieces, compression) : undefined;
    const header = { ...SERIALIZE_HEADER, compression: [compressed === undefined ? null : compression], [NUM_SUB_FRAMES]: 1 };
    frames.push(this.encoder.encode(header));
    if (compressed !== undefined) frames.push(compressed);
    else frames.push(pieces.length === 1 ? pieces[0] : inPieces ? pieces : concatBytes(pieces));
  }

  decode(frames: Uint8Array[], context?: CodecContext): unknown {
    if (frames.length === 0) throw new ProtocolError('a Dask message needs at least one frame');
    this.decoding = frames;
    this.decompressBudget = context?.maxMessageSize ?? DEFAULT_DECOMPRESS_LIMIT;
    this.decodeContext = context;
    try {
      return unpackMessage(frames[0], this.objectHook);
    } finally {
      this.decoding = NO_FRAMES;
      this.decodeContext = undefined;
    }
  }

  /** The encoder's `default`: reserves the frames of a payload and leaves a pointer to them. */
  private encodePayload(value: object): unknown {
    const isPickled = value instanceof Pickled;
    if (!isPickled && !(value instanceof Serialized) && !(value instanceof Serialize)) return value;
    const at = this.nextFrame;
    this.nextFrame += 1 + (value instanceof Serialize ? 1 : value.frames.length);
    (this.pending ??= []).push(value);
    return isPickled ? { __Pickled__: at } : { __Serialized__: at };
  }

  /** Dask's `_decode_default`, in its order: `__Serialized__`, `__Pickled__`, then the msgpack defaults. */
  private decodeReserved(object: Record<string, unknown>): unknown {
    if ('__Serialized__' in object) {
      const at = object.__Serialized__;
      const headerBytes = this.headerFrame('__Serialized__', at);
      const header = unpackMessage(headerBytes);
      const frames = this.payloadFrames('__Serialized__', at as number, header);
      if (!this.deserialize) return new Serialized(header, frames, headerBytes);
      const labels = compressionLabels(header);
      const plain = labels === undefined ? frames : this.decompress(labels, frames);
      if (isMsgpackSerializer(header)) {
        // Dask's msgpack_loads: the frames joined, read without its object hook.
        return unpackMessage(plain.length === 1 ? plain[0] : concatBytes(plain), null);
      }
      return labels === undefined ? new Serialized(header, frames, headerBytes) : new Serialized(uncompressedHeader(header), plain);
    }
    if ('__Pickled__' in object) {
      const at = object.__Pickled__;
      const headerBytes = this.headerFrame('__Pickled__', at);
      const header = unpackMessage(headerBytes, null); // Dask reads it with no hook either
      const frames = this.payloadFrames('__Pickled__', at as number, header);
      const labels = this.deserialize ? compressionLabels(header) : undefined;
      if (labels === undefined) return new Pickled(header, frames, headerBytes);
      return new Pickled(uncompressedHeader(header), this.decompress(labels, frames));
    }
    return decodeDaskDefaults(object);
  }

  /** Each frame as its label says (Dask's `decompress`: labels and frames paired in order). */
  private decompress(labels: unknown[], frames: Uint8Array[]): Uint8Array[] {
    return frames.map((frame, i) => {
      const plain = decompressFrame(labels[i] ?? null, frame, this.decompressBudget);
      if (plain !== frame) {
        this.decompressBudget -= plain.length;
        this.decodeContext?.inflated?.(plain.length - frame.length);
      }
      return plain;
    });
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

function refuseNestedPayload(value: object): unknown {
  if (value instanceof Serialized || value instanceof Pickled || value instanceof Serialize) {
    throw new TypeError(`a toSerialize value cannot hold a ${value.constructor.name}: Dask reads its frame as plain msgpack`);
  }
  return value;
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

/** Dask's `msgpack` serializer (not a collection of payloads): decodable here without Python. */
function isMsgpackSerializer(header: unknown): boolean {
  if (header === null || typeof header !== 'object') return false;
  const fields = header as Record<string, unknown>;
  return fields.serializer === 'msgpack' && !('is-collection' in fields);
}

/**
 * A sub-header's compression labels when any frame is compressed, else `undefined`.
 * A `compression` that is not a list is a broken header.
 */
function compressionLabels(header: unknown): unknown[] | undefined {
  if (header === null || typeof header !== 'object' || header instanceof Map) return undefined;
  const compression = (header as Record<string, unknown>).compression;
  if (compression === undefined || compression === null) return undefined;
  if (!Array.isArray(compression)) throw new ProtocolError(`a payload's "compression" must be a list, got ${typeof compression}`);
  return compression.some((label) => label !== null) ? compression : undefined;
}

/** The sub-header of frames now decompressed: every label null. */
function uncompressedHeader(header: unknown): Record<string, unknown> {
  const fields = header as Record<string, unknown>;
  return { ...fields, compression: (fields.compression as unknown[]).map(() => null) };
}

