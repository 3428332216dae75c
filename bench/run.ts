/**
 * `npm run bench`, the orchestrator: rxcomm against bare Node and against Dask, side by
 * side in one run, over tcp, tls, ws and wss; then the rpc table (rpc.ts): rxcomm's rpc
 * layer against Dask's Server and rpc; then the connections table (connections.ts):
 * connects/s and memory per open comm, and 10,000 comms held in one process; then the
 * compression table (compression.ts): 16 MiB out-of-band payloads, compression off and on.
 *
 *     npm run bench [-- --quick] [--transport tcp,tls,ws,wss] [--rpc] [--no-rpc] [--rpc-pool-limit N] [--reps N] [--no-dask]
 *         [--connections] [--no-connections] [--connections-n N] [--connections-10k]
 *         [--compression] [--no-compression] [--compression-formats lz4,zstd,snappy,zlib|all]
 *         [--link-rate 1gbit,10gbit] [--no-loopback]
 *     npm run bench -- --parser          (the protocol layer alone: parser.ts)
 *
 * Each side (sides/rxcomm.ts, sides/bare.ts for tcp/tls or sides/bare_ws.ts for ws/wss,
 * sides/dask_side.py) runs its server and its client in child processes of their own;
 * this file only starts them, asks for phases, and hands the figures to report.ts. A
 * transport rxcomm has no backend for (`getBackend` throws) is skipped with the reason.
 * Why it goes as it does (bench/README.md):
 * - The two Node clients live for the whole transport (`--stepped`): one connection,
 *   Dask's warm-up once, then phases on request, as Dask's client runs in one process
 *   (a fresh process per repetition would measure V8 before its JIT is warm).
 * - In each repetition the rxcomm and bare clients take turns phase by phase (who goes
 *   first alternates), so the two figures a ratio compares are measured seconds apart
 *   and noise from other jobs on the machine hits both alike. Dask's client cannot be
 *   stepped: it runs whole (`bench-client --reps 1`) before the Node pair in odd reps
 *   and after it in even ones (CPython has no JIT to warm).
 * - Every child has a deadline and is killed by its PID when it overruns or when the
 *   run ends (children.ts); reps that would push the run past its budget (~5 minutes for
 *   the default tcp, tls, ws and rpc) are dropped and reported.
 * Everything measured goes to bench/results/latest.json.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getBackend } from 'rxcomm';
import { createTestCertificates, type TestCertificates } from 'rxcomm/testing';
import { Child, killAll, log, SteppedClient } from './children';
import { IMPLS, implName, isEncrypted, isWs, reportCompressionLinks, reportTransport, TRANSPORTS, type BytePipeMode, type BytePipeRun, type ClientRun, type ConnTransport, type Impl, type Transport } from './report';
import { runCompression, type CompressionRun } from './compression';
import { createShapedLink, parseRate, type ShapedLink } from './netns';
import { runConnections, type ConnRunConfig } from './connections';
import { runRpc } from './rpc';
import { benchOptionFlags, DASK_BENCH_DEFAULTS, PHASES, summarize, type BenchOptions, type PhaseResult, type Rep, type TlsFiles } from './sides/protocol';
import { RPC_DEFAULTS, type RpcOptions } from './sides/rpc_protocol';
import { COMPRESSION_DEFAULTS, DEFAULT_FORMATS, FORMATS, type CompressionOptions, type Format } from './sides/compression_protocol';

/** dist-scripts/bench/run.js → the repository: the Python side runs from its source. */
const ROOT = path.resolve(__dirname, '..', '..');
/** Debian's interpreter: the only one here that can import Dask. */
const PYTHON = '/usr/bin/python3';
/** The command of a side: the bare baseline is bare.ts for tcp/tls and bare_ws.ts for ws/wss. */
function commandOf(impl: Impl, transport: Transport): [string, string[]] {
  if (impl === 'dask') return [PYTHON, [path.join(ROOT, 'bench', 'sides', 'dask_side.py')]];
  const module = impl === 'bare' && isWs(transport) ? 'bare_ws' : impl;
  return [process.execPath, [path.join(__dirname, 'sides', `${module}.js`)]];
}
const RESULTS = path.join(ROOT, 'bench', 'results', 'latest.json');

/**
 * The default run (tcp, tls, ws, rpc) should end within ~5 minutes, reps that would
 * overrun are dropped. Each transport reserves about what its 3 reps take here (ws and
 * wss: the bulk phases run into their time limit, Dask's ws client into its own), and the
 * rpc table what its servers' start, its warm-ups and 3 reps take; the budget is the
 * larger of 280 s and those reservations plus 30 s (~6 minutes with wss too).
 */
const MIN_BUDGET_MS = 280_000;
const RESERVE_MS: Record<Transport, number> = { tcp: 70_000, tls: 70_000, ws: 90_000, wss: 90_000 };
const QUICK_RESERVE_MS = 25_000;
const RPC_RESERVE_MS = 45_000;
const QUICK_RPC_RESERVE_MS = 20_000;
/** The connections table: what its runs take here (tcp and tls, then the 10,000-comm runs of rxcomm, bare and Dask). */
const CONN_RESERVE_MS = 80_000;
const QUICK_CONN_RESERVE_MS = 25_000;
const CONN_10K_RESERVE_MS = 90_000;
/** The compression table: servers, warm-ups and 3 reps of off and lz4 here (~45 s); per extra format ~20 s more. */
const COMPRESSION_RESERVE_MS = 50_000;
const COMPRESSION_FORMAT_RESERVE_MS = 25_000;
const QUICK_COMPRESSION_RESERVE_MS = 25_000;
/** A shaped link's compression table (--link-rate) against loopback's: ~60 s at 1 Gbit/s for 3 reps. */
const LINK_RESERVE_FACTOR = 1.3;

/**
 * A shaped link's phases: at most 2 s of the link's rate, but at least 256 MiB (or 4 s of
 * the rate on links below ~0.5 Gbit/s), and at most the usual cap: 256 MiB at 1 Gbit/s, 1 GiB
 * at 10. Dask's `comm.write` returns once tornado has queued the frames, so Dask's client
 * sends the whole `--total-mib` before `--seconds` is checked and then waits for the link to
 * carry it (1 GiB is 9 s at 1 Gbit/s, per phase). rxcomm's writes wait on backpressure and
 * stop after `--seconds` anyway.
 */
function linkOptions(options: CompressionOptions, link: ShapedLink): CompressionOptions {
  const secondsMiB = (seconds: number) => Math.max(16, Math.round((link.bitsPerSecond / 8 / (1024 * 1024)) * seconds / 16) * 16);
  return { ...options, totalMiB: Math.min(options.totalMiB, Math.max(Math.min(256, secondsMiB(4)), secondsMiB(2))) };
}
const SERVER_READY_MS = 45_000;

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

interface RunArgs {
  quick: boolean;
  parser: boolean;
  transports: Transport[];
  /** The rpc table: in the default run, with --rpc; not with --transport alone, nor with --no-rpc. */
  rpc: boolean;
  /** The connections table: in the default run, with --connections; not with another table named alone, nor with --no-connections. */
  connections: boolean;
  /** `--connections-10k`: only the 10,000-comm run, of every implementation. */
  connections10k: boolean;
  /** `--connections-n`: connects per tcp run (default 2,000; --quick 500); tls runs a quarter of it. */
  connectionsN: number;
  /** Runs per implementation in the connections table: tcp 2 and tls 1 (--quick 1 and 1), or --reps for both. */
  connectionsReps: { tcp: number; tls: number };
  /** The compression table: in the default run, with --compression; not with another table named alone, nor with --no-compression. */
  compression: boolean;
  /** `off` and the formats compared with it (default off, lz4). */
  compressionFormats: Format[];
  compressionOptions: CompressionOptions;
  /** `--link-rate`: the compression table again over a veth link shaped to each rate (tc syntax: 1gbit). */
  linkRates: string[];
  /** The compression table over loopback too (not with `--no-loopback`). */
  loopback: boolean;
  reps: number;
  dask: boolean;
  options: BenchOptions;
  rpcOptions: RpcOptions;
}

const USAGE =
  'usage: npm run bench [-- --quick] [--transport tcp,tls,ws,wss|all] [--rpc] [--no-rpc] [--rpc-pool-limit N] [--connections] [--no-connections] [--connections-n N] [--connections-10k] [--compression] [--no-compression] [--compression-formats lz4,zstd,snappy,zlib|all] [--link-rate 1gbit,10gbit] [--no-loopback] [--reps N] [--no-dask] | npm run bench -- --parser';
/** What `npm run bench` measures without --transport or --rpc (and the rpc table). */
const DEFAULT_TRANSPORTS: Transport[] = ['tcp', 'tls', 'ws'];

function parseArgs(argv: string[]): RunArgs {
  const args: RunArgs = {
    quick: false,
    parser: false,
    transports: [...DEFAULT_TRANSPORTS],
    rpc: true,
    connections: true,
    connections10k: false,
    connectionsN: 2000,
    connectionsReps: { tcp: 2, tls: 1 },
    compression: true,
    compressionFormats: [...DEFAULT_FORMATS],
    compressionOptions: { ...COMPRESSION_DEFAULTS },
    linkRates: [],
    loopback: true,
    reps: 3,
    dask: true,
    options: { ...DASK_BENCH_DEFAULTS },
    rpcOptions: { ...RPC_DEFAULTS },
  };
  let reps: number | undefined;
  let rpc: boolean | undefined;
  let connections: boolean | undefined;
  let connectionsN: number | undefined;
  let compression: boolean | undefined;
  const chosen: Transport[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => (arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i]) ?? '';
    if (arg === '--quick') args.quick = true;
    else if (arg === '--parser') args.parser = true;
    else if (arg === '--no-dask') args.dask = false;
    else if (arg === '--rpc') rpc = true;
    else if (arg === '--no-rpc') rpc = false;
    else if (arg === '--connections') connections = true;
    else if (arg === '--no-connections') connections = false;
    else if (arg === '--connections-10k') args.connections10k = true;
    else if (arg === '--compression') compression = true;
    else if (arg === '--no-compression') compression = false;
    else if (arg === '--no-loopback') args.loopback = false;
    else if (arg === '--link-rate' || arg.startsWith('--link-rate=')) {
      const list = value();
      const rates = list.split(',').filter(Boolean);
      for (const rate of rates) if (parseRate(rate) === undefined) throw new Error(`--link-rate takes rates in tc's syntax (comma-separated), e.g. 1gbit,10gbit or 500mbit, got ${JSON.stringify(list)}`);
      if (rates.length === 0) throw new Error('--link-rate names no rate');
      args.linkRates = [...new Set([...args.linkRates, ...rates])];
      // The link tables are compression tables: --link-rate alone runs the compression table alone.
      compression ??= true;
    }
    else if (arg === '--compression-formats' || arg.startsWith('--compression-formats=')) {
      const list = value();
      const named = list === 'all' ? FORMATS.filter((f) => f !== 'off') : list.split(',').filter((f) => f !== 'off');
      for (const f of named) if (!(FORMATS as readonly string[]).includes(f)) throw new Error(`--compression-formats takes ${FORMATS.slice(1).join(', ')} (comma-separated) or all, got ${JSON.stringify(list)}`);
      if (named.length === 0) throw new Error('--compression-formats names no format');
      args.compressionFormats = ['off', ...new Set(named as Format[])];
    }
    else if (arg === '--connections-n' || arg.startsWith('--connections-n=')) {
      connectionsN = Number(value());
      if (!(connectionsN >= 1)) throw new Error('--connections-n takes a positive integer');
    }
    else if (arg === '--rpc-pool-limit' || arg.startsWith('--rpc-pool-limit=')) {
      // Comparison only: both pools' limit above the 100 callers (bench/README.md, Dask's pool churn).
      args.rpcOptions.poolLimit = Number(value());
      if (!(args.rpcOptions.poolLimit >= 1)) throw new Error('--rpc-pool-limit takes a positive integer');
    } else if (arg === '--transport' || arg.startsWith('--transport=')) {
      const list = value();
      for (const t of list === 'all' ? TRANSPORTS : list.split(',')) {
        if (!(TRANSPORTS as readonly string[]).includes(t)) throw new Error(`--transport takes ${TRANSPORTS.join(', ')} (comma-separated), got ${JSON.stringify(list)}`);
        chosen.push(t as Transport);
      }
    } else if (arg === '--reps' || arg.startsWith('--reps=')) {
      reps = Number(value());
      if (!(reps >= 1)) throw new Error('--reps takes a positive integer');
    } else if (arg === '--help' || arg === '-h') {
      console.log(USAGE);
      process.exit(0);
    } else throw new Error(`unknown argument ${JSON.stringify(arg)} (${USAGE})`);
  }
  // What is named is what runs: --rpc alone is the rpc table alone, --transport alone no rpc
  // table, --connections alone the connections table alone (--connections-10k its last run alone).
  const named = chosen.length > 0 || rpc === true || connections === true || args.connections10k || compression === true;
  if (chosen.length > 0) args.transports = [...new Set(chosen)];
  else if (named) args.transports = [];
  args.rpc = rpc ?? !named;
  args.connections = connections ?? !named;
  args.compression = compression ?? !named;
  if (!args.compression) args.linkRates = [];
  if (args.linkRates.length === 0) args.loopback = true;
  if (args.quick) {
    args.reps = 1;
    args.options = { reps: 1, trips: 1000, tripSeconds: 0.5, pipelined: 20_000, pipelinedSeconds: 0.5, bulkTotalMiB: 64, bulkSeconds: 0.5 };
    args.rpcOptions = { ...args.rpcOptions, calls: 1000, callSeconds: 0.5, concurrentCalls: 10_000, concurrentSeconds: 0.5 };
    args.compressionOptions = { totalMiB: 64, seconds: 0.5 };
  }
  if (args.quick) args.connectionsN = 500;
  if (connectionsN !== undefined) args.connectionsN = Math.floor(connectionsN);
  if (reps !== undefined) args.reps = Math.floor(reps);
  args.connectionsReps = reps !== undefined ? { tcp: args.reps, tls: args.reps } : { tcp: args.quick ? 1 : 2, tls: 1 };
  // Each client process runs Dask's warm-up and ONE repetition at a time; run.ts interleaves.
  args.options.reps = 1;
  args.rpcOptions.reps = 1;
  return args;
}

// ---------------------------------------------------------------------------------------
// children (children.ts): each prints JSON lines on stdout and stops when its stdin closes
// ---------------------------------------------------------------------------------------

/** A side's process: `impl`'s command for `transport`, run from the repository. */
function childOf(impl: Impl, transport: Transport, args: string[]): Child {
  const [command, prefix] = commandOf(impl, transport);
  return new Child(command, [...prefix, ...args], ROOT);
}

interface Tls {
  server: TlsFiles;
  client: TlsFiles;
}

const tlsArgs = (files: TlsFiles | undefined) => (files ? ['--tls', files.ca, files.cert, files.key] : []);

/**
 * ws and wss: always dial 127.0.0.1. Dask's ws listener binds every interface and
 * advertises the LAN address (dask_side.py already prints a loopback address; this
 * keeps any side from sending the clients off loopback).
 */
function dialable(transport: Transport, address: string): string {
  if (!isWs(transport)) return address;
  const port = /:(\d+)\/?$/.exec(address)?.[1];
  if (port === undefined) throw new Error(`no port in ${address}`);
  return `${transport}://127.0.0.1:${port}`;
}

async function startServer(impl: Impl, transport: Transport, tls: Tls | undefined): Promise<{ child: Child; address: string }> {
  const mode = impl === 'dask' ? ['bench-server', '--transport', transport] : ['server', transport];
  const child = childOf(impl, transport, [...mode, ...tlsArgs(tls?.server), '--lifetime', '600']);
  const line = await child.next(SERVER_READY_MS);
  if (line?.ready === true && typeof line.address === 'string') return { child, address: dialable(transport, line.address) };
  await child.stop();
  throw new Error(`${implName(impl, transport)} ${transport} server did not start: ${(line?.error as string | undefined) ?? child.failure()}`);
}

function clientArgs(impl: Impl, transport: Transport, address: string, tls: Tls | undefined, options: BenchOptions, timeoutS: number): string[] {
  const common = [...tlsArgs(tls?.client), '--label', impl, ...benchOptionFlags(options), '--timeout', String(timeoutS)];
  return impl === 'dask' ? ['bench-client', address, ...common] : ['client', address, transport, ...common];
}

/** A Node client in `--stepped` mode (children.ts): connected and warmed up once, then one phase per request. */
async function startStepped(impl: Impl, transport: Transport, address: string, tls: Tls | undefined, options: BenchOptions, lifetimeS: number): Promise<SteppedClient<Impl>> {
  return SteppedClient.start(impl, childOf(impl, transport, [...clientArgs(impl, transport, address, tls, options, lifetimeS), '--stepped']));
}

/** Dask's client, whole: warm-up and one repetition in a process of its own. */
async function runDaskClient(rep: number, transport: Transport, address: string, tls: Tls | undefined, options: BenchOptions, timeoutS: number): Promise<ClientRun> {
  const started = Date.now();
  const child = childOf('dask', transport, clientArgs('dask', transport, address, tls, options, timeoutS));
  // It has its own deadline; this one is for a child that ignores it.
  const line = await child.next((timeoutS + 10) * 1000);
  const seconds = (Date.now() - started) / 1000;
  await child.stop();
  if (line?.ok === true && line.dask && typeof line.dask === 'object') return { impl: 'dask', rep, ok: true, seconds, result: line.dask as Record<string, unknown> };
  return { impl: 'dask', rep, ok: false, seconds, error: (line?.error as string | undefined) ?? child.failure() };
}

// ---------------------------------------------------------------------------------------
// the byte pipe (sides/byte_pipe.ts): the tcp bulk rows' ceiling, measured in the same run
// ---------------------------------------------------------------------------------------

const BYTE_PIPE = path.join(__dirname, 'sides', 'byte_pipe.js');
const BYTE_PIPE_MODES: readonly BytePipeMode[] = ['onread', 'fresh', 'data'];

async function startBytePipe(): Promise<{ child: Child; address: string } | { error: string }> {
  const child = new Child(process.execPath, [BYTE_PIPE, 'server', '--lifetime', '600'], ROOT);
  const line = await child.next(SERVER_READY_MS);
  if (line?.ready === true && typeof line.address === 'string') return { child, address: line.address };
  await child.stop();
  return { error: `byte pipe server did not start: ${child.failure()}` };
}

/** One pass of each mode (a warm-up pass first, in the same process), 16 MiB blocks. */
async function runBytePipe(rep: number, address: string, quick: boolean): Promise<BytePipeRun[]> {
  const runs: BytePipeRun[] = [];
  for (const mode of BYTE_PIPE_MODES) {
    const child = new Child(process.execPath, [BYTE_PIPE, 'client', address, '--mode', mode, '--total-mib', quick ? '256' : '1024', '--block-mib', '16'], ROOT);
    const line = await child.next(30_000);
    await child.stop();
    if (line?.ok === true && typeof line.byte_pipe_MiBps === 'number') {
      runs.push({ rep, mode, MiBps: line.byte_pipe_MiBps });
      log(`tcp rep ${rep + 1} byte pipe (${mode}): ${Math.round(line.byte_pipe_MiBps)} MiB/s`);
    } else console.log(`byte pipe (${mode}) failed (rep ${rep + 1}): ${(line?.error as string | undefined) ?? child.failure()}`);
  }
  return runs;
}

// ---------------------------------------------------------------------------------------
// environment
// ---------------------------------------------------------------------------------------

function daskVersion(): { version?: string; reason?: string } {
  const probe = spawnSync(PYTHON, ['-c', 'import distributed; print(distributed.__version__)'], { timeout: 60_000, encoding: 'utf8' });
  if (probe.error) return { reason: `${PYTHON} cannot run: ${probe.error.message}` };
  if (probe.status !== 0) return { reason: `${PYTHON} cannot import distributed (${(probe.stderr ?? '').trim().split('\n').pop()})` };
  return { version: probe.stdout.trim() };
}

/** Why rxcomm cannot run `transport` (its backend is missing or fails to load), if it cannot. */
function missingBackend(transport: Transport): string | undefined {
  try {
    getBackend(transport);
    return undefined;
  } catch (error) {
    return `rxcomm has no ${transport} backend (${(error as Error).message})`;
  }
}

/** rxcomm/testing's throwaway CA, with a server and a client certificate: mutual TLS as in Dask. */
async function makeTls(): Promise<{ tls?: Tls; certs?: TestCertificates; reason?: string }> {
  try {
    const certs = await createTestCertificates();
    process.on('exit', () => fs.rmSync(certs.dir, { recursive: true, force: true }));
    const files = (who: 'server' | 'client') => ({ ca: certs.ca.certFile, cert: certs[who].certFile, key: certs[who].keyFile });
    return { tls: { server: files('server'), client: files('client') }, certs };
  } catch (error) {
    return { reason: `cannot make certificates (${(error as Error).message})` };
  }
}

/**
 * Whether `ws` finds its optional native helper `bufferutil` (WebSocket masking in C): without
 * it, ws masks and unmasks in a JS loop, byte by byte, which bounds every ws/wss bulk figure
 * of rxcomm and of the bare `ws` pair alike (bench/README.md).
 */
function wsNativeMask(): string {
  try {
    const wsDir = path.dirname(require.resolve('ws/package.json'));
    return `bufferutil ${require(require.resolve('bufferutil/package.json', { paths: [wsDir] })).version}`;
  } catch {
    return 'none (JS masking)';
  }
}

function commandLine(argv: string[]): string {
  const quoted = argv.map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
  if (process.env.npm_lifecycle_event === 'bench') return `npm run bench${argv.length ? ` -- ${quoted}` : ''}`;
  return `node ${path.relative(ROOT, process.argv[1])}${argv.length ? ` ${quoted}` : ''}`;
}

function gitCommit(): string | undefined {
  const run = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
  if (run.status !== 0) return undefined;
  const dirty = spawnSync('git', ['status', '--porcelain', '--', 'lib'], { cwd: ROOT, encoding: 'utf8', timeout: 10_000 });
  return run.stdout.trim() + (dirty.stdout?.trim() ? ' (lib/ has uncommitted changes)' : '');
}

// ---------------------------------------------------------------------------------------
// one transport
// ---------------------------------------------------------------------------------------

interface Row {
  transport: Transport;
  impls: Impl[];
  tls: Tls | undefined;
  args: RunArgs;
  /** Epoch ms by which this transport must be done, leaving time for the ones after it. */
  deadline: number;
  /** The whole run's budget, ms (the Node clients' lifetime). */
  budget: number;
}

async function runTransport({ transport, impls, tls, args, deadline, budget }: Row): Promise<{ runs: ClientRun[]; pipeRuns: BytePipeRun[]; serverErrors: Record<string, string> }> {
  log(`${transport}: starting servers (${impls.join(', ')})`);
  const servers = new Map<Impl, { child: Child; address: string }>();
  const serverErrors: Record<string, string> = {};
  const started = await Promise.allSettled(impls.map((impl) => startServer(impl, transport, tls)));
  started.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') servers.set(impls[i], outcome.value);
    else console.log((serverErrors[impls[i]] = (outcome.reason as Error).message));
  });
  // tcp only: the byte pipe, run in each rep right after the Node pair's bulk phases.
  const pipeRuns: BytePipeRun[] = [];
  const pipe = transport === 'tcp' ? await startBytePipe() : undefined;
  if (pipe && 'error' in pipe) console.log((serverErrors.bytePipe = pipe.error));
  const pipeServer = pipe && 'child' in pipe ? pipe : undefined;

  const runs: ClientRun[] = [];
  const longest: Partial<Record<Impl, number>> = {};
  const clientTimeout = args.quick ? 60 : 90;
  const stepped = new Map<Impl, SteppedClient<Impl>>();
  const record = (run: ClientRun) => {
    longest[run.impl] = Math.max(longest[run.impl] ?? 0, run.seconds);
    runs.push(run);
    const r = run.result;
    if (r) log(`${transport} rep ${run.rep + 1} ${run.impl.padEnd(6)} ${run.seconds.toFixed(1)} s: rtt ${r.roundtrip_median_us} µs, ${r.roundtrip_per_s}/s, pipelined ${r.pipelined_per_s}/s, 16 MiB ${r.bulk_16MiB_MiBps}, 1 MiB ${r.bulk_1MiB_MiBps} MiB/s`);
    else console.log(`${implName(run.impl, transport)} ${transport} client failed (rep ${run.rep + 1}): ${run.error}`);
  };
  try {
    for (const impl of impls) {
      if (impl === 'dask' || !servers.has(impl)) continue;
      const client = await startStepped(impl, transport, servers.get(impl)!.address, tls, args.options, budget / 1000 + 60);
      stepped.set(impl, client);
      if (client.error) record({ impl, rep: 0, ok: false, seconds: 0, error: client.error });
      else log(`${transport}: ${impl} client connected and warmed up`);
    }
    const nodeImpls = [...stepped.values()].filter((client) => !client.error).map((client) => client.label);
    const active: Impl[] = [...nodeImpls, ...(servers.has('dask') ? (['dask'] as const) : [])];
    const runDask = async (rep: number) => {
      if (servers.has('dask')) record(await runDaskClient(rep, transport, servers.get('dask')!.address, tls, args.options, clientTimeout));
    };
    for (let rep = 0; rep < args.reps; rep++) {
      const expected = active.reduce((sum, impl) => sum + (longest[impl] ?? (impl === 'dask' ? 25 : 6)), 0) * 1000;
      if (Date.now() + expected > deadline) {
        console.log(`${transport}: reps ${rep + 1}-${args.reps} skipped, out of time`);
        for (const impl of active) runs.push({ impl, rep, ok: false, seconds: 0, error: 'skipped: out of time' });
        break;
      }
      if (rep % 2 === 1) await runDask(rep);
      // The Node pair phase by phase, who goes first alternating by rep and phase.
      const reps = new Map<Impl, Rep>(nodeImpls.map((impl) => [impl, {}]));
      const seconds = new Map<Impl, number>(nodeImpls.map((impl) => [impl, 0]));
      const failed = new Map<Impl, string>();
      for (let k = 0; k < PHASES.length; k++) {
        for (let i = 0; i < nodeImpls.length; i++) {
          const impl = nodeImpls[(i + rep + k) % nodeImpls.length];
          if (failed.has(impl)) continue;
          const outcome = await stepped.get(impl)!.phase<PhaseResult>(PHASES[k], clientTimeout);
          seconds.set(impl, seconds.get(impl)! + outcome.seconds);
          if (outcome.result) reps.get(impl)![PHASES[k]] = outcome.result;
          else failed.set(impl, outcome.error ?? 'failed');
        }
      }
      for (const impl of nodeImpls) {
        const error = failed.get(impl);
        const base = { impl, rep, seconds: seconds.get(impl)! };
        record(error === undefined ? { ...base, ok: true, result: summarize([reps.get(impl)!]) } : { ...base, ok: false, error });
      }
      if (pipeServer) pipeRuns.push(...(await runBytePipe(rep, pipeServer.address, args.quick)));
      if (rep % 2 === 0) await runDask(rep);
    }
  } finally {
    await Promise.all([...stepped.values()].map((client) => client.stop()));
    await Promise.all([...servers.values()].map((server) => server.child.stop()));
    await pipeServer?.child.stop();
  }
  return { runs, pipeRuns, serverErrors };
}

// ---------------------------------------------------------------------------------------
// the connections table (connections.ts)
// ---------------------------------------------------------------------------------------

/**
 * What the connections table runs: tcp with `--connections-n` connects (2,000; 500 with
 * --quick), 2 runs per implementation (1 with --quick); tls with a quarter of them, 1 run
 * (each connect costs a TLS handshake: ~200/s here, whoever makes it); --reps sets both; then
 * 10,000 comms held by one client of each implementation (not with --quick): the connect
 * rate once V8 has compiled the connect path, which the 2,000 connects mostly spend doing.
 * `--connections-10k`: only the 10,000-comm runs.
 */
function connectionsPlan(args: RunArgs): Omit<ConnRunConfig, 'root' | 'python' | 'tls' | 'deadline'> {
  const big = { n: 10_000, impls: ['rxcomm', 'bare', 'dask'] as Impl[] };
  if (!args.connections) return { transports: [], warmUp: 200, big };
  const n = args.connectionsN;
  const transports: Array<{ transport: ConnTransport; n: number; reps: number }> = [
    { transport: 'tcp', n, reps: args.connectionsReps.tcp },
    { transport: 'tls', n: Math.max(1, Math.round(n / 4)), reps: args.connectionsReps.tls },
  ];
  return { transports, warmUp: args.quick ? 100 : 200, big: args.quick && !args.connections10k ? undefined : big };
}

// ---------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  if (args.parser) return (await import('./parser')).runParserBench();
  const startedAt = Date.now();
  const command = commandLine(argv);

  const dask = args.dask ? daskVersion() : { reason: 'disabled with --no-dask' };
  if (!dask.version) console.log(`Dask column n/a: ${dask.reason}`);
  const impls = IMPLS.filter((impl) => impl !== 'dask' || dask.version);
  const transports: Record<string, unknown> = {};
  const tables: string[] = [];
  const report = {
    command,
    started: new Date(startedAt).toISOString(),
    environment: {
      node: process.version,
      dask: dask.version ?? null,
      daskReason: dask.reason,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavgBefore: os.loadavg(),
      loadavgAfter: [] as number[],
      platform: `${os.platform()} ${os.release()}`,
      rxcommCommit: gitCommit(),
      wsMasking: wsNativeMask(),
    },
    options: {
      ...args.options,
      interleavedReps: args.reps,
      transports: args.transports,
      rpc: args.rpc ? args.rpcOptions : false,
      connections: args.connections || args.connections10k ? connectionsPlan(args) : false,
      compression: args.compression ? { formats: args.compressionFormats, ...args.compressionOptions, loopback: args.loopback, linkRates: args.linkRates } : false,
    },
    transports,
    rpc: undefined as unknown,
    connections: undefined as unknown,
    compression: undefined as unknown,
    /** The compression table over each shaped link (--link-rate), by rate. */
    compressionLinks: undefined as Record<string, unknown> | undefined,
    tables,
    finished: '',
    seconds: 0,
  };

  // Time is reserved for the transports rxcomm can run (the others are skipped at once).
  const reserve = (t: Transport) => (missingBackend(t) ? 0 : args.quick ? QUICK_RESERVE_MS : RESERVE_MS[t]);
  const compressionTableReserve = !args.compression
    ? 0
    : args.quick
      ? QUICK_COMPRESSION_RESERVE_MS
      : COMPRESSION_RESERVE_MS + (args.compressionFormats.length - 2) * COMPRESSION_FORMAT_RESERVE_MS;
  // One compression table per link: loopback's, then one per --link-rate (a shaped link's
  // table takes longer: its warm-ups and phases wait on the link; with more reps, longer).
  const linkTableReserve = Math.round(compressionTableReserve * LINK_RESERVE_FACTOR * Math.max(1, args.reps / 3));
  const compressionReserve = (args.loopback ? compressionTableReserve : 0) + args.linkRates.length * linkTableReserve;
  const connReserve = (args.connections ? (args.quick ? QUICK_CONN_RESERVE_MS : CONN_RESERVE_MS) : 0) + (args.connections10k ? CONN_10K_RESERVE_MS : 0) + compressionReserve;
  const rpcReserve = (args.rpc ? (args.quick ? QUICK_RPC_RESERVE_MS : RPC_RESERVE_MS) : 0) + connReserve;
  const budget = Math.max(MIN_BUDGET_MS, args.transports.reduce((sum, t) => sum + reserve(t), 30_000 + rpcReserve));
  let certs: TestCertificates | undefined;
  let madeTls: Awaited<ReturnType<typeof makeTls>> | undefined;
  try {
    for (const [index, transport] of args.transports.entries()) {
      const missing = missingBackend(transport);
      if (missing) {
        console.log(`${transport} row skipped: ${missing}`);
        transports[transport] = { skipped: missing };
        continue;
      }
      let tls: Tls | undefined;
      if (isEncrypted(transport)) {
        // One throwaway CA for tls and wss.
        madeTls ??= await makeTls();
        if (!madeTls.tls) {
          console.log(`${transport} row skipped: ${madeTls.reason}`);
          transports[transport] = { skipped: madeTls.reason };
          continue;
        }
        ({ tls, certs } = madeTls);
      }
      const used = Date.now() - startedAt;
      if (used > budget - 30_000) {
        console.log(`${transport} row skipped: out of time (${Math.round(used / 1000)} s used of ${budget / 1000})`);
        transports[transport] = { skipped: 'out of time' };
        continue;
      }
      // Leave time for the transports still to come.
      const later = args.transports.slice(index + 1).reduce((sum, t) => sum + reserve(t), rpcReserve);
      const deadline = startedAt + budget - later;
      const { runs, pipeRuns, serverErrors } = await runTransport({ transport, impls, tls, args, deadline, budget });
      const { table, ...figures } = reportTransport(transport, runs, args.reps, pipeRuns);
      tables.push(table);
      console.log('\n' + table + '\n');
      transports[transport] = { ...figures, serverErrors, runs, ...(pipeRuns.length > 0 ? { bytePipeRuns: pipeRuns } : {}) };
    }
    if (args.rpc) {
      const used = Date.now() - startedAt;
      if (used > budget - 20_000) {
        console.log(`rpc table skipped: out of time (${Math.round(used / 1000)} s used of ${budget / 1000})`);
        report.rpc = { skipped: 'out of time' };
      } else {
        const { table, ...figures } = await runRpc({
          root: ROOT,
          python: dask.version ? PYTHON : undefined,
          options: args.rpcOptions,
          reps: args.reps,
          deadline: startedAt + budget - connReserve,
          phaseTimeoutS: args.quick ? 60 : 90,
        });
        tables.push(table);
        console.log('\n' + table + '\n');
        report.rpc = figures;
      }
    }
    if (args.connections || args.connections10k) {
      const plan = connectionsPlan(args);
      let tlsFiles: Tls | undefined;
      if (plan.transports.some((t) => t.transport === 'tls')) {
        madeTls ??= await makeTls();
        if (madeTls.tls) ({ tls: tlsFiles, certs } = madeTls);
        else console.log(`connections: the tls table skipped: ${madeTls.reason}`);
      }
      log(`connections: ${plan.transports.map((t) => `${t.transport} n=${t.n}`).join(', ')}${plan.big ? `, then ${plan.big.n} comms (${plan.big.impls.join(', ')})` : ''}`);
      const result = await runConnections({
        ...plan,
        root: ROOT,
        python: dask.version ? PYTHON : undefined,
        tls: tlsFiles,
        // Its own reservation at least, even after a long run.
        deadline: Math.max(startedAt + budget - compressionReserve, Date.now() + connReserve - compressionReserve),
      });
      for (const table of result.tables) {
        tables.push(table);
        console.log('\n' + table + '\n');
      }
      report.connections = result;
    }
    if (args.compression) {
      const links = [...(args.loopback ? ['loopback'] : []), ...args.linkRates];
      const done: { name: string; run: CompressionRun }[] = [];
      for (const [index, rate] of links.entries()) {
        let link: ShapedLink | undefined;
        if (rate !== 'loopback') {
          try {
            link = createShapedLink(rate);
          } catch (err) {
            const reason = `compression table over a ${rate} link skipped: ${(err as Error).message}`;
            console.log(reason);
            (report.compressionLinks ??= {})[rate] = { skipped: reason };
            continue;
          }
          log(`compression: link ${rate}: namespaces ${link.serverNs} (server, ${link.serverAddress}) and ${link.clientNs} (client), ${link.qdisc} on both veth ends`);
        }
        try {
          const later = (links.length - index - 1) * linkTableReserve;
          const reserve = link ? linkTableReserve : compressionTableReserve;
          const { table, ...figures } = await runCompression({
            root: ROOT,
            python: dask.version ? PYTHON : undefined,
            formats: args.compressionFormats,
            options: link ? linkOptions(args.compressionOptions, link) : args.compressionOptions,
            reps: args.reps,
            // Its own reservation at least, even after a long run.
            deadline: Math.max(startedAt + budget - later, Date.now() + reserve),
            phaseTimeoutS: args.quick ? 60 : 90,
            link,
          });
          tables.push(table);
          console.log('\n' + table + '\n');
          done.push({ name: rate === 'loopback' ? 'loopback' : rate, run: { table, ...figures } });
          if (rate === 'loopback') report.compression = figures;
          else (report.compressionLinks ??= {})[rate] = figures;
        } finally {
          link?.destroy();
        }
      }
      if (done.length > 1) {
        const table = reportCompressionLinks(done.map(({ name, run }) => ({ name, checks: run.checks })), args.compressionFormats);
        tables.push(table);
        console.log('\n' + table + '\n');
      }
    }
  } finally {
    await certs?.remove();
  }

  report.finished = new Date().toISOString();
  report.seconds = Math.round((Date.now() - startedAt) / 100) / 10;
  report.environment.loadavgAfter = os.loadavg();
  fs.mkdirSync(path.dirname(RESULTS), { recursive: true });
  fs.writeFileSync(RESULTS, JSON.stringify(report, null, 2) + '\n');
  console.log(`Full results: ${path.relative(ROOT, RESULTS)} (${report.seconds} s), made by: ${command}`);
}

main().then(
  () => process.exit(0),
  (error) => {
    console.error(error instanceof Error ? error.stack : error);
    killAll();
    process.exit(1);
  },
);
