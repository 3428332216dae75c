/**
 * The backend registry: one backend per URI scheme. The platform entry point names the
 * built-in transports (loaded on first use), the schemes it cannot serve, and how
 * installed packages are discovered when a scheme is unknown (Node only);
 * `registerBackend` adds (or replaces) one at run time. Nothing here, nor above, imports
 * a transport, and nothing here needs Node.
 */
import { ConfigError, UnknownSchemeError } from '../errors';
import type { Backend } from './backend';

export type { Backend, BackendListenOptions, BackendOptions, ListenEvent } from './backend';
export type { SecurityConfig, TlsVersion } from './security';

/** Built-in transports by scheme, each loaded when its scheme is first used. */
const builtins = new Map<string, () => Backend>();

/** Schemes this platform knows of and cannot serve, with the reason (`tcp` in a browser). */
const unavailable = new Map<string, string>();

/** Looks for an installed backend for a scheme nobody registered; none by default. */
let discover: (scheme: string) => Backend | undefined = () => undefined;

/** @internal The platform entry point's transports (Node: inproc, tcp, tls). */
export function defineBuiltinBackend(scheme: string, load: () => Backend): void {
  builtins.set(scheme, load);
}

/**
 * @internal A scheme the platform cannot serve: `getBackend` throws an
 * `UnknownSchemeError` whose message is `address scheme '<scheme>' <reason>`, unless a
 * backend is registered for it.
 */
export function defineUnavailableScheme(scheme: string, reason: string): void {
  unavailable.set(scheme, reason);
}

/**
 * @internal How the platform finds a backend for a scheme that is neither built in nor
 * registered (Node: installed packages that declare one). The browser sets none.
 */
export function defineBackendDiscovery(find: (scheme: string) => Backend | undefined): void {
  discover = find;
}

const backends = new Map<string, Backend>();

const requiredMethods = ['connect', 'listen', 'getAddressHost', 'resolveAddress', 'getLocalAddressFor'] as const;

/** @internal `backend`, if it has every method a backend needs; else a `ConfigError` naming `origin`. */
export function checkBackend(scheme: string, backend: unknown, origin: string): Backend {
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
 *
 * @group Transports
 */
export function registerBackend(scheme: string, backend: Backend): void {
  if (typeof scheme !== 'string' || !/^[a-z][a-z0-9+.-]*$/i.test(scheme)) {
    throw new ConfigError(`invalid scheme ${JSON.stringify(scheme)}`);
  }
  backends.set(scheme, checkBackend(scheme, backend, 'registerBackend'));
}

/**
 * The backend for `scheme`; loads it on first use. Unknown schemes throw Dask's error
 * (`UnknownSchemeError`).
 *
 * ## Example
 * ```ts
 * const tcp = getBackend('tcp');
 * tcp.getAddressHost('127.0.0.1:8786'); // '127.0.0.1'
 * tcp.encrypted;                        // false
 * ```
 *
 * @group Transports
 */
export function getBackend(scheme: string): Backend {
  const known = backends.get(scheme);
  if (known) return known;
  const builtin = builtins.get(scheme);
  const reason = unavailable.get(scheme);
  const backend = builtin ? builtin() : reason === undefined ? discover(scheme) : undefined;
  if (!backend) {
    const schemes = new Set([...builtins.keys(), ...backends.keys()]);
    throw new UnknownSchemeError(scheme, [...schemes].sort(), reason);
  }
  backends.set(scheme, backend);
  return backend;
}
