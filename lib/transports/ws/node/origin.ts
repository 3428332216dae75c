/**
 * Which web pages may open a ws comm. Browsers send the page's origin with every
 * WebSocket request and let any page connect anywhere: a listener that accepted every
 * origin would let each site its user visits talk to it (cross-site WebSocket hijacking).
 * The default is Tornado's (so Dask's): requests without `Origin` come from programs, not
 * pages, and are accepted; so are same-origin ones (the Origin's host:port is the `Host`
 * the request was sent to); the rest only when listed in `allowedOrigins`.
 */

/** Whether a WebSocket request with these headers may open a comm. */
export function originAllowed(origin: string | undefined, host: string | undefined, allowedOrigins: readonly string[]): boolean {
  if (origin === undefined) return true;
  if (allowedOrigins.includes('*')) return true;
  const normal = origin.toLowerCase();
  if (allowedOrigins.some((allowed) => allowed.toLowerCase() === normal)) return true;
  let originHost: string;
  try {
    originHost = new URL(origin).host; // 'null' (a sandboxed page, a file) has none
  } catch {
    return false;
  }
  return host !== undefined && originHost === host.toLowerCase();
}
