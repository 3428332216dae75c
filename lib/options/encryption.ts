import { pyRepr } from '../addresses';
import { ConfigError } from '../errors';
import type { Backend } from '../registry/backend';
import type { SecurityConfig } from '../registry/security';

/**
 * Dask's `require_encryption`: with `security.requireEncryption`, a transport that does
 * not encrypt is refused before any socket is opened.
 */
export function checkEncryption(backend: Backend, address: string, security: SecurityConfig | undefined): void {
  if (security?.requireEncryption && backend.encrypted === false) {
    throw new ConfigError(`encryption required by security config, refusing communication from/to ${pyRepr(address)}`);
  }
}
