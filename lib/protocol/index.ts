/**
 * Dask's wire protocol, apart from any transport: TCP framing (frames.ts), msgpack as
 * Python writes it (msgpack.ts), and the message codec with its serialized payloads
 * (dask-codec.ts, serialized.ts).
 */
export type { FramePieces, MessageCodec } from './codec';
export { encodePrelude, framedSize, FrameParser, type FrameParserConfig } from './frames';
export {
  packMessage,
  unpackMessage,
  decodeDaskDefaults,
  MsgpackEncoder,
  type ObjectHook,
  type EncodeDefault,
  type MsgpackEncoderConfig,
} from './msgpack';
export { Serialized, Pickled, serializeMsgpack } from './serialized';
export { daskCodec, DaskCodec, type DaskCodecConfig } from './dask-codec';
