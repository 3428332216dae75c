/**
 * What the rxcomm and bare-Node bench scripts share: the command line, the bench wire
 * protocol's server logic, and the client's phases, written to measure exactly what
 * Dask's `bench-client` measures (interop/dask_peer.py, interop/README.md) with the same
 * messages, limits and output keys.
 *
 * The phases take a `BenchPeer`, the smallest surface both implementations offer; each
 * side adapts its own connection to it without adding work per message.
 */
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';

export const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

/** Dask's bench-client options (`bench_opts` in dask_peer.py), with its defaults. */
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
  bulkTotalMiB: 256,
  bulkSeconds: 1.5,
};

/** The same flags as dask_peer.py, so run.ts can pass one list to all three clients. */
export function benchOptionFlags(options: BenchOptions): string[] {
  return [
    '--reps', String(options.reps),
    '--trips', String(options.trips),
    '--trip-seconds', String(options.tripSeconds),
    '--pipelined', String(options.pipelined),
    '--pipelined-seconds', String(options.pipelinedSeconds),
    '--bulk-total-mib', String(options.bulkTotalMiB),
    '--bulk-seconds', String(options.bulkSeconds),
  ];
}

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
  /** Boolean flags: `--stepped` (see runSteppedClient), `--no-warm-up`, and any a side defines (`--copy-large-bins`). */
  flags: Set<string>;
  /** `--only roundtrip,pipelined,bulk_16MiB,...`: run only these phases (for profiling; `--no-warm-up` skips the warm-up). */
  only: Set<string> | undefined;
}

const NUMERIC: Record<string, keyof BenchOptions> = {
  '--reps': 'reps',
  '--trips': 'trips',
  '--trip-seconds': 'tripSeconds',
  '--pipelined': 'pipelined',
  '--pipelined-seconds': 'pipelinedSeconds',
  '--bulk-total-mib': 'bulkTotalMiB',
  '--bulk-seconds': 'bulkSeconds',
};

export function parseSideArgs(argv: string[]): SideArgs {
  const args: SideArgs = {
    positional: [],
    options: { ...DASK_BENCH_DEFAULTS },
    tls: undefined,
    label: undefined,
    timeout: 120,
    lifetime: 600,
    flags: new Set(),
    only: undefined,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg in NUMERIC) {
      const n = Number(value());
      if (!(n > 0)) throw new Error(`${arg} must be a positive number`);
      args.options[NUMERIC[arg]] = n;
    } else if (arg === '--tls') {
      args.tls = { ca: value(), cert: value(), key: value() };
    } else if (arg === '--label') {
      args.label = value();
    } else if (arg === '--timeout') {
      args.timeout = Number(value());
    } else if (arg === '--only') {
      args.only = new Set(value().split(','));
    } else if (arg === '--lifetime') {
      args.lifetime = Number(value());
    } else if (arg.startsWith('--')) {
      args.flags.add(arg);
    } else {
      args.positional.push(arg);
    }
  }
  return args;
}

/** One JSON object per line on stdout, as dask_peer.py does: the parent reads nothing else. */
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
 * A client gives up after `seconds` (Dask's `--timeout`): it prints the error line and
 * exits, so the parent never waits on a wedged child. A server exits when its stdin
 * closes (the parent is done or died) or after its lifetime, like dask_peer.py's servers.
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
// server: the bench wire protocol
// ---------------------------------------------------------------------------------------

type Message = Record<string, unknown>;

function byteLength(data: unknown): number {
  if (data instanceof Uint8Array) return data.byteLength;
  throw new TypeError(`bulk data is not bytes: ${Object.prototype.toString.call(data)}`);
}

/**
 * The bench server's logic for one connection (dask_peer.py `make_bench_handler`):
 * ping → pong, pipe counted, count replies, bulk counted, bulk-done replies, anything
 * else echoed. Counters are per connection.
 */
export function benchHandler(reply: (message: unknown) => void): (message: unknown) => void {
  let pipeCount = 0;
  let bulkBytes = 0;
  let bulkMessages = 0;
  return (message) => {
    const op = message !== null && typeof message === 'object' ? (message as Message).op : undefined;
    switch (op) {
      case 'pipe':
        pipeCount++;
        return;
      case 'ping':
        reply({ op: 'pong', i: (message as Message).i });
        return;
      case 'bulk':
        bulkBytes += byteLength((message as Message).data);
        bulkMessages++;
        return;
      case 'count':
        reply({ op: 'count', count: pipeCount });
        pipeCount = 0;
        return;
      case 'bulk-done':
        reply({ op: 'bulk-done', bytes: bulkBytes, messages: bulkMessages });
        bulkBytes = 0;
        bulkMessages = 0;
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
  /**
   * Sends one message. Returns a promise when the writer should wait before going on
   * (backpressure), or nothing when it may go on at once.
   */
  write(message: Message): Promise<unknown> | undefined;
  /**
   * True when `write` returns a promise for every message, resolved or not (rxcomm's
   * `Comm.write`): then the pipelined loop awaits only every `AWAIT_EVERY`th one, since
   * whether a promise is still pending cannot be seen without awaiting it.
   */
  readonly promisePerWrite: boolean;
  /** The next message from the server. */
  read(): Promise<unknown>;
  close(): Promise<void>;
}

/** Pipelined writes between two awaits when every write returns a promise. */
const AWAIT_EVERY = 256;

class BenchError extends Error {
  override name = 'BenchError';
}

const now = () => performance.now();

/** This process's CPU time (user, system) in ms since `since`: how much work the client did. */
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
export function pattern(size: number): Buffer {
  const data = Buffer.allocUnsafe(size);
  for (let i = 0; i < Math.min(size, 251); i++) data[i] = i;
  for (let filled = 251; filled < size; filled *= 2) data.copyWithin(filled, 0, Math.min(filled, size - filled));
  return data;
}

function field(message: unknown, key: string): unknown {
  return message !== null && typeof message === 'object' ? (message as Message)[key] : undefined;
}

function describe(message: unknown): string {
  try {
    return JSON.stringify(message, (_k, v) => (v instanceof Uint8Array ? `<${v.byteLength} bytes>` : v)).slice(0, 300);
  } catch {
    return String(message);
  }
}

export interface RoundTripResult {
  trips: number;
  per_s: number;
  median_us: number;
  p99_us: number;
  cpu_user_ms: number;
  cpu_system_ms: number;
}

/** Sequential ping/pong until `maxTrips` or `maxSeconds`. */
export async function benchRoundTrips(peer: BenchPeer, maxTrips: number, maxSeconds: number): Promise<RoundTripResult> {
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
    latencies[i] = t1 - t0;
    i++;
    if (t1 > deadline) break;
  }
  const elapsed = (now() - start) / 1000;
  const used = cpuSince(cpu);
  const sorted = latencies.subarray(0, i).sort();
  return {
    trips: i,
    per_s: i / elapsed,
    median_us: median(Array.from(sorted)) * 1000,
    p99_us: sorted[Math.floor(0.99 * (i - 1))] * 1000,
    ...used,
  };
}

export interface PipelinedResult {
  messages: number;
  per_s: number;
  seconds: number;
  cpu_user_ms: number;
  cpu_system_ms: number;
}

/** `pipe` messages back to back until `maxN` or `maxSeconds` (checked every 1,000), then `count`. */
export async function benchPipelined(peer: BenchPeer, maxN: number, maxSeconds: number): Promise<PipelinedResult> {
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
  if (field(reply, 'op') !== 'count' || field(reply, 'count') !== n) {
    throw new BenchError(`pipelined: sent ${n}, server counted ${describe(reply)}`);
  }
  return { messages: n, per_s: n / seconds, seconds, ...cpuSince(cpu) };
}

export interface BulkResult {
  messages: number;
  MiB: number;
  MiBps: number;
  seconds: number;
  cpu_user_ms: number;
  cpu_system_ms: number;
}

/**
 * `maxCount` bulk messages of `size` bytes back to back, then bulk-done and its reply.
 * Acked: each bulk message is followed by bulk-done and its reply (one in flight).
 */
export async function benchBulk(
  peer: BenchPeer,
  data: Buffer,
  maxCount: number,
  maxSeconds: number,
  acked: boolean,
): Promise<BulkResult> {
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

/** dask_peer.py's BULK_PHASES: (output key, message size, acked). */
export const BULK_PHASES: ReadonlyArray<readonly [string, number, boolean]> = [
  ['bulk_16MiB', 16 * MiB, false],
  ['bulk_1MiB', 1 * MiB, false],
  ['bulk_16MiB_acked', 16 * MiB, true],
  ['bulk_1MiB_acked', 1 * MiB, true],
];

function rounded(results: object[]): object[] {
  return results.map((result) =>
    Object.fromEntries(Object.entries(result).map(([k, v]) => [k, typeof v === 'number' && !Number.isInteger(v) ? Number(v.toPrecision(6)) : v])),
  );
}

/** How a client runs: which phases (`--only`, for profiling) and whether it warms up first. */
export interface ClientPlan {
  options: BenchOptions;
  only?: Set<string>;
  warmUp?: boolean;
}

export type PhaseResult = RoundTripResult | PipelinedResult | BulkResult;
/** One repetition's results, by phase. */
export type Rep = Record<string, PhaseResult>;

/** The phases of a repetition, in the order Dask's client runs them. */
export const PHASES: readonly string[] = ['roundtrip', 'pipelined', ...BULK_PHASES.map(([key]) => key)];

class BenchClient {
  private readonly data = new Map<number, Buffer>();

  constructor(
    private readonly peer: BenchPeer,
    private readonly plan: ClientPlan,
  ) {
    for (const [, size] of BULK_PHASES) if (!this.data.has(size)) this.data.set(size, pattern(size));
  }

  private runs(phase: string): boolean {
    return this.plan.only === undefined || this.plan.only.has(phase);
  }

  /** Dask's warm-up: 200 pings, 5,000 pipes, a few bulk messages of each kind (also warms both allocators). */
  async warmUp(): Promise<void> {
    if (this.plan.warmUp === false) return;
    await benchRoundTrips(this.peer, 200, 1);
    await benchPipelined(this.peer, 5000, 1);
    for (const [, size, acked] of BULK_PHASES) await benchBulk(this.peer, this.data.get(size)!, size > MiB ? 4 : 32, 1, acked);
  }

  async rep(): Promise<Rep> {
    const rep: Rep = {};
    for (const phase of PHASES) if (this.runs(phase)) rep[phase] = await this.phase(phase);
    return rep;
  }

  async phase(phase: string): Promise<PhaseResult> {
    const { options } = this.plan;
    if (phase === 'roundtrip') return benchRoundTrips(this.peer, options.trips, options.tripSeconds);
    if (phase === 'pipelined') return benchPipelined(this.peer, options.pipelined, options.pipelinedSeconds);
    const bulk = BULK_PHASES.find(([key]) => key === phase);
    if (!bulk) throw new Error(`unknown phase ${JSON.stringify(phase)} (one of ${PHASES.join(', ')})`);
    const [, size, acked] = bulk;
    const maxCount = Math.max(1, Math.floor((options.bulkTotalMiB * MiB) / size));
    return benchBulk(this.peer, this.data.get(size)!, maxCount, options.bulkSeconds, acked);
  }
}

/** Dask's output: the medians over the repetitions, under its keys, and each repetition in `raw`. */
export function summarize(reps: Rep[]): Record<string, unknown> {
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const of = <T>(phase: string) => reps.map((rep) => rep[phase] as T | undefined).filter((r): r is T => r !== undefined);
  const roundTrips = of<RoundTripResult>('roundtrip');
  const pipelined = of<PipelinedResult>('pipelined');
  const out: Record<string, unknown> = {
    roundtrip_per_s: round1(median(roundTrips.map((r) => r.per_s))),
    roundtrip_median_us: round1(median(roundTrips.map((r) => r.median_us))),
    pipelined_per_s: round1(median(pipelined.map((r) => r.per_s))),
  };
  for (const [key] of BULK_PHASES) out[`${key}_MiBps`] = round1(median(of<BulkResult>(key).map((r) => r.MiBps)));
  out.reps = reps.length;
  const raw: Record<string, object[]> = { roundtrip: rounded(roundTrips), pipelined: rounded(pipelined) };
  for (const [key] of BULK_PHASES) raw[key] = rounded(of<BulkResult>(key));
  out.raw = raw;
  return out;
}

/**
 * Dask's `run_bench_client` on one connection: the warm-up, then `reps` repetitions;
 * figures are medians over them.
 */
export async function runBenchClient(peer: BenchPeer, plan: ClientPlan): Promise<Record<string, unknown>> {
  const client = new BenchClient(peer, plan);
  await client.warmUp();
  const reps: Rep[] = [];
  for (let i = 0; i < plan.options.reps; i++) reps.push(await client.rep());
  return summarize(reps);
}

/**
 * `--stepped`, for run.ts: the same client on one connection, but driven from stdin, so
 * that the parent can interleave implementations while each client keeps its connection
 * and its warmed-up JIT, as in Dask's own client (whose repetitions run back to back in
 * one process). After the warm-up it prints `{"warm": true}`. Then each stdin line
 * `rep` runs one repetition and prints it in Dask's format (`reps: 1`), and each line
 * `phase NAME` runs one phase and prints `{"ok": true, "phase": NAME, "<label>": {...}}`
 * (the phase's raw figures). A failure prints `{"ok": false, "error"}` and exits; stdin's
 * end closes the comm and exits.
 */
async function runSteppedClient(peer: BenchPeer, plan: ClientPlan, label: string, extra: object): Promise<void> {
  const client = new BenchClient(peer, plan);
  await client.warmUp();
  emit({ warm: true, pid: process.pid });
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    const [command, phase] = line.trim().split(/\s+/);
    if (command === 'rep') emit({ ok: true, [label]: { ...summarize([await client.rep()]), ...extra } });
    else if (command === 'phase') emit({ ok: true, phase, [label]: await client.phase(phase) });
  }
}

/**
 * A side's client, once connected: Dask's whole run printed as one line, or, with
 * `--stepped`, one repetition per `rep` line on stdin. `extra` joins the figures
 * (rxcomm adds the negotiated handshake options, as Dask does).
 */
export async function clientMain(peer: BenchPeer, args: SideArgs, label: string, extra: object = {}): Promise<void> {
  const plan: ClientPlan = { options: args.options, only: args.only, warmUp: !args.flags.has('--no-warm-up') };
  if (args.flags.has('--stepped')) await runSteppedClient(peer, plan, label, extra);
  else emit({ ok: true, [label]: { ...(await runBenchClient(peer, plan)), ...extra } });
}

/** A Node side's client: the peer the phases drive, what to report with it, how to close it. */
export interface SideClient {
  peer: BenchPeer;
  extra?: object;
  close(): Promise<void>;
}

/** The command line both Node sides share: `server <tcp|tls>` or `client <address> <tcp|tls>`. */
export async function sideMain(
  name: string,
  side: {
    serve(transport: string, tls: SideArgs['tls']): Promise<void>;
    connect(address: string, transport: string, args: SideArgs): Promise<SideClient>;
  },
): Promise<void> {
  const args = parseSideArgs(process.argv.slice(2));
  const [mode, ...rest] = args.positional;
  if (mode === 'server') {
    installGuards('server', args.lifetime);
    await side.serve(rest[0] ?? 'tcp', args.tls);
    return;
  }
  if (mode !== 'client') throw new Error(`usage: ${name} server <tcp|tls> | client <address> <tcp|tls> [options]`);
  installGuards('client', args.timeout);
  const [address, transport = address?.split('://')[0]] = rest;
  if (!address) throw new Error('usage: client <address> <tcp|tls>');
  if (!address.startsWith(`${transport}://`)) throw new Error(`address ${address} is not a ${transport} address`);
  const client = await side.connect(address, transport, args);
  try {
    await clientMain(client.peer, args, args.label ?? transport, client.extra);
  } finally {
    await client.close();
  }
  process.exit(0);
}
