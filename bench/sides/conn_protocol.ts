/**
 * The connections table as a Node side runs it (rxcomm_conns.ts, bare_conns.ts): its
 * client loop, its server's bookkeeping, how memory is measured, and the command line.
 * It measures what dask_side.py's `conn-client` / `conn-server` measure, with the same
 * steps and output keys (bench/README.md, "The connections table").
 *
 * Like protocol.ts, it knows nothing of rxcomm: a side hands it a way to open one
 * handshaken connection (and to close one), and a server that reports each connection
 * that is open and each that ends.
 *
 *   client: `--warm-up` connects, each closed again (the JIT warm, both processes' pools
 *           grown), then its memory (after gc), then `{"warm": true}`; on `run`, n/2
 *           connects one after the other, each awaited with its handshake, all held
 *           open; its memory (`{"half": true}`); on `continue`, the other n/2; its
 *           memory again. connects/s = n / the time spent connecting (both halves);
 *           memory per open comm = (end − half-way) / (n/2), the slope over the second half.
 *   server: holds every comm it accepts, reading (as an application would); on `mem N`
 *           it waits until N comms are open, then reports its memory (after gc).
 *
 * Memory (`MemorySample`): `rss` (the process's resident set), and `heap_external`:
 * V8's `heapUsed` plus `external` (ArrayBuffers, Buffers and other memory V8 was told
 * of), after `global.gc()` three times; the sides run under `node --expose-gc`. RSS also
 * counts what V8 keeps committed, and its young generation grows with the allocation
 * rate (by 10-25 MiB over the first 1,000 connects here, whatever the library): hence
 * the slope over the second half rather than the change since the baseline. For
 * Buffers, `heap_external` counts their whole size, touched or not.
 */
import * as fs from 'node:fs';
import * as inspector from 'node:inspector';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import * as v8 from 'node:v8';
import { emit, installGuards, type TlsFiles } from './protocol';

export interface MemorySample {
  rss: number;
  heap_total: number;
  heap_used: number;
  external: number;
  array_buffers: number;
  heap_external: number;
  /** V8's young generation, committed (it grows with the allocation rate, and counts in RSS). */
  new_space: number;
  /** What malloc holds: the resident pages of the main arena (`[heap]` in /proc/self/smaps): native objects, Buffers' bytes. */
  malloc: number;
  /** `heap_used` + `malloc`: what the process holds, less V8's empty pages (the table's "live" row). */
  live: number;
}

/** The resident size of the `[heap]` mapping (glibc's main malloc arena), bytes; 0 where there is no /proc. */
function mallocResident(): number {
  let text: string;
  try {
    text = fs.readFileSync('/proc/self/smaps', 'utf8');
  } catch {
    return 0;
  }
  const at = text.indexOf(' [heap]\n');
  if (at < 0) return 0;
  const rss = /\nRss:\s+(\d+) kB/.exec(text.slice(at, at + 2000));
  return rss ? Number(rss[1]) * 1024 : 0;
}

declare const gc: (() => void) | undefined;

/** The process's memory after full collections (without `--expose-gc`: as it is, flagged). */
export function memorySample(): MemorySample & { gc: boolean } {
  const collect = typeof gc === 'function' ? gc : undefined;
  if (collect) for (let i = 0; i < 3; i++) collect();
  const m = process.memoryUsage();
  const newSpace = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0;
  const malloc = mallocResident();
  return {
    new_space: newSpace,
    malloc,
    live: m.heapUsed + malloc, rss: m.rss, heap_total: m.heapTotal, heap_used: m.heapUsed, external: m.external, array_buffers: m.arrayBuffers, heap_external: m.heapUsed + m.external, gc: collect !== undefined };
}

/**
 * With `--heap-snapshot DIR`: a V8 heap snapshot next to each memory sample (for profiling,
 * bench/README.md): DIR/<role>-<what>.heapsnapshot. Slow and large: not for the table's runs.
 */
function snapshot(args: ConnArgs, name: string): void {
  const dir = args.heapSnapshotDir;
  if (dir) v8.writeHeapSnapshot(path.join(dir, `${name}.heapsnapshot`));
}

/**
 * With `--cpu-profile DIR`: V8's CPU profiler over the measured connects only (the client
 * from `run` to its last handshake, the server from `mem 0` to `mem N`), written to
 * DIR/<role>.cpuprofile (Chrome DevTools reads it). Profiling only.
 */
class Profiler {
  private session: inspector.Session | undefined;

  constructor(private readonly dir: string | undefined) {}

  start(): void {
    if (!this.dir || this.session) return;
    const session = (this.session = new inspector.Session());
    session.connect();
    session.post('Profiler.enable');
    session.post('Profiler.setSamplingInterval', { interval: 100 });
    session.post('Profiler.start');
  }

  async stop(name: string): Promise<void> {
    const { session, dir } = this;
    if (!session || !dir) return;
    this.session = undefined;
    const profile = await new Promise<unknown>((resolve, reject) =>
      session.post('Profiler.stop', (error, result) => (error ? reject(error) : resolve(result.profile))),
    );
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, `${name}.cpuprofile`), JSON.stringify(profile));
    session.disconnect();
  }
}

/** (after − before) / n, in KiB, per field. */
export function perComm(before: MemorySample, after: MemorySample, n: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (const key of ['rss', 'live', 'malloc', 'heap_total', 'heap_used', 'external', 'array_buffers', 'heap_external', 'new_space'] as const) {
    out[`${key}_kib`] = Math.round(((after[key] - before[key]) / 1024 / n) * 100) / 100;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

export interface ConnArgs {
  positional: string[];
  transport: string;
  tls: TlsFiles | undefined;
  n: number;
  warmUp: number;
  timeout: number;
  lifetime: number;
  /** `--heap-snapshot DIR`: a heap snapshot with each memory sample (see `snapshot`). */
  heapSnapshotDir: string | undefined;
  /** `--cpu-profile DIR`: a CPU profile of the measured connects (see `Profiler`). */
  cpuProfileDir: string | undefined;
  flags: Set<string>;
}

function parseConnArgs(argv: string[]): ConnArgs {
  const args: ConnArgs = { positional: [], transport: 'tcp', tls: undefined, n: 2000, warmUp: 200, timeout: 300, lifetime: 600, heapSnapshotDir: undefined, cpuProfileDir: undefined, flags: new Set() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--tls') args.tls = { ca: value(), cert: value(), key: value() };
    else if (arg === '--transport') args.transport = value();
    else if (arg === '--n') args.n = Number(value());
    else if (arg === '--warm-up') args.warmUp = Number(value());
    else if (arg === '--timeout') args.timeout = Number(value());
    else if (arg === '--lifetime') args.lifetime = Number(value());
    else if (arg === '--heap-snapshot') args.heapSnapshotDir = value();
    else if (arg === '--cpu-profile') args.cpuProfileDir = value();
    else if (arg.startsWith('--')) args.flags.add(arg);
    else args.positional.push(arg);
  }
  if (!(args.n >= 1) || !(args.warmUp >= 0)) throw new Error('--n must be ≥ 1 and --warm-up ≥ 0');
  return args;
}

// ---------------------------------------------------------------------------------------
// the sides' surface
// ---------------------------------------------------------------------------------------

/** One open, handshaken connection, as the client holds it. */
export interface HeldComm {
  /** True while it is open (checked for every comm after the run). */
  isOpen(): boolean;
  close(): Promise<void>;
}

/** What a server tells the bookkeeping: a comm is open (handshaken), or has ended. */
export interface ServerCounter {
  opened(): void;
  ended(): void;
}

export interface ConnSide {
  serve(transport: string, tls: TlsFiles | undefined, counter: ServerCounter): Promise<{ address: string }>;
  connect(address: string, transport: string, tls: TlsFiles | undefined): Promise<HeldComm>;
}

// ---------------------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------------------

async function serverMain(side: ConnSide, args: ConnArgs, name: string): Promise<void> {
  installGuards('server', args.lifetime);
  let open = 0;
  let accepted = 0;
  let waiter: (() => void) | undefined;
  const counter: ServerCounter = {
    opened: () => {
      open++;
      accepted++;
      waiter?.();
    },
    ended: () => {
      open--;
      waiter?.();
    },
  };
  const { address } = await side.serve(args.positional[1] ?? args.transport, args.tls, counter);
  const profiler = new Profiler(args.cpuProfileDir);
  emit({ ready: true, mode: `${name}-conn-server`, address, pid: process.pid });
  // `mem N [TIMEOUT_S]`: once N comms are open (or the time is up), the memory.
  for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
    const [command, want, waitS] = line.trim().split(/\s+/);
    if (command !== 'mem') continue;
    const expected = Number(want);
    if (expected > 0) await profiler.stop('server');
    const deadline = performance.now() + (Number(waitS) || 30) * 1000;
    while (open !== expected && performance.now() < deadline) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 50);
        waiter = () => {
          if (open === expected) {
            clearTimeout(timer);
            resolve();
          }
        };
      });
      waiter = undefined;
    }
    const mem = memorySample();
    snapshot(args, `server-${open}`);
    emit({ ok: true, mem, open, accepted });
    if (expected === 0) profiler.start();
  }
  process.exit(0);
}

// ---------------------------------------------------------------------------------------
// client
// ---------------------------------------------------------------------------------------

async function clientMain(side: ConnSide, args: ConnArgs, label: string): Promise<void> {
  installGuards('client', args.timeout);
  const [, address] = args.positional;
  if (!address) throw new Error('conn-client needs an address');
  const transport = address.split('://')[0];
  // Warm-up: connect and close, one after the other.
  const warmStart = performance.now();
  for (let i = 0; i < args.warmUp; i++) {
    const comm = await side.connect(address, transport, args.tls);
    await comm.close();
  }
  const warmSeconds = (performance.now() - warmStart) / 1000;
  // Let the closes' last events run before the baseline.
  await new Promise((resolve) => setTimeout(resolve, 100));
  const before = memorySample();
  snapshot(args, 'client-before');
  emit({ warm: true, pid: process.pid, warm_up: args.warmUp, warm_up_per_s: args.warmUp / warmSeconds || undefined, mem: before });

  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity })[Symbol.asyncIterator]();
  /** The next stdin line that is `word`; false once stdin has closed. */
  const command = async (word: string): Promise<boolean> => {
    for (;;) {
      const line = await lines.next();
      if (line.done) return false;
      if (line.value.trim() === word) return true;
    }
  };
  const held: HeldComm[] = [];
  const n = args.n;
  const half = Math.floor(n / 2);
  const profiler = new Profiler(args.cpuProfileDir);
  let seconds = 0;
  let failure: string | undefined;
  const cpu = { user: 0, system: 0 };
  /** Connects until `count` comms are held; the time and CPU it takes are added up. */
  const connectUpTo = async (count: number) => {
    const cpuStart = process.cpuUsage();
    const start = performance.now();
    try {
      while (held.length < count) held.push(await side.connect(address, transport, args.tls));
    } catch (error) {
      failure = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    }
    seconds += (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpuStart);
    cpu.user += used.user;
    cpu.system += used.system;
  };
  const settle = () => new Promise((resolve) => setTimeout(resolve, 100));

  if (await command('run')) {
    profiler.start();
    // Half the comms, then a memory sample (`{"half": true}`), then the rest on `continue`:
    // memory per comm is the slope over the second half, when V8's young generation (which
    // grows with the allocation rate, and counts in RSS) has grown to what the connects need.
    await connectUpTo(half);
    let mid: MemorySample | undefined;
    if (failure === undefined && half > 0 && half < n) {
      await settle();
      mid = memorySample();
      emit({ half: true, connected: held.length, mem: mid });
      if (!(await command('continue'))) process.exit(0);
    }
    if (failure === undefined) await connectUpTo(n);
    await profiler.stop('client');
    await settle();
    const after = memorySample();
    snapshot(args, `client-${held.length}`);
    const open = held.filter((comm) => comm.isOpen()).length;
    const result = {
      n,
      half: mid ? half : 0,
      connected: held.length,
      open,
      seconds,
      connects_per_s: held.length / seconds,
      cpu_user_ms: cpu.user / 1000,
      cpu_system_ms: cpu.system / 1000,
      mem_before: before,
      mem_mid: mid,
      mem_after: after,
      // The slope over the second half (see above); `per_comm_whole`: over all n, from the baseline.
      per_comm: mid && held.length > half ? perComm(mid, after, held.length - half) : perComm(before, after, Math.max(1, held.length)),
      per_comm_whole: perComm(before, after, Math.max(1, held.length)),
    };
    if (failure !== undefined) emit({ ok: false, error: `after ${held.length} of ${n} connects: ${failure}`, [label]: result });
    else emit({ ok: true, [label]: result });
    await command('');
  }
  // stdin closed: the comms go with the process (the kernel closes the sockets).
  process.exit(0);
}

/**
 * The command line of a Node connections side:
 *
 *     node --expose-gc dist-scripts/bench/sides/<side>.js conn-server <transport> [--tls CA CERT KEY] [--lifetime S]
 *     node --expose-gc dist-scripts/bench/sides/<side>.js conn-client <address> [--n 2000] [--warm-up 200]
 *         [--tls CA CERT KEY] [--label L] [--timeout S]
 *
 * Either takes `--heap-snapshot DIR` (profiling only): a V8 heap snapshot with each memory
 * sample, DIR/client-before, DIR/client-N, DIR/server-0, DIR/server-N (.heapsnapshot); and
 * `--cpu-profile DIR`: a CPU profile of the measured connects, DIR/client and DIR/server
 * (.cpuprofile).
 *
 * The server prints `{"ready": true, "address", "pid"}`, then answers each stdin line
 * `mem N [WAIT_S]` with `{"ok": true, "mem": {...}, "open", "accepted"}` once N comms are
 * open (or WAIT_S, default 30, has passed). The client warms up, prints `{"warm": true,
 * "mem"}`, answers the stdin line `run` with `{"half": true, "mem"}` (n/2 comms open)
 * and then `continue` with `{"ok": true, "<label>": {...}}` (or `{"ok": false}` at the
 * first failure); both exit when their stdin closes (the client's comms with it).
 */
export async function connSideMain(name: string, side: ConnSide): Promise<void> {
  const argv = process.argv.slice(2);
  const labelAt = argv.indexOf('--label');
  const label = labelAt >= 0 ? argv.splice(labelAt, 2)[1] : name;
  const args = parseConnArgs(argv);
  const [mode] = args.positional;
  if (mode === 'conn-server') return serverMain(side, args, name);
  if (mode === 'conn-client') return clientMain(side, args, label);
  throw new Error(`usage: ${name}_conns.js conn-server <transport> | conn-client <address> [options]`);
}
