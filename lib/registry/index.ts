/**
 * The backend registry: one backend per URI scheme. The platform entry point names the
 * built-in transports (loaded on first use), installed packages are discovered when a
 * scheme is unknown, and `registerBackend` adds (or replaces) one at run time. Nothing
 * here, nor above, imports a transport.
 */
import { ConfigError, UnknownSchemeError } from '../errors';
import type { Backend } from './backend';
import { findBackendModule, loadBackendModule } from './discover';

export type { Backend, BackendListenOptions, BackendOptions, ListenEvent } from './backend';
export type { SecurityConfig, TlsVersion } from './security';

/** Built-in transports by scheme, each loaded when its scheme is first used. */
const builtins = new Map<string, () => Backend>();

/** @internal The platform entry point's transports (Node: inproc, tcp, tls). */
export function defineBuiltinBackend(scheme: string, load: () => Backend): void {
  builtins.set(scheme, load);
}

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
  const builtin = builtins.get(scheme);
  if (builtin) {
    backend = builtin();
  } else {
    const file = findBackendModule(scheme);
    if (file) backend = checkBackend(scheme, loadBackendModule(file), file);
  }
  if (!backend) {
    const schemes = new Set([...builtins.keys(), ...backends.keys()]);
    throw new UnknownSchemeError(scheme, [...schemes].sort());
  }
  backends.set(scheme, backend);
  return backend;
}
