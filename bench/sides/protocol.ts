/**
 * The bench protocol as the Node sides (rxcomm.ts, bare.ts, bare_ws.ts) run it: the
 * server's logic, Dask's bench-client phases, and the command line they share. It
 * measures exactly what dask_side.py's `bench-client` measures, with the same messages,
 * limits and output keys (bench/README.md), so the three columns of a table are comparable.
 *
 * This module knows nothing of rxcomm (the bare sides import it too, and must stay
 * independent of lib/): each side adapts its own connection to a `BenchPeer`, the
 * smallest surface they all offer, without adding work per message.
 */
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

/** Dask's bench-client options (`bench_opts` in dask_side.py), with its defaults. */
export interface BenchOptions {
  reps: number;
  trips: number;
  tripSeconds: number;
  pipelined: number;
  pipelinedSeconds: number;
  bulkTotalMiB: number;
  bulkSeconds: number;
}

export const DASK_BENCH_DEFAULTS: BenchOptions = {
  reps: 3,
  trips: 5000,
  tripSeconds: 2,
  pipelined: 50_000,
  pipelinedSeconds: 1.5,
  bulkTotalMiB: 1024,
  bulkSeconds: 1.5,
};

/** The flags of dask_side.py's bench-client, which the Node sides read too. */
const FLAGS: Record<string, keyof BenchOptions> = {
  '--reps': 'reps',
  '--trips': 'trips',
  '--trip-seconds': 'tripSeconds',
  '--pipelined': 'pipelined',
  '--pipelined-seconds': 'pipelinedSeconds',
  '--bulk-total-mib': 'bulkTotalMiB',
  '--bulk-seconds': 'bulkSeconds',
};

/** So that run.ts can pass one list to all three clients. */
export function benchOptionFlags(options: BenchOptions): string[] {
  return Object.entries(FLAGS).flatMap(([flag, key]) => [flag, String(options[key])]);
}

/** PEM files: this side's certificate and key, and the CA the peer's must chain to. */
export interface TlsFiles {
  ca: string;
  cert: string;
  key: string;
}

export interface SideArgs {
  positional: string[];
  options: BenchOptions;
  tls: TlsFiles | undefined;
  label: string | undefined;
  /** Hard deadline of a client, seconds (Dask's `--timeout`). */
  timeout: number;
  /** A server exits after this many seconds at the latest (Dask's `--lifetime`). */
  lifetime: number;
  /** `--stepped` (see runStepped), `--no-warm-up`, and any a side defines (`--copy-large-bins`). */
  flags: Set<string>;
  /** `--only roundtrip,pipelined,...`: run only these phases (for profiling). */
  only: Set<string> | undefined;
}

function parseSideArgs(argv: string[]): SideArgs {
  const args: SideArgs = { positional: [], options: { ...DASK_BENCH_DEFAULTS }, tls: undefined, label: undefined, timeout: 120, lifetime: 600, flags: new Set(), only: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg in FLAGS) {
      const n = Number(value());
      if (!(n > 0)) throw new Error(`${arg} must be a positive number`);
      args.options[FLAGS[arg]] = n;
    } else if (arg === '--tls') args.tls = { ca: value(), cert: value(), key: value() };
    else if (arg === '--label') args.label = value();
    else if (arg === '--timeout') args.timeout = Number(value());
    else if (arg === '--lifetime') args.lifetime = Number(value());
    else if (arg === '--only') args.only = new Set(value().split(','));
    else if (arg.startsWith('--')) args.flags.add(arg);
    else args.positional.push(arg);
  }
  return args;
}

/** One JSON object per line on stdout, as dask_side.py does: the parent reads nothing else. */
export function emit(line: object): void {
  process.stdout.write(JSON.stringify(line) + '\n');
}

/** Prints `{"ok": false, "error"}` and exits 1: for start-up failures and overruns. */
export function fail(error: unknown): never {
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  emit({ ok: false, error: message.slice(0, 2000) });
  process.exit(1);
}

/**
 * A client gives up after `seconds` (Dask's `--timeout`), so the parent never waits on
 * a wedged child. A server exits when its stdin closes (the parent is done or died) or
 * after its lifetime, like dask_side.py's server.
 */
export function installGuards(role: 'client' | 'server', seconds: number): void {
  process.on('unhandledRejection', (error) => fail(error));
  process.on('uncaughtException', (error) => fail(error));
  const timer = setTimeout(() => {
    if (role === 'client') fail(new Error(`timeout: client still running after ${seconds} s`));
    process.exit(0);
  }, seconds * 1000);
  timer.unref();
  if (role === 'server') {
    process.stdin.on('end', () => process.exit(0));
    process.stdin.on('error', () => process.exit(0));
    process.stdin.resume();
    process.on('SIGTERM', () => process.exit(0));
    process.on('SIGINT', () => process.exit(0));
  }
}

// ---------------------------------------------------------------------------------------
// server
// ---------------------------------------------------------------------------------------

type Message = Record<string, unknown>;

function field(message: unknown, key: string): unknown {
  return message !== null && typeof message === 'object' ? (message as Message)[key] : undefined;
}

/**
 * The server's logic for one connection (dask_side.py `make_bench_handler`): ping →
 * pong, pipe counted, count replies, bulk counted, bulk-done replies, anything else
 * echoed. Counters are per connection.
 */
export function benchHandler(reply: (message: unknown) => void): (message: unknown) => void {
  let pipeCount = 0;
  let bulkBytes = 0;
  let bulkMessages = 0;
  return (message) => {
    switch (field(message, 'op')) {
      case 'pipe':
        pipeCount++;
        return;
      case 'ping':
        reply({ op: 'pong', i: field(message, 'i') });
        return;
      case 'bulk': {
        const data = field(message, 'data');
        if (!(data instanceof Uint8Array)) throw new TypeError(`bulk data is not bytes: ${Object.prototype.toString.call(data)}`);
        bulkBytes += data.byteLength;
        bulkMessages++;
        return;
      }
      case 'count':
        reply({ op: 'count', count: pipeCount });
        pipeCount = 0;
        return;
      case 'bulk-done':
        reply({ op: 'bulk-done', bytes: bulkBytes, messages: bulkMessages });
        bulkBytes = bulkMessages = 0;
        return;
      default:
        reply(message);
    }
  };
}

// ---------------------------------------------------------------------------------------
// client: Dask's bench-client phases
// ---------------------------------------------------------------------------------------

export interface BenchPeer {
  /** Sends one message; returns a promise when the writer should wait (backpressure). */
  write(message: Message): Promise<unknown> | undefined;
  /**
   * True when `write` returns a promise for every message, settled or not (rxcomm's
   * `Comm.write`): the pipelined loop then awaits only every `AWAIT_EVERY`th one, since
   * whether a promise is still pending cannot be seen without awaiting it.
   */
  readonly promisePerWrite: boolean;
  /** The next message from the server. */
  read(): Promise<unknown>;
}

const AWAIT_EVERY = 256;

class BenchError extends Error {
  override name = 'BenchError';
}

const now = () => performance.now();

/** This process's CPU time since `since`, in ms: how much work the client did per phase. */
function cpuSince(since: NodeJS.CpuUsage): { cpu_user_ms: number; cpu_system_ms: number } {
  const used = process.cpuUsage(since);
  return { cpu_user_ms: used.user / 1000, cpu_system_ms: used.system / 1000 };
}

export function median(values: readonly number[]): number {
  const sorted = Float64Array.from(values).sort();
  const n = sorted.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** dask_peer.py's `pattern_bytes`: byte i = i % 251. */
function pattern(size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < Math.min(size, 251); i++) data[i] = i;
  for (let filled = 251; filled < size; filled *= 2) data.copyWithin(filled, 0, Math.min(filled, size - filled));
  return data;
}

function describe(message: unknown): string {
  try {
    return JSON.stringify(message, (_k, v) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v)).slice(0, 300);
  } catch {
    return String(message);
  }
}

export interface RoundTripResult { trips: number; per_s: number; median_us: number; p99_us: number; cpu_user_ms: number; cpu_system_ms: number }
export interface PipelinedResult { messages: number; per_s: number; seconds: number; cpu_user_ms: number; cpu_system_ms: number }
export interface BulkResult { messages: number; MiB: number; MiBps: number; seconds: number; cpu_user_ms: number; cpu_system_ms: number }
export type PhaseResult = RoundTripResult | PipelinedResult | BulkResult;
/** One repetition's results, by phase. */
export type Rep = Record<string, PhaseResult>;

/** Sequential ping/pong until `maxTrips` or `maxSeconds`. */
async function benchRoundTrips(peer: BenchPeer, maxTrips: number, maxSeconds: number): Promise<RoundTripResult> {
  const latencies = new Float64Array(maxTrips);
  const cpu = process.cpuUsage();
  const start = now();
  const deadline = start + maxSeconds * 1000;
  let i = 0;
  while (i < maxTrips) {
    const t0 = now();
    const wait = peer.write({ op: 'ping', i });
    if (wait !== undefined) await wait;
    const reply = await peer.read();
    const t1 = now();
    if (field(reply, 'op') !== 'pong' || field(reply, 'i') !== i) throw new BenchError(`bad pong for i=${i}: ${describe(reply)}`);
    latencies[i++] = t1 - t0;
    if (t1 > deadline) break;
  }
  const elapsed = (now() - start) / 1000;
  const used = cpuSince(cpu);
  const sorted = latencies.subarray(0, i).sort();
  return { trips: i, per_s: i / elapsed, median_us: median(Array.from(sorted)) * 1000, p99_us: sorted[Math.floor(0.99 * (i - 1))] * 1000, ...used };
}

/** `pipe` messages back to back until `maxN` or `maxSeconds` (checked every 1,000), then `count`. */
async function benchPipelined(peer: BenchPeer, maxN: number, maxSeconds: number): Promise<PipelinedResult> {
  const every = peer.promisePerWrite ? AWAIT_EVERY : 1;
  const cpu = process.cpuUsage();
  const t0 = now();
  const deadline = t0 + maxSeconds * 1000;
  let n = 0;
  while (n < maxN) {
    const stop = Math.min(n + 1000, maxN);
    for (; n < stop; n++) {
      const wait = peer.write({ op: 'pipe', i: n });
      if (wait !== undefined && (every === 1 || n % every === every - 1)) await wait;
    }
    if (now() > deadline) break;
  }
  const wait = peer.write({ op: 'count' });
  if (wait !== undefined) await wait;
  const reply = await peer.read();
  const seconds = (now() - t0) / 1000;
  if (field(reply, 'op') !== 'count' || field(reply, 'count') !== n) throw new BenchError(`pipelined: sent ${n}, server counted ${describe(reply)}`);
  return { messages: n, per_s: n / seconds, seconds, ...cpuSince(cpu) };
}

/**
 * Up to `maxCount` bulk messages of `data` back to back, then bulk-done and its reply.
 * Acked: each bulk message is followed by bulk-done and its reply (one in flight).
 */
async function benchBulk(peer: BenchPeer, data: Buffer, maxCount: number, maxSeconds: number, acked: boolean): Promise<BulkResult> {
  const size = data.byteLength;
  const cpu = process.cpuUsage();
  const t0 = now();
  const deadline = t0 + maxSeconds * 1000;
  let count = 0;
  const done = async (messages: number) => {
    const wait = peer.write({ op: 'bulk-done' });
    if (wait !== undefined) await wait;
    const reply = await peer.read();
    if (field(reply, 'op') !== 'bulk-done' || field(reply, 'bytes') !== size * messages || field(reply, 'messages') !== messages) {
      throw new BenchError(`bulk${acked ? ' (acked)' : ''}: sent ${messages} x ${size} B, server acked ${describe(reply)}`);
    }
  };
  while (count < maxCount) {
    const wait = peer.write({ op: 'bulk', data });
    if (wait !== undefined) await wait;
    count++;
    if (acked) await done(1);
    if (now() > deadline) break;
  }
  if (!acked) await done(count);
  const seconds = (now() - t0) / 1000;
  const mib = (size * count) / MiB;
  return { messages: count, MiB: mib, MiBps: mib / seconds, seconds, ...cpuSince(cpu) };
}

/** dask_side.py's BULK_PHASES: (output key, message size, acked). */
const BULK_PHASES: ReadonlyArray<readonly [string, number, boolean]> = [
  ['bulk_16MiB', 16 * MiB, false],
  ['bulk_1MiB', 1 * MiB, false],
  ['bulk_16MiB_acked', 16 * MiB, true],
  ['bulk_1MiB_acked', 1 * MiB, true],
];

/** The phases of a repetition, in the order Dask's client runs them. */
export const PHASES: readonly string[] = ['roundtrip', 'pipelined', ...BULK_PHASES.map(([key]) => key)];

class BenchClient {
  private readonly data = new Map<number, Buffer>();

  constructor(
    private readonly peer: BenchPeer,
    private readonly options: BenchOptions,
  ) {
    for (const [, size] of BULK_PHASES) if (!this.data.has(size)) this.data.set(size, pattern(size));
  }

  /** Dask's warm-up: 200 pings, 5,000 pipes, a few bulk messages of each kind (also warms both allocators). */
  async warmUp(): Promise<void> {
    await benchRoundTrips(this.peer, 200, 1);
    await benchPipelined(this.peer, 5000, 1);
    for (const [, size, acked] of BULK_PHASES) await benchBulk(this.peer, this.data.get(size)!, size > MiB ? 4 : 32, 1, acked);
  }

  phase(phase: string): Promise<PhaseResult> {
    const { options } = this;
    if (phase === 'roundtrip') return benchRoundTrips(this.peer, options.trips, options.tripSeconds);
    if (phase === 'pipelined') return benchPipelined(this.peer, options.pipelined, options.pipelinedSeconds);
    const bulk = BULK_PHASES.find(([key]) => key === phase);
    if (!bulk) throw new Error(`unknown phase ${JSON.stringify(phase)} (one of ${PHASES.join(', ')})`);
    const [, size, acked] = bulk;
    return benchBulk(this.peer, this.data.get(size)!, Math.max(1, Math.floor((options.bulkTotalMiB * MiB) / size)), options.bulkSeconds, acked);
  }
}

function rounded(results: object[]): object[] {
  return results.map((result) =>
    Object.fromEntries(Object.entries(result).map(([k, v]) => [k, typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v])),
  );
}

/** Dask's output: medians over the repetitions, under its keys, and each repetition in `raw`. */
export function summarize(reps: Rep[]): Record<string, unknown> {
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const of = <T>(phase: string) => reps.map((rep) => rep[phase] as T | undefined).filter((r): r is T => r !== undefined);
  const roundTrips = of<RoundTripResult>('roundtrip');
  const out: Record<string, unknown> = {
    roundtrip_per_s: round1(median(roundTrips.map((r) => r.per_s))),
    roundtrip_median_us: round1(median(roundTrips.map((r) => r.median_us))),
    pipelined_per_s: round1(median(of<PipelinedResult>('pipelined').map((r) => r.per_s))),
  };
  for (const [key] of BULK_PHASES) out[`${key}_MiBps`] = round1(median(of<BulkResult>(key).map((r) => r.MiBps)));
  out.reps = reps.length;
  out.raw = Object.fromEntries(PHASES.map((phase) => [phase, rounded(of<PhaseResult>(phase))]));
  return out;
}

/**
 * A connected client. By default, Dask's bench-client on one connection: the warm-up,
 * `--reps` repetitions, one line of medians (`--only` and `--no-warm-up` for profiling).
 *
 * `--stepped` (what run.ts uses): the warm-up, then `{"warm": true}`, then one phase per
 * stdin line `phase NAME`, each answered `{"ok": true, "phase": NAME, "<label>": {...}}`.
 * So run.ts can interleave implementations phase by phase while each client keeps its
 * connection and its warmed-up JIT, as Dask's client keeps its process. stdin's end
 * closes the connection.
 */
async function clientMain(peer: BenchPeer, args: SideArgs, label: string, extra: object): Promise<void> {
  const client = new BenchClient(peer, args.options);
  if (!args.flags.has('--no-warm-up')) await client.warmUp();
  if (args.flags.has('--stepped')) {
    emit({ warm: true, pid: process.pid });
    for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      const [command, phase] = line.trim().split(/\s+/);
      if (command === 'phase') emit({ ok: true, phase, [label]: await client.phase(phase) });
    }
    return;
  }
  const reps: Rep[] = [];
  for (let i = 0; i < args.options.reps; i++) {
    const rep: Rep = {};
    for (const phase of PHASES) if (!args.only || args.only.has(phase)) rep[phase] = await client.phase(phase);
    reps.push(rep);
  }
  emit({ ok: true, [label]: { ...summarize(reps), ...extra } });
}

/** A Node side's client: the peer the phases drive, what to report with it, how to close it. */
export interface SideClient {
  peer: BenchPeer;
  extra?: object;
  close(): Promise<void>;
}

/**
 * The command line of the Node sides:
 *
 *     node dist-scripts/bench/sides/<side>.js server <transport> [--tls CA CERT KEY] [--lifetime S]
 *     node dist-scripts/bench/sides/<side>.js client <address> <transport> [--tls CA CERT KEY]
 *         [--label L] [--reps 3] [--trips 5000] [--trip-seconds 2] [--pipelined 50000]
 *         [--pipelined-seconds 1.5] [--bulk-total-mib 256] [--bulk-seconds 1.5] [--timeout 120]
 *         [--stepped] [--only PHASE,...] [--no-warm-up]
 *
 * `<transport>`: tcp or tls (rxcomm.ts, bare.ts), ws or wss (rxcomm.ts, bare_ws.ts).
 * The server prints `{"ready": true, "address", "pid"}` and serves until its stdin closes.
 */
export async function sideMain(
  name: string,
  side: {
    serve(transport: string, tls: TlsFiles | undefined): Promise<{ address: string }>;
    connect(address: string, transport: string, args: SideArgs): Promise<SideClient>;
  },
): Promise<void> {
  const args = parseSideArgs(process.argv.slice(2));
  const [mode, ...rest] = args.positional;
  if (mode === 'server') {
    installGuards('server', args.lifetime);
    const { address } = await side.serve(rest[0] ?? 'tcp', args.tls);
    emit({ ready: true, mode: `${name}-bench-server`, address, pid: process.pid });
    return;
  }
  const [address, transport = address?.split('://')[0]] = rest;
  if (mode !== 'client' || !address) throw new Error(`usage: ${name}.js server <transport> | client <address> <transport> [options]`);
  installGuards('client', args.timeout);
  if (!address.startsWith(`${transport}://`)) throw new Error(`address ${address} is not a ${transport} address`);
  const client = await side.connect(address, transport, args);
  try {
    await clientMain(client.peer, args, args.label ?? transport, client.extra ?? {});
  } finally {
    await client.close();
  }
  process.exit(0);
}
