/**
 * A rate-limited link for the compression table (`--link-rate`, compression.ts): two
 * network namespaces joined by a veth pair, each end shaped by `tc qdisc ... tbf` to the
 * same rate, so that TCP between a server in one namespace and a client in the other runs
 * at about that rate (as between two hosts on a 1 or 10 Gbit/s network), instead of
 * loopback's ~2 GB/s. Ideas and code from spec/helpers/netns.ts (the half-open spec's
 * helper; bench's tsconfig does not include spec/), copied here.
 *
 * Everything lives inside the namespaces made here: addresses from 10.231.0.0/24, which
 * nothing outside them can reach, and nothing outside them is touched. Needs Linux, root
 * and iproute2 (`ip`, `tc`). Every pair made is deleted by `destroy()`, and, should the run
 * end without it (an error, Ctrl-C: children.ts's SIGINT handler exits, which fires
 * 'exit'), by an 'exit' handler. Pairs left by a run killed outright (SIGKILL) are named
 * `rxcomm-bench-<pid>-...` and are deleted by the next run once that PID is gone.
 */
import { execFileSync } from 'node:child_process';

/** Server side, client side. */
export const LINK_SERVER_ADDRESS = '10.231.0.1';
export const LINK_CLIENT_ADDRESS = '10.231.0.2';
const PREFIX = 24;
const NS_PREFIX = 'rxcomm-bench-';

function run(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`${command} ${args.join(' ')} failed: ${(stderr || message).trim()}`);
  }
}

const ip = (args: string[]) => run('ip', args);
const tc = (args: string[]) => run('tc', args);

/** `1gbit`, `500mbit`, `2.5gbit`, `100kbit` (tc's units, bits per second) → bits/s; undefined if not a rate. */
export function parseRate(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)(k|m|g)?bit$/i.exec(text.trim());
  if (!m) return undefined;
  const scale = { k: 1e3, m: 1e6, g: 1e9 }[(m[2] ?? '').toLowerCase() as 'k' | 'm' | 'g'] ?? 1;
  const bits = Number(m[1]) * scale;
  return bits > 0 ? bits : undefined;
}

/** `1gbit` → `1 Gbit/s`. */
export function rateLabel(bitsPerSecond: number): string {
  if (bitsPerSecond >= 1e9) return `${+(bitsPerSecond / 1e9).toFixed(2)} Gbit/s`;
  if (bitsPerSecond >= 1e6) return `${+(bitsPerSecond / 1e6).toFixed(2)} Mbit/s`;
  return `${+(bitsPerSecond / 1e3).toFixed(2)} kbit/s`;
}

export interface ShapedLink {
  /** Where the server runs (LINK_SERVER_ADDRESS) and where the client runs (LINK_CLIENT_ADDRESS). */
  readonly serverNs: string;
  readonly clientNs: string;
  readonly serverAddress: string;
  readonly bitsPerSecond: number;
  /** What each end's qdisc is, as `tc` shows it. */
  readonly qdisc: string;
  /** `cmd args` run inside namespace `ns` (`ip netns exec ns cmd args`: it execs, same PID). */
  wrap(ns: string, command: string, args: string[]): [string, string[]];
  /** Deletes both namespaces (and with them the veth pair and its qdiscs). Safe to call twice. */
  destroy(): void;
}

const live = new Set<() => void>();
process.on('exit', () => {
  for (const destroy of [...live]) destroy();
});

function deleteNs(ns: string): void {
  try {
    ip(['netns', 'delete', ns]);
  } catch {
    // already gone
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes the namespaces of earlier bench runs whose process is gone (killed outright). */
function sweepStale(): void {
  let names: string[] = [];
  try {
    names = ip(['netns', 'list']).split('\n').map((line) => line.trim().split(/\s+/)[0]).filter(Boolean);
  } catch {
    return;
  }
  for (const ns of names) {
    const m = new RegExp(`^${NS_PREFIX}(\\d+)-\\d+-[sc]$`).exec(ns);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) deleteNs(ns);
  }
}

let made = 0;

/**
 * Makes namespaces `rxcomm-bench-<pid>-<n>-s|c` joined by a veth pair, addressed, up, and
 * each end's egress shaped to `rate` (tc syntax, e.g. `1gbit`) by a token bucket: burst
 * 2 ms of the rate (at least 256 KiB: veth hands tbf GSO packets of up to 64 KiB),
 * latency 10 ms (the queue it may hold). No delay is added: the link's RTT stays veth's
 * (~0.05 ms), as between two hosts on one switch.
 */
export function createShapedLink(rate: string): ShapedLink {
  const bitsPerSecond = parseRate(rate);
  if (bitsPerSecond === undefined) throw new Error(`--link-rate: ${JSON.stringify(rate)} is not a rate (e.g. 1gbit, 500mbit)`);
  if (process.platform !== 'linux') throw new Error(`a shaped link needs Linux network namespaces (this is ${process.platform})`);
  if (process.getuid?.() !== 0) throw new Error('a shaped link needs root (network namespaces, tc)');
  sweepStale();
  const n = made++;
  const serverNs = `${NS_PREFIX}${process.pid}-${n}-s`;
  const clientNs = `${NS_PREFIX}${process.pid}-${n}-c`;
  // Interface names have at most 15 characters.
  const devS = `rxbl${process.pid % 1_000_000}${n % 10}s`;
  const devC = `rxbl${process.pid % 1_000_000}${n % 10}c`;
  const created: string[] = [];
  const destroy = () => {
    live.delete(destroy);
    for (const ns of created.splice(0)) deleteNs(ns);
  };
  live.add(destroy);
  const burstBytes = Math.max(256 * 1024, Math.round((bitsPerSecond / 8) * 0.002));
  const qdisc = `tbf rate ${rate} burst ${burstBytes} latency 10ms`;
  try {
    for (const ns of [serverNs, clientNs]) {
      ip(['netns', 'add', ns]);
      created.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    ip(['link', 'add', devS, 'netns', serverNs, 'type', 'veth', 'peer', 'name', devC, 'netns', clientNs]);
    ip(['-n', serverNs, 'addr', 'add', `${LINK_SERVER_ADDRESS}/${PREFIX}`, 'dev', devS]);
    ip(['-n', clientNs, 'addr', 'add', `${LINK_CLIENT_ADDRESS}/${PREFIX}`, 'dev', devC]);
    for (const [ns, dev] of [[serverNs, devS], [clientNs, devC]]) {
      ip(['-n', ns, 'link', 'set', dev, 'up']);
      tc(['-n', ns, 'qdisc', 'add', 'dev', dev, 'root', ...qdisc.split(' ')]);
    }
  } catch (err) {
    destroy();
    throw err;
  }
  return {
    serverNs,
    clientNs,
    serverAddress: LINK_SERVER_ADDRESS,
    bitsPerSecond,
    qdisc,
    wrap: (ns, command, args) => ['ip', ['netns', 'exec', ns, command, ...args]],
    destroy,
  };
}
