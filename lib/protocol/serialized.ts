/**
 * Payloads that Dask serialized apart from the msgpack of the message itself.
 *
 * In a Dask message, `{"__Serialized__": k}` and `{"__Pickled__": k}` point at frame `k`
 * (a msgpack sub-header) followed by `num-sub-frames` payload frames. The codec turns those
 * into the classes below and back. They carry the frames untouched, so a peer that cannot
 * (or must not) deserialize — no Python, no unpickling — forwards them byte for byte, as
 * Dask's scheduler does with `deserialize=False`.
 */
import { packMessage } from './msgpack';

/**
 * A payload serialized by one of Dask's serializers (`dask`, `pickle`, `msgpack`, `error`),
 * kept opaque: the sub-header as decoded, and the payload frames (possibly compressed,
 * as the header's `compression` says).
 *
 * `headerBytes` are the sub-header as it arrived; when present (and still counting
 * `frames.length` frames) they are sent again as they are, so forwarding is byte-identical.
 *
 * ## Example
 * ```ts
 * // With deserialize: false every payload arrives as one, and is forwarded byte for byte.
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { deserialize: false }));
 * const message = (await comm.read()) as Record<string, unknown>;
 * for (const value of Object.values(message)) {
 *   if (value instanceof Serialized) console.log(value.header, value.frames.length);
 * }
 * ```
 *
 * @group Transports
 */
export class Serialized {
  constructor(
    /** The msgpack sub-header, decoded. */
    readonly header: unknown,
    /** The payload frames, as they arrived. */
    readonly frames: Uint8Array[],
    /** The sub-header's bytes as they arrived, sent again when forwarding. */
    readonly headerBytes?: Uint8Array,
  ) {}
}

/**
 * A pickled payload (Dask's `ToPickle`/`Pickled`): the sub-header holds `pickled-obj` and
 * the frames are pickle's out-of-band buffers. Always opaque here: rxcomm never unpickles,
 * so nothing a peer sends is ever executed.
 *
 * ## Example
 * ```ts
 * comm.read$.subscribe((message) => {
 *   const { result } = message as { result?: unknown };
 *   if (result instanceof Pickled) console.log('a pickled result, kept opaque:', result.frames.length, 'buffers');
 * });
 * ```
 *
 * @group Transports
 */
export class Pickled {
  constructor(
    /** The msgpack sub-header, decoded. */
    readonly header: unknown,
    /** The payload frames, as they arrived. */
    readonly frames: Uint8Array[],
    /** The sub-header's bytes as they arrived, sent again when forwarding. */
    readonly headerBytes?: Uint8Array,
  ) {}
}

/**
 * A value to send as an out-of-band Dask payload (Dask's `Serialize`, made by
 * `toSerialize`): serialized with Dask's `msgpack` serializer when the message is
 * written, in its own frame, and compressed then with the comm's negotiated compression
 * when that pays (Dask's rule: frames of 10,000 bytes to 2 GiB whose sample shrinks to
 * 70 % or less). A Dask peer deserializes it to the value; so does rxcomm with
 * `deserialize: true`.
 *
 * ## Example
 * ```ts
 * const payload = toSerialize(new Uint8Array(1024));
 * payload instanceof Serialize; // true
 * payload.value;                // the Uint8Array, serialized when the message is written
 * ```
 *
 * @group Transports
 */
export class Serialize {
  constructor(
    /** The value to serialize: bytes, or anything msgpack can hold. */
    readonly value: unknown,
  ) {}
}

/**
 * Marks `value` (a large `Uint8Array`, or anything msgpack can hold) to travel as an
 * out-of-band payload frame, as Dask's `to_serialize` does, instead of inside frame 0.
 * That frame is what compression applies to: with `compression: 'lz4'` (or another)
 * negotiated, a compressible payload of 10,000 bytes or more goes compressed.
 *
 * ## Example
 *
 * ```ts
 * const comm = await firstValueFrom(connect('tcp://127.0.0.1:8786', { compression: 'auto' }));
 * await comm.write({ op: 'set_metadata', keys: ['blob'], value: toSerialize(new Uint8Array(1 << 20)), reply: true });
 * ```
 *
 * @group Transports
 */
export function toSerialize(value: unknown): Serialize {
  return new Serialize(value);
}

/**
 * Wraps `value` as Dask's `msgpack` serializer would (`to_serialize(x)` with
 * `serializers=['msgpack']`), with the header keys in Dask's order; the codec adds
 * `num-sub-frames`. A Dask peer deserializes it to the value; so does this codec with
 * `deserialize: true`. Unlike Dask, a payload above 64 MiB is not cut into shards. The
 * result is already serialized, so it is sent as it is, never compressed: to send a value
 * that compression may apply to, use `toSerialize`.
 *
 * ## Example
 *
 * ```ts
 * comm.write({ op: 'update', data: serializeMsgpack({ x: [1, 2, 3] }) });
 * ```
 */
export function serializeMsgpack(value: unknown): Serialized {
  const header = {
    serializer: 'msgpack',
    'split-num-sub-frames': [1],
    'split-offsets': [0],
    compression: [null],
  };
  return new Serialized(header, [packMessage(value)]);
}
