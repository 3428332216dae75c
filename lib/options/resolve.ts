/**
 * From what a user passed to what each layer needs: checked keys and values, defaults
 * filled in, split into the backend's options, the Comm's settings and the policy's.
 */
import { asyncScheduler, type SchedulerLike } from 'rxjs';
import type { CommSettings } from '../comm/comm';
import type { BackendListenOptions, BackendOptions } from '../registry/backend';
import type { SecurityConfig } from '../registry/security';
import {
  boolean,
  type Check,
  compression,
  checkOptions,
  duration,
  durationOrOff,
  func,
  originList,
  pemOrPath,
  plainObject,
  positiveNumber,
  string,
  withMethods,
} from './check';
import type { CompressionName } from '../protocol/compression';
import { compressionSupport } from './compression-support';
import { COMM_DEFAULTS, type CommConfig } from './comm';
import type { ConnectConfig, ListenConfig, TransportConfig } from './config';

export const TRANSPORT_DEFAULTS = {
  deserialize: true,
  maxMessageSize: 1024 * 1024 * 1024,
  writeHighWaterMark: 1024 * 1024,
} as const;

export const CONNECT_DEFAULTS = { timeout: 30_000 } as const;

export const LISTEN_DEFAULTS = { handshakeTimeout: 30_000, allowedOrigins: [] as readonly string[] } as const;

const SECURITY_CHECKS = {
  ca: pemOrPath,
  cert: pemOrPath,
  key: pemOrPath,
  requireEncryption: boolean,
  ciphers: string,
  minVersion: string,
  maxVersion: string,
  checkHostname: boolean,
  serverName: string,
  requireClientCertificate: boolean,
} satisfies Record<keyof SecurityConfig, Check>;

const COMM_CHECKS = {
  compression,
  readHighWaterMark: positiveNumber,
  readHighWaterMarkBytes: positiveNumber,
  writeBufferLimit: positiveNumber,
  deadPeerTimeout: durationOrOff,
  closeTimeout: duration,
} satisfies Record<keyof CommConfig, Check>;

const TRANSPORT_CHECKS = {
  ...COMM_CHECKS,
  deserialize: boolean,
  codec: withMethods('a codec', 'encode', 'decode'),
  maxMessageSize: positiveNumber,
  writeHighWaterMark: positiveNumber,
  security: (name, value) => {
    plainObject(name, value);
    checkOptions('security', value, SECURITY_CHECKS, {}, 'security.');
  },
  transportOptions: plainObject,
} satisfies Record<keyof TransportConfig, Check>;

const scheduler = withMethods('a scheduler', 'now', 'schedule');

const CONNECT_CHECKS = {
  ...TRANSPORT_CHECKS,
  timeout: duration,
  scheduler,
  random: func,
  signal: withMethods('an AbortSignal', 'addEventListener', 'removeEventListener'),
} satisfies Record<keyof ConnectConfig, Check>;

const LISTEN_CHECKS = {
  ...TRANSPORT_CHECKS,
  handshakeTimeout: duration,
  contactHost: string,
  scheduler,
  allowedOrigins: originList,
} satisfies Record<keyof ListenConfig, Check>;

/** Options of one function that the other takes, for a pointed message. */
const ONLY_CONNECT = { timeout: 'connect()', random: 'connect()', signal: 'connect()' };
const ONLY_LISTEN = { handshakeTimeout: 'listen()', contactHost: 'listen()', allowedOrigins: 'listen()' };

/**
 * The Comm's settings, defaults filled in (an explicit `undefined` keeps the default);
 * `scheduler` is where its dead-peer watch keeps time.
 */
export function resolveCommSettings(config: CommConfig = {}, scheduler?: SchedulerLike): CommSettings {
  return {
    readHighWaterMark: config.readHighWaterMark ?? COMM_DEFAULTS.readHighWaterMark,
    readHighWaterMarkBytes: config.readHighWaterMarkBytes ?? COMM_DEFAULTS.readHighWaterMarkBytes,
    writeBufferLimit: config.writeBufferLimit ?? COMM_DEFAULTS.writeBufferLimit,
    closeTimeout: config.closeTimeout ?? COMM_DEFAULTS.closeTimeout,
    deadPeerTimeout: config.deadPeerTimeout ?? COMM_DEFAULTS.deadPeerTimeout,
    compression: config.compression === 'auto' ? (compressionSupport()?.auto() ?? 'lz4') : (config.compression ?? COMM_DEFAULTS.compression),
    scheduler,
  };
}

/**
 * Resolves once the comm's compressor is loaded (zstd's is WebAssembly): connect and
 * listen wait for it before their first handshake, so that every payload they write
 * can be compressed. `undefined` when nothing needs loading.
 */
export function compressorReady(settings: CommSettings): Promise<void> | undefined {
  return settings.compression === null ? undefined : compressionSupport()?.prepare(settings.compression as CompressionName);
}

function resolveBackendOptions(config: TransportConfig): BackendOptions {
  return {
    codec: config.codec,
    deserialize: config.deserialize ?? TRANSPORT_DEFAULTS.deserialize,
    maxMessageSize: config.maxMessageSize ?? TRANSPORT_DEFAULTS.maxMessageSize,
    writeHighWaterMark: config.writeHighWaterMark ?? TRANSPORT_DEFAULTS.writeHighWaterMark,
    deadPeerTimeout: config.deadPeerTimeout ?? COMM_DEFAULTS.deadPeerTimeout,
    security: config.security,
    transportOptions: config.transportOptions ?? {},
  };
}

export interface ConnectSettings {
  backend: BackendOptions;
  comm: CommSettings;
  timeout: number;
  scheduler: SchedulerLike;
  random: () => number;
  signal: AbortSignal | undefined;
}

/** `connect()` without options. */
const NO_OPTIONS: ConnectConfig = Object.freeze({});

/**
 * The last options `resolveConnectConfig` resolved, what they held then (own and
 * inherited enumerable keys, in order, and their values), and the settings made of them.
 */
let lastConnect: { config: ConnectConfig; keys: string[]; values: unknown[]; settings: ConnectSettings } | undefined;

/** Whether `config` still holds exactly `keys` and `values`. */
function holdsStill(config: ConnectConfig, keys: readonly string[], values: readonly unknown[]): boolean {
  let i = 0;
  for (const key in config) {
    if (key !== keys[i] || config[key as keyof ConnectConfig] !== values[i]) return false;
    i++;
  }
  return i === keys.length;
}

/**
 * Checks `connect()`'s options and fills in the defaults; throws `ConfigError`. An
 * application keeps one options object for its connects (Dask's rpc opens comms
 * constantly): when it is the one resolved last and holds the same values, its settings
 * are reused rather than checked and built again on every connect. (`'auto'` compression
 * is resolved each time.)
 */
export function resolveConnectConfig(config: ConnectConfig = NO_OPTIONS): ConnectSettings {
  const last = lastConnect;
  if (last !== undefined && last.config === config && holdsStill(config, last.keys, last.values)) return last.settings;
  const settings = resolveConnectConfigOnce(config);
  if (config.compression !== 'auto') {
    const keys: string[] = [];
    const values: unknown[] = [];
    for (const key in config) {
      keys.push(key);
      values.push(config[key as keyof ConnectConfig]);
    }
    lastConnect = { config, keys, values, settings };
  }
  return settings;
}

function resolveConnectConfigOnce(config: ConnectConfig): ConnectSettings {
  checkOptions('connect()', config, CONNECT_CHECKS, ONLY_LISTEN);
  return {
    backend: resolveBackendOptions(config),
    comm: resolveCommSettings(config, config.scheduler),
    timeout: config.timeout ?? CONNECT_DEFAULTS.timeout,
    scheduler: config.scheduler ?? asyncScheduler,
    random: config.random ?? Math.random,
    signal: config.signal,
  };
}

export interface ListenSettings {
  backend: BackendListenOptions;
  comm: CommSettings;
  scheduler: SchedulerLike;
}

/** Checks `listen()`'s options and fills in the defaults; throws `ConfigError`. */
export function resolveListenConfig(config: ListenConfig = {}): ListenSettings {
  checkOptions('listen()', config, LISTEN_CHECKS, ONLY_CONNECT);
  return {
    backend: {
      ...resolveBackendOptions(config),
      handshakeTimeout: config.handshakeTimeout ?? LISTEN_DEFAULTS.handshakeTimeout,
      contactHost: config.contactHost,
      allowedOrigins: (config.allowedOrigins ?? LISTEN_DEFAULTS.allowedOrigins).map(
        // As a browser writes it in `Origin`: lower case, no default port, no trailing slash.
        (origin) => (origin === '*' ? origin : new URL(origin).origin),
      ),
    },
    comm: resolveCommSettings(config, config.scheduler),
    scheduler: config.scheduler ?? asyncScheduler,
  };
}
