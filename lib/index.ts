/**
 * rxcomm: Dask's `distributed.comm` layer for Node.js, as RxJS streams.
 *
 *   transport bytes → frames → messages → Comm (read$, write) → your operators
 */
export {
  getAddressHost,
  getAddressHostPort,
  getLocalAddressFor,
  normalizeAddress,
  parseAddress,
  parseHostPort,
  resolveAddress,
  unparseAddress,
  unparseHostPort,
} from './addresses';
export { Comm, type HandshakeInfo, type HandshakeOptions } from './comm/comm';
export type { CommConfig } from './comm/config';
export type { Connection, ConnectionSink } from './comm/connection';
export { writeTo } from './comm/write-to';
export { connect } from './connect/connect';
export type { ConnectConfig, TransportConfig } from './connect/config';
export {
  AddressError,
  CommClosedError,
  ConfigError,
  ConnectTimeoutError,
  FatalCommClosedError,
  HandshakeError,
  ListenError,
  MessageTooLargeError,
  ProtocolError,
  UnknownSchemeError,
} from './errors';
export { listen, Listener, type BoundAddresses, type ListenConfig } from './listen/listener';
export type { MessageCodec } from './protocol/codec';
export { Pickled, Serialized, daskCodec } from './protocol';
export { getBackend, registerBackend, type Backend, type BackendOptions, type ListenEvent } from './registry';
export type { SecurityConfig } from './security';
export { status$, type CommStatus } from './status';
