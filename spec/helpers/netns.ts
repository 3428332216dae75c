/**
 * Two network namespaces joined by a veth pair, for specs that must cut a link under a
 * live TCP connection (half-open-spec.ts). Everything lives inside the namespaces this
 * file creates: addresses from a private /30 that nothing outside them can reach, and
 * nothing outside them is touched. Needs root and iproute2 (`ip`).
 *
 * - `netnsAvailability()`: whether namespaces and veth pairs can be made here (checked
 *   once, by making and deleting a throwaway pair), and why not.
 * - `describeWithNetns(name, body)`: a suite that runs, or says why it cannot (skipped,
 *   or failed under CI).
 * - `createNetnsPair(tag)`: the namespaces and the link; `destroy()` deletes them (which
 *   deletes the veth pair), and a failed creation deletes what it had made.
 */
import { execFileSync } from 'node:child_process';

const IP = 'ip';

/** The /30 inside the namespaces: side A, side B. */
export const ADDRESS_A = '10.213.0.1';
export const ADDRESS_B = '10.213.0.2';
const PREFIX = 30;

function ip(args: string[]): string {
  try {
    return execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const { stderr, message } = err as { stderr?: string; message: string };
    throw new Error(`ip ${args.join(' ')} failed: ${(stderr || message).trim()}`);
  }
}

/** Runs `args` inside namespace `ns`. */
export function inNamespace(ns: string, args: string[]): string {
  return ip(['netns', 'exec', ns, ...args]);
}

/** TCP counters of one namespace (`/proc/net/snmp`), for proving what a cut let through. */
export interface TcpCounters {
  /** Segments received (the namespaces hold nothing but the spec's connections). */
  InSegs: number;
  /** New segments sent (retransmissions are not counted). */
  OutSegs: number;
}

export interface NetnsPair {
  /** Namespace names: A holds ADDRESS_A, B holds ADDRESS_B. */
  readonly a: string;
  readonly b: string;
  /**
   * Cuts the link both ways, silently: each side gets a blackhole route to the other's
   * address, more specific than the /30, so its own kernel drops every packet to the
   * peer before the veth. The route lookup fails inside the kernel, which TCP treats as
   * a lost packet: nothing goes on the wire instead (no ICMP, no FIN, no reset), and no
   * error reaches the socket. Both connections stay established and retransmit (or send
   * keepalive probes) into the void, and keepalive gives up with ETIMEDOUT, as with a
   * cable cut somewhere between two routers. (`link set down` would not do: neighbour
   * resolution then fails and the kernel records EHOSTUNREACH, which keepalive reports
   * instead of ETIMEDOUT.) `tcpCounters()` before and after show what got through.
   */
  cut(): void;
  /** Undoes `cut()`. */
  restore(): void;
  /** Each namespace's TCP counters. */
  tcpCounters(): { a: TcpCounters; b: TcpCounters };
  /** Deletes both namespaces (and with them the veth pair). Safe to call twice. */
  destroy(): void;
}

function tcpCounters(ns: string): TcpCounters {
  const [names, values] = inNamespace(ns, ['cat', '/proc/net/snmp'])
    .split('\n')
    .filter((line) => line.startsWith('Tcp:'))
    .map((line) => line.split(/\s+/).slice(1));
  const value = (name: string) => Number(values[names.indexOf(name)]);
  return { InSegs: value('InSegs'), OutSegs: value('OutSegs') };
}

/**
 * Makes namespaces `rxcomm-<tag>-<pid>-a|b` and a veth pair between them, addressed and up.
 */
export function createNetnsPair(tag: string): NetnsPair {
  const a = `rxcomm-${tag}-${process.pid}-a`;
  const b = `rxcomm-${tag}-${process.pid}-b`;
  // Interface names have at most 15 characters.
  const devA = `rxho${process.pid}a`;
  const devB = `rxho${process.pid}b`;
  const created: string[] = [];
  const destroy = () => {
    for (const ns of created.splice(0)) {
      try {
        ip(['netns', 'delete', ns]);
      } catch {
        // already gone
      }
    }
  };
  try {
    for (const ns of [a, b]) {
      ip(['netns', 'add', ns]);
      created.push(ns);
      ip(['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    ip(['link', 'add', devA, 'netns', a, 'type', 'veth', 'peer', 'name', devB, 'netns', b]);
    ip(['-n', a, 'addr', 'add', `${ADDRESS_A}/${PREFIX}`, 'dev', devA]);
    ip(['-n', b, 'addr', 'add', `${ADDRESS_B}/${PREFIX}`, 'dev', devB]);
    ip(['-n', a, 'link', 'set', devA, 'up']);
    ip(['-n', b, 'link', 'set', devB, 'up']);
  } catch (err) {
    destroy();
    throw err;
  }
  const routes = [
    [a, ADDRESS_B],
    [b, ADDRESS_A],
  ];
  return {
    a,
    b,
    cut: () => routes.forEach(([ns, to]) => ip(['-n', ns, 'route', 'add', 'blackhole', `${to}/32`])),
    restore: () =>
      routes.forEach(([ns, to]) => {
        try {
          ip(['-n', ns, 'route', 'del', 'blackhole', `${to}/32`]);
        } catch {
          // not cut
        }
      }),
    tcpCounters: () => ({ a: tcpCounters(a), b: tcpCounters(b) }),
    destroy,
  };
}

export interface Availability {
  available: boolean;
  detail: string;
}

let availability: Availability | undefined;

/** Whether this process can make namespaces and a veth pair (root, iproute2, veth support). */
export function netnsAvailability(): Availability {
  if (availability) return availability;
  if (process.platform !== 'linux') {
    availability = { available: false, detail: `network namespaces are Linux only (this is ${process.platform})` };
  } else if (process.getuid?.() !== 0) {
    availability = { available: false, detail: 'network namespaces need root (run as root, as CI does)' };
  } else {
    try {
      createNetnsPair('probe').destroy();
      availability = { available: true, detail: 'ip netns and veth work' };
    } catch (err) {
      availability = { available: false, detail: (err as Error).message };
    }
  }
  return availability;
}

/**
 * `describe` for a suite that needs namespaces. Without them: under CI (`CI` set, where
 * root is expected) a suite with one failing test that says why; elsewhere
 * `describe.skip`, with the reason in the suite's name and a console warning.
 */
export function describeWithNetns(name: string, body: () => void): void {
  const { available, detail } = netnsAvailability();
  if (available) {
    describe(name, body);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('should be able to make network namespaces (required under CI)', () => {
        throw new Error(`network namespaces are required under CI: ${detail}`);
      });
    });
    return;
  }
  console.warn(`Skipping "${name}": ${detail}`);
  describe.skip(`${name} [skipped: ${detail}]`, body);
}
