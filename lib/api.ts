/**
 * The platform-neutral API: everything `rxcomm` exports, the same from the Node entry
 * point (`index.ts`) and the browser one (`browser.ts`). Each entry point first sets up
 * its platform (which transports exist, where status output goes), then exports this.
 */
export {
  DEFAULT_SCHEME,
  normalizeAddress,
  parseAddress,
  parseHostPort,
  unparseAddress,
  unparseHostPort,
} from './addresses';
export { getAddressHost, getAddressHostPort, getLocalAddressFor, resolveAddress } from './address-lookups';
export { Comm, type CommSettings, type HandshakeInfo, type HandshakeOptions } from './comm/comm';
export type { Connection, ConnectionSink, PeerProbe } from './comm/connection';
export { writeTo, type OverflowPolicy, type WriteToConfig } from './comm/write-to';
export { connect } from './connect/connect';
export {
  AbortError,
  type ErrorOptionsWithCause,
  AddressError,
  BufferOverflowError,
  CommClosedError,
  ConfigError,
  ConnectTimeoutError,
  DeadPeerError,
  FatalCommClosedError,
  HandshakeError,
  ListenError,
  MessageTooLargeError,
  ProtocolError,
  RemoteError,
  UnknownSchemeError,
  WriteBufferOverflowError,
} from './errors';
export { listen, Listener, type BoundAddresses, type CommHandler } from './listen/listener';
export type { CommConfig, CompressionOption, ConnectConfig, ListenConfig, TransportConfig } from './options';
export {
  daskCodec,
  Pickled,
  Serialize,
  Serialized,
  toSerialize,
  type CodecContext,
  type DaskCodecConfig,
  type FramePieces,
  type MessageCodec,
} from './protocol';
export {
  getBackend,
  registerBackend,
  type Backend,
  type BackendListenOptions,
  type BackendOptions,
  type ListenEvent,
  type SecurityConfig,
  type TlsVersion,
} from './registry';
export { status$, type CommStatus } from './status';
export {
  batched,
  BatchedStream,
  ConnectionPool,
  rpc,
  Rpc,
  schedulerEvents,
  serve,
  type BatchedConfig,
  type ConnectionPoolConfig,
  type Handler,
  type SchedulerEvent,
  type SchedulerEventsConfig,
  type ServeConfig,
  type StreamHandler,
} from './rpc';
