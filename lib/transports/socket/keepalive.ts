/**
 * TCP keepalive from the comm's `deadPeerTimeout`. Node 20 (libuv 1.46) sets the idle
 * time it is given and, with it, 10 probes 1 s apart (`TCP_KEEPINTVL` 1, `TCP_KEEPCNT`
 * 10), so an idle connection to a vanished peer fails about 10 s after the idle time.
 * Dask spreads its 30 s the same way: idle 10 s, then 10 probes 2 s apart.
 */

/** The probes after the idle time take this long: 10 probes, 1 s apart. */
const PROBING_MS = 10_000;

/** The keepalive idle time for a dead-peer timeout, in ms; 0 keeps the kernel's default. */
export function keepAliveIdle(deadPeerTimeout: number): number {
  if (deadPeerTimeout <= 0) return 0;
  return Math.max(1000, deadPeerTimeout - PROBING_MS);
}
