import type { CommConfig } from '../comm/config';
import { ConfigError } from '../errors';
import { daskCodec } from '../protocol';
import type { BackendOptions } from '../registry';
import { TRANSPORT_DEFAULTS, type TransportConfig } from './config';

function positive(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0)) {
    throw new ConfigError(`${name} must be a positive number, got ${String(value)}`);
  }
  return value;
}

/** Validates a user config and splits it into what the backend and the Comm need. */
export function resolveTransportConfig(config: TransportConfig): { backend: BackendOptions; comm: CommConfig } {
  const merged = { ...TRANSPORT_DEFAULTS, ...config };
  const { readHighWaterMark, readHighWaterMarkBytes, closeTimeout } = merged;
  for (const [name, value] of Object.entries({ readHighWaterMark, readHighWaterMarkBytes, closeTimeout })) {
    if (value !== undefined) positive(name, value);
  }
  return {
    backend: {
      ...merged,
      codec: merged.codec ?? daskCodec({ deserialize: merged.deserialize }),
      maxMessageSize: positive('maxMessageSize', merged.maxMessageSize),
      writeHighWaterMark: positive('writeHighWaterMark', merged.writeHighWaterMark),
    },
    comm: { readHighWaterMark, readHighWaterMarkBytes, closeTimeout },
  };
}
