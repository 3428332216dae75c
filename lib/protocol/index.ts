/**
 * Dask's wire protocol, apart from any transport: TCP framing, both directions (framing/:
 * the layout in header.ts, frame-parser.ts, frame-writer.ts), the WebSocket framing (ws-messages.ts), msgpack as
 * Python writes it (msgpack.ts), and the message codec with its serialized payloads
 * (dask-codec.ts, serialized.ts).
 */
export type { CodecContext, FramePieces, MessageCodec } from './codec';
export { messageSize, wireSize } from './framing/header';
export { FrameParser, HANDSHAKE_LIMIT, type FrameParserConfig } from './framing/frame-parser';
export { FrameWriter, frameMessage, encodePrelude } from './framing/frame-writer';
export { countMessage, joinPieces, wsMessagesOf, WsMessageReader, type WsMessageReaderConfig } from './framing/ws-messages';
export {
  packMessage,
  unpackMessage,
  decodeDaskDefaults,
  MsgpackEncoder,
  type ObjectHook,
  type EncodeDefault,
  type MsgpackEncoderConfig,
} from './msgpack';
export { Serialized, Pickled, Serialize, serializeMsgpack, toSerialize } from './serialized';
export { daskCodec, DaskCodec, sharedDaskCodec, type DaskCodecConfig } from './dask-codec';
