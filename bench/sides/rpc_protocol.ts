/**
 * The rpc bench as a Node side runs it (rxcomm_rpc.ts): its phases, its output and its
 * command line. It measures what dask_side.py's `rpc-client` measures, with the same
 * payload, limits and output keys (bench/README.md, "The rpc table"), so that the two
 * columns of the rpc table are comparable.
 *
 * Like protocol.ts, it knows nothing of rxcomm: the side hands it two ways to make one
 * `echo` call (through a plain rpc, through a pool's rpc) and it drives them.
 *
 *   sequential: one call at a time through `rpc(address)` (one comm, reused), up to
 *               `--calls` calls or `--call-seconds`; calls/s = calls / elapsed, and the
 *               median single call
 *   concurrent: `--concurrency` (100) callers, each calling again as soon as its reply is
 *               in, through one pool of `--concurrency` comms, up to `--concurrent-calls`
 *               calls or `--concurrent-seconds`; calls/s = replies / (first call → last reply)
 *
 * Every reply must equal the payload sent (its `i` names the call, so a reply handed to
 * the wrong caller fails the phase).
 */
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { emit, installGuards, median } from './protocol';

/** The payload of call `i`, a small map (dask_side.py's `rpc_payload`). */
export interface RpcPayload {
  i: number;
  name: string;
  values: number[];
  flag: boolean;
}

export function rpcPayload(i: number): RpcPayload {
  return { i, name: 'rpc-bench', values: [1, 2, 3], flag: true };
}

function isPayload(reply: unknown, i: number): boolean {
  if (reply === null || typeof reply !== 'object') return false;
  const r = reply as Partial<RpcPayload>;
  const v = r.values;
  return (
    r.i === i && r.name === 'rpc-bench' && r.flag === true && Array.isArray(v) && v.length === 3 && v[0] === 1 && v[1] === 2 && v[2] === 3 && Object.keys(r).length === 4
  );
}

// ---------------------------------------------------------------------------------------
// options
// ---------------------------------------------------------------------------------------

/** The rpc client's options (dask_side.py `rpc-client`'s flags), with their defaults. */
export interface RpcOptions {
  reps: number;
  calls: number;
  callSeconds: number;
  concurrentCalls: number;
  concurrentSeconds: number;
  concurrency: number;
  /** The pool's limit; 0: `concurrency` (comparison only: Dask's pool churns at limit = concurrency, bench/README.md). */
  poolLimit: number;
}

export const RPC_DEFAULTS: RpcOptions = {
  reps: 3,
  calls: 5000,
  callSeconds: 2,
  concurrentCalls: 50_000,
  concurrentSeconds: 2,
  concurrency: 100,
  poolLimit: 0,
};

const FLAGS: Record<string, keyof RpcOptions> = {
  '--reps': 'reps',
  '--calls': 'calls',
  '--call-seconds': 'callSeconds',
  '--concurrent-calls': 'concurrentCalls',
  '--concurrent-seconds': 'concurrentSeconds',
  '--concurrency': 'concurrency',
  '--pool-limit': 'poolLimit',
};

/** So that run.ts can pass one list to both clients (`--pool-limit` only when set). */
export function rpcOptionFlags(options: RpcOptions): string[] {
  return Object.entries(FLAGS).flatMap(([flag, key]) => (options[key] > 0 ? [flag, String(options[key])] : []));
}

/** The phases of a repetition, in order. */
export const RPC_PHASES = ['rpc_sequential', 'rpc_concurrent'] as const;
export type RpcPhase = (typeof RPC_PHASES)[number];

// ---------------------------------------------------------------------------------------
// phases
// ---------------------------------------------------------------------------------------

/** What a side offers the phases. */
export interface RpcClientSide {
  /** One `echo` call with `{data}` through the plain rpc; resolves to the reply. */
  call(data: RpcPayload): Promise<unknown>;
  /** The same through the pool's rpc. */
  pooledCall(data: RpcPayload): Promise<unknown>;
  /** Comms open now (reported with each phase: 1 and `concurrency` are expected). */
  comms(): { rpc_comms: number; pool_open: number };
  close(): Promise<void>;
}

/** CPU time of the client's process during the phase, and of the server's when run.ts measured it (rpc.ts). */
interface PhaseCpu { cpu_user_ms: number; cpu_system_ms: number; server_cpu_ms?: number }
export interface SequentialResult extends PhaseCpu { calls: number; per_s: number; median_us: number; p99_us: number; seconds: number }
export interface ConcurrentResult extends PhaseCpu { calls: number; per_s: number; seconds: number; concurrency: number }
export type RpcPhaseResult = SequentialResult | ConcurrentResult;
/** One repetition's results, by phase. */
export type RpcRep = Partial<Record<RpcPhase, RpcPhaseResult>>;

class RpcBenchError extends Error {
  override name = 'RpcBenchError';
}

const now = () => performance.now();

function cpuSince(since: NodeJS.CpuUsage): { cpu_user_ms: number; cpu_system_ms: number } {
  const used = process.cpuUsage(since);
  return { cpu_user_ms: used.user / 1000, cpu_system_ms: used.system / 1000 };
}

function describe(message: unknown): string {
  try {
    return JSON.stringify(message).slice(0, 300);
  } catch {
    return String(message);
  }
}

async function benchSequential(side: RpcClientSide, maxCalls: number, maxSeconds: number): Promise<SequentialResult> {
  const latencies = new Float64Array(maxCalls);
  const cpu = process.cpuUsage();
  const start = now();
  const deadline = start + maxSeconds * 1000;
  let i = 0;
  while (i < maxCalls) {
    const data = rpcPayload(i);
    const t0 = now();
    const reply = await side.call(data);
    const t1 = now();
    if (!isPayload(reply, i)) throw new RpcBenchError(`sequential: call ${i} got ${describe(reply)}`);
    latencies[i++] = t1 - t0;
    if (t1 > deadline) break;
  }
  const seconds = (now() - start) / 1000;
  const used = cpuSince(cpu);
  const sorted = latencies.subarray(0, i).sort();
  return { calls: i, per_s: i / seconds, median_us: median(Array.from(sorted)) * 1000, p99_us: sorted[Math.floor(0.99 * (i - 1))] * 1000, seconds, ...used };
}

async function benchConcurrent(side: RpcClientSide, maxCalls: number, maxSeconds: number, concurrency: number): Promise<ConcurrentResult> {
  const cpu = process.cpuUsage();
  const start = now();
  const deadline = start + maxSeconds * 1000;
  let issued = 0;
  let done = 0;
  const caller = async () => {
    while (issued < maxCalls && now() < deadline) {
      const i = issued++;
      const reply = await side.pooledCall(rpcPayload(i));
      if (!isPayload(reply, i)) throw new RpcBenchError(`concurrent: call ${i} got ${describe(reply)}`);
      done++;
    }
  };
  await Promise.all(Array.from({ length: concurrency }, caller));
  const seconds = (now() - start) / 1000;
  return { calls: done, per_s: done / seconds, seconds, concurrency, ...cpuSince(cpu) };
}

class RpcBenchClient {
  constructor(
    private readonly side: RpcClientSide,
    private readonly options: RpcOptions,
  ) {}

  /**
   * 5,000 sequential calls and 20,000 concurrent ones (or 1 s each): opens the pool's comms
   * and warms the JIT, the server's too (with 1,000 sequential calls, the first
   * repetition's sequential rate still came out ~0.7× the later ones' against a fresh server).
   */
  async warmUp(): Promise<void> {
    await benchSequential(this.side, 5000, 1);
    await benchConcurrent(this.side, 20_000, 1, this.options.concurrency);
  }

  async phase(phase: string): Promise<RpcPhaseResult & ReturnType<RpcClientSide['comms']>> {
    const { side, options } = this;
    let result: RpcPhaseResult;
    if (phase === 'rpc_sequential') result = await benchSequential(side, options.calls, options.callSeconds);
    else if (phase === 'rpc_concurrent') result = await benchConcurrent(side, options.concurrentCalls, options.concurrentSeconds, options.concurrency);
    else throw new Error(`unknown phase ${JSON.stringify(phase)} (one of ${RPC_PHASES.join(', ')})`);
    return { ...result, ...side.comms() };
  }
}

/** Medians over the repetitions under the table's keys, and each repetition in `raw` (dask_side.py `summarize_rpc`). */
export function summarizeRpc(reps: RpcRep[]): Record<string, unknown> {
  const round1 = (x: number) => Math.round(x * 10) / 10;
  const of = <T>(phase: RpcPhase) => reps.map((rep) => rep[phase] as T | undefined).filter((r): r is T => r !== undefined);
  const sequential = of<SequentialResult>('rpc_sequential');
  const concurrent = of<ConcurrentResult>('rpc_concurrent');
  /** Client + server CPU µs per call (only when the server's CPU was measured). */
  const cpuPerCall = (results: RpcPhaseResult[]) => {
    const measured = results.filter((r) => r.server_cpu_ms !== undefined && r.calls > 0);
    return measured.length ? round1(median(measured.map((r) => ((r.cpu_user_ms + r.cpu_system_ms + r.server_cpu_ms!) * 1000) / r.calls))) : undefined;
  };
  return {
    rpc_sequential_per_s: round1(median(sequential.map((r) => r.per_s))),
    rpc_sequential_median_us: round1(median(sequential.map((r) => r.median_us))),
    rpc_concurrent_per_s: round1(median(concurrent.map((r) => r.per_s))),
    rpc_sequential_cpu_us: cpuPerCall(sequential),
    rpc_concurrent_cpu_us: cpuPerCall(concurrent),
    reps: reps.length,
    raw: Object.fromEntries(RPC_PHASES.map((phase) => [phase, of<RpcPhaseResult>(phase)])),
  };
}

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

interface RpcSideArgs {
  positional: string[];
  options: RpcOptions;
  label: string;
  timeout: number;
  lifetime: number;
  stepped: boolean;
  warmUp: boolean;
  only: Set<string> | undefined;
}

function parseRpcSideArgs(argv: string[]): RpcSideArgs {
  const args: RpcSideArgs = { positional: [], options: { ...RPC_DEFAULTS }, label: 'rpc', timeout: 120, lifetime: 600, stepped: false, warmUp: true, only: undefined };
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
    } else if (arg === '--label') args.label = value();
    else if (arg === '--timeout') args.timeout = Number(value());
    else if (arg === '--lifetime') args.lifetime = Number(value());
    else if (arg === '--only') args.only = new Set(value().split(','));
    else if (arg === '--stepped') args.stepped = true;
    else if (arg === '--no-warm-up') args.warmUp = false;
    else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}`);
    else args.positional.push(arg);
  }
  return args;
}

/**
 * The command line of a Node rpc side:
 *
 *     node dist-scripts/bench/sides/<side>.js server [--lifetime S]
 *     node dist-scripts/bench/sides/<side>.js client ADDRESS [--label L] [--reps 3] [--calls 5000]
 *         [--call-seconds 2] [--concurrent-calls 50000] [--concurrent-seconds 2] [--concurrency 100]
 *         [--pool-limit N (default: --concurrency)] [--timeout 120] [--stepped] [--only rpc_sequential,rpc_concurrent] [--no-warm-up]
 *
 * The server listens on tcp://127.0.0.1:0, prints `{"ready": true, "address", "pid"}` and
 * serves until its stdin closes. The client warms up, then either runs `--reps`
 * repetitions and prints one line of medians, or (`--stepped`, what run.ts uses) prints
 * `{"warm": true}` and answers each stdin line `phase NAME` with
 * `{"ok": true, "phase": NAME, "<label>": {...}}` until its stdin closes.
 */
export async function rpcSideMain(
  name: string,
  side: {
    serve(): Promise<{ address: string }>;
    connect(address: string, options: RpcOptions): Promise<RpcClientSide>;
  },
): Promise<void> {
  const args = parseRpcSideArgs(process.argv.slice(2));
  const [mode, address] = args.positional;
  if (mode === 'server') {
    installGuards('server', args.lifetime);
    emit({ ready: true, mode: `${name}-rpc-server`, ...(await side.serve()), pid: process.pid });
    return;
  }
  if (mode !== 'client' || !address) throw new Error(`usage: ${name}.js server | client <address> [options]`);
  installGuards('client', args.timeout);
  const client = await side.connect(address, args.options);
  try {
    const bench = new RpcBenchClient(client, args.options);
    if (args.warmUp) await bench.warmUp();
    if (args.stepped) {
      emit({ warm: true, pid: process.pid, ...client.comms() });
      for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
        const [command, phase] = line.trim().split(/\s+/);
        if (command === 'phase') emit({ ok: true, phase, [args.label]: await bench.phase(phase) });
      }
    } else {
      const reps: RpcRep[] = [];
      for (let i = 0; i < args.options.reps; i++) {
        const rep: RpcRep = {};
        for (const phase of RPC_PHASES) if (!args.only || args.only.has(phase)) rep[phase] = await bench.phase(phase);
        reps.push(rep);
      }
      emit({ ok: true, [args.label]: { ...summarizeRpc(reps), ...client.comms() } });
    }
  } finally {
    await client.close();
  }
  process.exit(0);
}
