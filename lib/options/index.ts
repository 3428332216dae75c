/**
 * The one options model of connect and listen: the public config types, their defaults,
 * their checks and resolution, and the encryption rule. Neutral ground that both use.
 */
export { COMM_DEFAULTS, type CommConfig, type CompressionOption } from './comm';
export type { ConnectConfig, ListenConfig, TransportConfig } from './config';
export { checkEncryption } from './encryption';
export { defineCompressionSupport, type CompressionSupport } from './compression-support';
export {
  CONNECT_DEFAULTS,
  LISTEN_DEFAULTS,
  resolveCommSettings,
  compressorReady,
  resolveConnectConfig,
  resolveListenConfig,
  TRANSPORT_DEFAULTS,
  type ConnectSettings,
  type ListenSettings,
} from './resolve';
