import { pyRepr } from '../addresses/parse';
import { ConfigError } from '../errors';
import type { Backend } from '../registry';
import type { SecurityConfig } from '../security';

/**
 * Dask's `require_encryption`: with `security.requireEncryption`, a transport that does
 * not encrypt is refused before any socket is opened.
 */
export function checkEncryption(backend: Backend, address: string, config: { security?: SecurityConfig }): void {
  if (config.security?.requireEncryption && backend.encrypted === false) {
    throw new ConfigError(`encryption required by security config, refusing communication from/to ${pyRepr(address)}`);
  }
}
