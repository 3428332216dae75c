/**
 * The backend registry: one backend per URI scheme. Built-in transports are loaded on
 * first use by scheme, installed packages are discovered when a scheme is unknown, and
 * `registerBackend` adds (or replaces) one at run time. Nothing above this module
 * imports a transport directly.
 */
import { ConfigError, UnknownSchemeError } from '../errors';
import type { Backend } from './backend';
import { findBackendModule, loadBackendModule } from './discover';

export type { Backend, BackendOptions, ListenEvent } from './backend';

/* eslint-disable @typescript-eslint/no-require-imports */
const builtins: Record<string, () => Backend> = {
  inproc: () => require('../transports/inproc').inprocBackend,
  tcp: () => require('../transports/tcp').tcpBackend,
  tls: () => require('../transports/tls').tlsBackend,
};
/* eslint-enable @typescript-eslint/no-require-imports */

const backends = new Map<string, Backend>();

const requiredMethods = ['connect', 'listen', 'getAddressHost', 'resolveAddress', 'getLocalAddressFor'] as const;

function checkBackend(scheme: string, backend: unknown, origin: string): Backend {
  const missing = requiredMethods.filter(
    (name) => typeof (backend as Record<string, unknown> | null)?.[name] !== 'function',
  );
  if (missing.length > 0) {
    throw new ConfigError(`backend for scheme '${scheme}' from ${origin} lacks ${missing.join(', ')}`);
  }
  return backend as Backend;
}

/**
 * Registers `backend` for `scheme` (`'udp'` serves `udp://...` addresses), replacing
 * any backend registered before.
 *
 * ## Example
 * ```ts
 * registerBackend('loop', getBackend('inproc')); // loop:// now behaves as inproc://
 * ```
 */
export function registerBackend(scheme: string, backend: Backend): void {
  if (typeof scheme !== 'string' || !/^[a-z][a-z0-9+.-]*$/i.test(scheme)) {
    throw new ConfigError(`invalid scheme ${JSON.stringify(scheme)}`);
  }
  backends.set(scheme, checkBackend(scheme, backend, 'registerBackend'));
}

/** The backend for `scheme`; loads it on first use. Unknown schemes throw Dask's error. */
export function getBackend(scheme: string): Backend {
  const known = backends.get(scheme);
  if (known) return known;
  let backend: Backend | undefined;
  if (Object.prototype.hasOwnProperty.call(builtins, scheme)) {
    backend = builtins[scheme]();
  } else {
    const file = findBackendModule(scheme);
    if (file) backend = checkBackend(scheme, loadBackendModule(file), file);
  }
  if (!backend) {
    const schemes = new Set([...Object.keys(builtins), ...backends.keys()]);
    throw new UnknownSchemeError(scheme, [...schemes].sort());
  }
  backends.set(scheme, backend);
  return backend;
}
