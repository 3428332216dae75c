/**
 * `npm run bench`: rxcomm against bare Node and against Dask, side by side in one run.
 *
 *     npm run bench [-- --quick] [-- --transport tcp|tls] [-- --reps N] [-- --no-dask]
 *
 * For each transport (tcp, then tls when rxcomm has a tls backend and certificates can be
 * made), three servers run in child processes of their own (rxcomm-side.js, bare-side.js,
 * Dask's `bench-server`), and each client runs in a child process of its own against its
 * own kind of server. The two Node clients live for the whole row (`--stepped`): one
 * connection, Dask's warm-up once, then phases on request, the sequence Dask's own client
 * runs in one process (a fresh process per repetition would measure V8 before its JIT
 * has warmed up: the first repetition's round trips take ~1.3x as long). Repetitions are
 * interleaved so that noise from other jobs on this shared machine hits all alike: in
 * each rep the rxcomm and bare clients take turns phase by phase (who goes first
 * alternates), so the two figures each ratio compares are measured seconds apart; Dask's
 * client, which cannot be stepped, runs as `bench-client --reps 1` before the Node pair
 * in odd reps and after it in even ones (CPython has no JIT to warm). The table shows
 * medians over the repetitions. Every child is killed by its PID when it overruns or
 * when the run ends. Full results go to bench/results/latest.json.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { benchOptionFlags, DASK_BENCH_DEFAULTS, median, PHASES, summarize, type BenchOptions, type PhaseResult, type Rep, type TlsFiles } from './common';

const ROOT = path.resolve(__dirname, '..', '..');
const PYTHON = '/usr/bin/python3';
const DASK_PEER = path.join(ROOT, 'interop', 'dask_peer.py');
const SIDES = {
  rxcomm: path.join(ROOT, 'dist-scripts', 'bench', 'rxcomm-side.js'),
  bare: path.join(ROOT, 'dist-scripts', 'bench', 'bare-side.js'),
};
const RESULTS = path.join(ROOT, 'bench', 'results', 'latest.json');

type Impl = 'rxcomm' | 'bare' | 'dask';
type Transport = 'tcp' | 'tls';
const IMPLS: Impl[] = ['rxcomm', 'bare', 'dask'];
const IMPL_NAMES: Record<Impl, string> = { rxcomm: 'rxcomm', bare: 'bare Node', dask: 'Dask' };

/** The whole run should end within ~5 minutes; reps that would overrun are dropped. */
const BUDGET_MS = 280_000;
const SERVER_READY_MS = 45_000;

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

interface RunArgs {
  quick: boolean;
  transports: Transport[];
  reps: number;
  dask: boolean;
  options: BenchOptions;
}

function parseArgs(argv: string[]): RunArgs {
  const args: RunArgs = { quick: false, transports: ['tcp', 'tls'], reps: 3, dask: true, options: { ...DASK_BENCH_DEFAULTS } };
  let reps: number | undefined;
  const chosen: Transport[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--quick') args.quick = true;
    else if (arg === '--no-dask') args.dask = false;
    else if (arg === '--transport' || arg.startsWith('--transport=')) {
      const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i];
      for (const t of (value ?? '').split(',')) {
        if (t !== 'tcp' && t !== 'tls') throw new Error(`--transport takes tcp or tls, got ${JSON.stringify(value)}`);
        chosen.push(t);
      }
    } else if (arg === '--reps' || arg.startsWith('--reps=')) {
      reps = Number(arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : argv[++i]);
      if (!(reps >= 1)) throw new Error('--reps takes a positive integer');
    } else if (arg === '--help' || arg === '-h') {
      console.log('usage: npm run bench [-- --quick] [--transport tcp|tls] [--reps N] [--no-dask]');
      process.exit(0);
    } else {
      throw new Error(`unknown argument ${JSON.stringify(arg)} (try --help)`);
    }
  }
  if (chosen.length > 0) args.transports = [...new Set(chosen)];
  if (args.quick) {
    args.reps = 1;
    args.options = { reps: 1, trips: 1000, tripSeconds: 0.5, pipelined: 20_000, pipelinedSeconds: 0.5, bulkTotalMiB: 64, bulkSeconds: 0.5 };
  }
  if (reps !== undefined) args.reps = Math.floor(reps);
  // Each client process runs Dask's warm-up and ONE repetition; run.ts interleaves them.
  args.options.reps = 1;
  return args;
}

// ---------------------------------------------------------------------------------------
// children
// ---------------------------------------------------------------------------------------

const children = new Set<ChildProcess>();

function killAll(): void {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}
process.on('exit', killAll);
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAll();
    process.exit(130);
  });
}

/** Keeps the last few KiB of a stream, for error messages. */
function tail(stream: NodeJS.ReadableStream | null, limit = 4000): () => string {
  let text = '';
  stream?.setEncoding('utf8');
  stream?.on('data', (chunk: string) => {
    text = (text + chunk).slice(-limit);
  });
  return () => text.trim();
}

interface Server {
  impl: Impl;
  child: ChildProcess;
  address: string;
  stderr: () => string;
}

function serverCommand(impl: Impl, transport: Transport, tls: TlsFiles | undefined): [string, string[]] {
  const tlsArgs = transport === 'tls' && tls ? ['--tls', tls.ca, tls.cert, tls.key] : [];
  if (impl === 'dask') return [PYTHON, [DASK_PEER, 'bench-server', ...tlsArgs, '--lifetime', '600']];
  return [process.execPath, [SIDES[impl], 'server', transport, ...tlsArgs, '--lifetime', '600']];
}

function startServer(impl: Impl, transport: Transport, tls: TlsFiles | undefined): Promise<Server> {
  const [command, argv] = serverCommand(impl, transport, tls);
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
  children.add(child);
  const stderr = tail(child.stderr);
  return new Promise((resolve, reject) => {
    let buffered = '';
    const timer = setTimeout(() => {
      stopServer({ impl, child, address: '', stderr });
      reject(new Error(`${IMPL_NAMES[impl]} ${transport} server not ready within ${SERVER_READY_MS / 1000} s: ${stderr().slice(-500)}`));
    }, SERVER_READY_MS);
    const onData = (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      const newline = buffered.indexOf('\n');
      if (newline < 0) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.stdout!.resume();
      try {
        const line = JSON.parse(buffered.slice(0, newline));
        if (!line.ready) throw new Error(line.error ?? JSON.stringify(line));
        resolve({ impl, child, address: line.address, stderr });
      } catch (error) {
        stopServer({ impl, child, address: '', stderr });
        reject(new Error(`${IMPL_NAMES[impl]} ${transport} server failed to start: ${(error as Error).message} ${stderr().slice(-500)}`));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${IMPL_NAMES[impl]} ${transport} server exited (${code ?? signal}) before it was ready: ${stderr().slice(-500)}`));
    });
  });
}

/** Closes the server's stdin (its signal to stop); kills it by PID if it lingers. */
async function stopServer(server: Server): Promise<void> {
  const { child } = server;
  if (child.exitCode !== null || child.signalCode !== null) {
    children.delete(child);
    return;
  }
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.end();
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  children.delete(child);
}

/** A child that prints JSON lines: waits for the next one, with a time limit. */
class JsonLines {
  private buffered = '';
  private readonly lines: Record<string, unknown>[] = [];
  private waiter: ((line: Record<string, unknown> | undefined) => void) | undefined;
  private ended = false;

  constructor(stream: NodeJS.ReadableStream) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buffered += chunk;
      let newline;
      while ((newline = this.buffered.indexOf('\n')) >= 0) {
        const text = this.buffered.slice(0, newline).trim();
        this.buffered = this.buffered.slice(newline + 1);
        if (!text.startsWith('{')) continue;
        try {
          this.push(JSON.parse(text));
        } catch {
          // not ours
        }
      }
    });
    stream.on('end', () => {
      this.ended = true;
      this.waiter?.(undefined);
    });
  }

  private push(line: Record<string, unknown>): void {
    if (this.waiter) this.waiter(line);
    else this.lines.push(line);
  }

  /** The next line, or undefined if the stream ended or `ms` passed. */
  next(ms: number): Promise<Record<string, unknown> | undefined> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (line: Record<string, unknown> | undefined) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(line);
      };
      this.waiter = done;
    });
  }
}

/** A Node client in `--stepped` mode: one connection, warmed up once, one repetition per `rep()`. */
class SteppedClient {
  private readonly lines: JsonLines;
  private readonly stderr: () => string;
  error: string | undefined;

  private constructor(
    readonly impl: Impl,
    private readonly child: ChildProcess,
  ) {
    this.lines = new JsonLines(child.stdout!);
    this.stderr = tail(child.stderr);
  }

  static async start(impl: Impl, transport: Transport, address: string, tls: TlsFiles | undefined, options: BenchOptions, lifetimeS: number): Promise<SteppedClient> {
    const [command, argv] = clientCommand(impl, transport, address, tls, options, lifetimeS);
    const child = spawn(command, [...argv, '--stepped'], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    children.add(child);
    child.once('exit', () => children.delete(child));
    const client = new SteppedClient(impl, child);
    const warm = await client.lines.next(60_000);
    if (warm?.warm !== true) {
      client.error = `warm-up failed: ${(warm?.error as string | undefined) ?? client.failure()}`;
      await client.stop();
    }
    return client;
  }

  private failure(): string {
    const code = this.child.exitCode ?? this.child.signalCode;
    return `${code === null ? 'no answer in time' : `exited with ${code}`}; stderr: ${this.stderr().slice(-400)}`;
  }

  /** Runs one phase; a client that fails or overruns is stopped and not asked again. */
  async phase(phase: string, timeoutS: number): Promise<{ seconds: number; result?: PhaseResult; error?: string }> {
    const started = Date.now();
    const seconds = () => (Date.now() - started) / 1000;
    if (this.error) return { seconds: 0, error: this.error };
    this.child.stdin!.write(`phase ${phase}\n`);
    const line = await this.lines.next(timeoutS * 1000);
    if (line?.ok === true && line.phase === phase && line[this.impl] && typeof line[this.impl] === 'object') {
      return { seconds: seconds(), result: line[this.impl] as PhaseResult };
    }
    this.error = `${phase}: ${(line?.error as string | undefined) ?? this.failure()}`;
    await this.stop();
    return { seconds: seconds(), error: this.error };
  }

  /** Closes its stdin (it then closes its comm and exits); kills it by PID if it lingers. */
  async stop(): Promise<void> {
    const { child } = this;
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin!.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

interface ClientRun {
  impl: Impl;
  rep: number;
  ok: boolean;
  seconds: number;
  result?: Record<string, unknown>;
  error?: string;
}

function clientCommand(impl: Impl, transport: Transport, address: string, tls: TlsFiles | undefined, options: BenchOptions, timeoutS: number): [string, string[]] {
  const tlsArgs = transport === 'tls' && tls ? ['--tls', tls.ca, tls.cert, tls.key] : [];
  const common = [...tlsArgs, '--label', impl, ...benchOptionFlags(options), '--timeout', String(timeoutS)];
  if (impl === 'dask') return [PYTHON, [DASK_PEER, 'bench-client', address, ...common]];
  return [process.execPath, [SIDES[impl], 'client', address, transport, ...common]];
}

function runClient(impl: Impl, rep: number, transport: Transport, address: string, tls: TlsFiles | undefined, options: BenchOptions, timeoutS: number): Promise<ClientRun> {
  const [command, argv] = clientCommand(impl, transport, address, tls, options, timeoutS);
  const started = Date.now();
  const child = spawn(command, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  const stdout = tail(child.stdout, 1 << 20);
  const stderr = tail(child.stderr);
  // The child has its own deadline; this one is for a child that ignores it.
  const killer = setTimeout(() => child.kill('SIGKILL'), (timeoutS + 10) * 1000);
  return new Promise((resolve) => {
    child.once('close', (code, signal) => {
      clearTimeout(killer);
      children.delete(child);
      const seconds = (Date.now() - started) / 1000;
      const lines = stdout().split('\n').filter((line) => line.startsWith('{'));
      let parsed: Record<string, unknown> | undefined;
      try {
        parsed = lines.length > 0 ? JSON.parse(lines[lines.length - 1]) : undefined;
      } catch {
        parsed = undefined;
      }
      if (parsed?.ok === true && parsed[impl] && typeof parsed[impl] === 'object') {
        resolve({ impl, rep, ok: true, seconds, result: parsed[impl] as Record<string, unknown> });
      } else {
        const error = (parsed?.error as string | undefined) ?? `exited with ${code ?? signal}; stderr: ${stderr().slice(-400)}`;
        resolve({ impl, rep, ok: false, seconds, error });
      }
    });
  });
}

// ---------------------------------------------------------------------------------------
// environment checks
// ---------------------------------------------------------------------------------------

function daskVersion(): { version?: string; reason?: string } {
  const probe = spawnSync(PYTHON, ['-c', 'import distributed; print(distributed.__version__)'], { timeout: 60_000, encoding: 'utf8' });
  if (probe.error) return { reason: `${PYTHON} cannot run: ${probe.error.message}` };
  if (probe.status !== 0) return { reason: `${PYTHON} cannot import distributed (${(probe.stderr ?? '').trim().split('\n').pop()})` };
  return { version: probe.stdout.trim() };
}

function rxcommTls(): { ok: boolean; reason?: string } {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const rxcomm = require('rxcomm') as typeof import('rxcomm');
    rxcomm.getBackend('tls');
    return { ok: true };
  } catch (error) {
    return { ok: false, reason: `rxcomm has no tls backend (${(error as Error).message})` };
  }
}

/** A throwaway CA and cert/key: dask_peer.py gen-certs, else the openssl CLI the same way. */
const tempDirs: string[] = [];
process.on('exit', () => {
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

function makeCerts(): { files?: TlsFiles; reason?: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-bench-certs-'));
  tempDirs.push(dir);
  const viaDask = spawnSync(PYTHON, [DASK_PEER, 'gen-certs', dir], { timeout: 60_000, encoding: 'utf8' });
  if (viaDask.status === 0) {
    try {
      const line = JSON.parse(viaDask.stdout.trim().split('\n').pop()!);
      if (line.ok) return { files: { ca: line.ca, cert: line.cert, key: line.key } };
    } catch {
      // fall through to openssl
    }
  }
  const ca = path.join(dir, 'ca.pem');
  const caKey = path.join(dir, 'ca-key.pem');
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const csr = path.join(dir, 'cert.csr');
  const ext = path.join(dir, 'ext.cnf');
  fs.writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\nbasicConstraints=CA:FALSE\n');
  const steps: string[][] = [
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', caKey, '-out', ca, '-days', '2', '-subj', '/CN=rxcomm-bench-ca'],
    ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', csr, '-subj', '/CN=localhost'],
    ['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-out', cert, '-days', '2', '-extfile', ext],
  ];
  for (const step of steps) {
    const run = spawnSync('openssl', step, { timeout: 60_000, encoding: 'utf8' });
    if (run.status !== 0) return { reason: `cannot make certificates (openssl ${step[0]}: ${run.error?.message ?? run.stderr.trim().split('\n').pop()})` };
  }
  return { files: { ca, cert, key } };
}

// ---------------------------------------------------------------------------------------
// the table
// ---------------------------------------------------------------------------------------

interface Metric {
  key: string;
  label: string;
  unit: 'us' | 'rate' | 'MiBps';
  lowerIsBetter?: boolean;
  /** [min rxcomm/bare, min rxcomm/Dask] as ratios of the figures (for latency: max). */
  target?: (transport: Transport) => { bare: number; dask: number; text: string; strictDask?: boolean };
}

const METRICS: Metric[] = [
  {
    key: 'roundtrip_median_us',
    label: 'round trip median (µs)',
    unit: 'us',
    lowerIsBetter: true,
    target: () => ({ bare: 1.15, dask: 0.5, text: '≤1.15× bare, ≤0.5× Dask' }),
  },
  {
    key: 'roundtrip_per_s',
    label: 'round trips/s',
    unit: 'rate',
    target: () => ({ bare: 1 / 1.15, dask: 2, text: '≥0.87× bare, ≥2× Dask' }),
  },
  {
    key: 'pipelined_per_s',
    label: 'pipelined msgs/s',
    unit: 'rate',
    target: (t) => ({ bare: 0.7, dask: t === 'tls' ? 10 : 20, text: `≥0.7× bare, ≥${t === 'tls' ? 10 : 20}× Dask` }),
  },
  {
    key: 'bulk_16MiB_MiBps',
    label: 'bulk 16 MiB (MiB/s)',
    unit: 'MiBps',
    target: (t) => ({ bare: t === 'tls' ? 0.85 : 0.9, dask: 1, strictDask: true, text: `≥${t === 'tls' ? 0.85 : 0.9}× bare, >Dask` }),
  },
  {
    key: 'bulk_1MiB_MiBps',
    label: 'bulk 1 MiB (MiB/s)',
    unit: 'MiBps',
    target: (t) => ({ bare: t === 'tls' ? 0.85 : 0.9, dask: 1, strictDask: true, text: `≥${t === 'tls' ? 0.85 : 0.9}× bare, >Dask` }),
  },
  { key: 'bulk_16MiB_acked_MiBps', label: 'bulk 16 MiB acked (MiB/s)', unit: 'MiBps' },
  { key: 'bulk_1MiB_acked_MiBps', label: 'bulk 1 MiB acked (MiB/s)', unit: 'MiBps' },
];

function format(value: number | undefined, unit: Metric['unit']): string {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  if (unit === 'us') return value.toFixed(1);
  return Math.round(value).toLocaleString('en-US');
}

function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a !== undefined && b !== undefined && b > 0 ? a / b : undefined;
}

interface Check {
  metric: string;
  rxcomm?: number;
  bare?: number;
  dask?: number;
  vsBare?: number;
  vsDask?: number;
  target?: string;
  passBare?: boolean;
  passDask?: boolean;
  pass?: boolean;
}

function check(metric: Metric, transport: Transport, medians: Partial<Record<Impl, Record<string, number>>>): Check {
  const value = (impl: Impl) => medians[impl]?.[metric.key];
  const out: Check = {
    metric: metric.key,
    rxcomm: value('rxcomm'),
    bare: value('bare'),
    dask: value('dask'),
    vsBare: ratio(value('rxcomm'), value('bare')),
    vsDask: ratio(value('rxcomm'), value('dask')),
  };
  if (!metric.target) return out;
  const target = metric.target(transport);
  out.target = target.text;
  const meets = (r: number | undefined, limit: number, strict = false) =>
    r === undefined ? undefined : metric.lowerIsBetter ? r <= limit : strict ? r > limit : r >= limit;
  out.passBare = meets(out.vsBare, target.bare);
  out.passDask = meets(out.vsDask, target.dask, target.strictDask);
  out.pass = out.passBare !== false && out.passDask !== false && out.passBare !== undefined;
  return out;
}

function verdict(c: Check): string {
  if (c.target === undefined) return '(no target)';
  if (c.passBare === undefined) return 'n/a';
  const failed = [c.passBare === false ? 'bare' : '', c.passDask === false ? 'Dask' : ''].filter(Boolean);
  const daskNote = c.passDask === undefined ? ' (Dask n/a)' : '';
  return failed.length === 0 ? `pass${daskNote}` : `FAIL (${failed.join(', ')})${daskNote}`;
}

function renderTable(transport: Transport, checks: Check[], reps: Record<Impl, number>): string {
  const header = ['metric', 'rxcomm', 'bare Node', 'Dask', 'rxcomm/bare', 'rxcomm/Dask', 'target', 'result'];
  const rows = checks.map((c) => {
    const metric = METRICS.find((m) => m.key === c.metric)!;
    const r = (x: number | undefined) => (x === undefined ? 'n/a' : `${x.toFixed(x >= 100 ? 0 : 2)}×`);
    return [metric.label, format(c.rxcomm, metric.unit), format(c.bare, metric.unit), format(c.dask, metric.unit), r(c.vsBare), r(c.vsDask), c.target ?? '', verdict(c)];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => '| ' + cells.map((cell, i) => (i === 0 || i >= 6 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join(' | ') + ' |';
  const title = `${transport}: medians of ${reps.rxcomm}/${reps.bare}/${reps.dask} interleaved reps (rxcomm/bare/Dask); latency ratios < 1 and other ratios > 1 favour rxcomm`;
  return [title, line(header), '|' + widths.map((w, i) => (i === 0 || i >= 6 ? ':' + '-'.repeat(w + 1) : '-'.repeat(w + 1) + ':')).join('|') + '|', ...rows.map(line)].join('\n');
}

// ---------------------------------------------------------------------------------------
// the run
// ---------------------------------------------------------------------------------------

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
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

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const args = parseArgs(argv);
  const startedAt = Date.now();
  const elapsed = () => Date.now() - startedAt;
  const command = commandLine(argv);

  const dask = args.dask ? daskVersion() : { reason: 'disabled with --no-dask' };
  if (!dask.version) console.log(`Dask column n/a: ${dask.reason}`);
  const impls = IMPLS.filter((impl) => impl !== 'dask' || dask.version);

  const report: Record<string, unknown> = {
    command,
    started: new Date(startedAt).toISOString(),
    environment: {
      node: process.version,
      dask: dask.version ?? null,
      daskReason: dask.reason,
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      loadavgBefore: os.loadavg(),
      platform: `${os.platform()} ${os.release()}`,
      rxcommCommit: gitCommit(),
    },
    options: { ...args.options, interleavedReps: args.reps, transports: args.transports },
    transports: {} as Record<string, unknown>,
  };
  const transportsOut = report.transports as Record<string, unknown>;
  const tables: string[] = [];

  let tls: TlsFiles | undefined;
  for (const transport of args.transports) {
    if (transport === 'tls') {
      const backend = rxcommTls();
      if (!backend.ok) {
        const line = `tls row skipped: ${backend.reason}`;
        console.log(line);
        transportsOut.tls = { skipped: line };
        continue;
      }
      const certs = makeCerts();
      if (!certs.files) {
        const line = `tls row skipped: ${certs.reason}`;
        console.log(line);
        transportsOut.tls = { skipped: line };
        continue;
      }
      tls = certs.files;
    }
    if (elapsed() > BUDGET_MS - 30_000) {
      const line = `${transport} row skipped: out of time (${Math.round(elapsed() / 1000)} s used of ${BUDGET_MS / 1000})`;
      console.log(line);
      transportsOut[transport] = { skipped: line };
      continue;
    }

    log(`${transport}: starting servers (${impls.join(', ')})`);
    const servers = new Map<Impl, Server>();
    const serverErrors: Record<string, string> = {};
    const started = await Promise.allSettled(impls.map((impl) => startServer(impl, transport, tls)));
    started.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') servers.set(impls[i], outcome.value);
      else serverErrors[impls[i]] = (outcome.reason as Error).message;
    });
    for (const [impl, error] of Object.entries(serverErrors)) console.log(`${IMPL_NAMES[impl as Impl]} ${transport} server failed: ${error}`);

    const runs: ClientRun[] = [];
    const longest: Partial<Record<Impl, number>> = {};
    const clientTimeout = args.quick ? 60 : 90;
    let active = impls.filter((impl) => servers.has(impl));
    const stepped = new Map<Impl, SteppedClient>();
    // Leave time for the transports still to come.
    const remainingTransports = args.transports.length - args.transports.indexOf(transport);
    const transportBudget = startedAt + BUDGET_MS - (remainingTransports - 1) * (args.quick ? 25_000 : 70_000);
    try {
      for (const impl of active) {
        if (impl === 'dask') continue;
        const client = await SteppedClient.start(impl, transport, servers.get(impl)!.address, tls, args.options, BUDGET_MS / 1000 + 60);
        stepped.set(impl, client);
        if (client.error) {
          console.log(`${IMPL_NAMES[impl]} ${transport} client failed: ${client.error}`);
          runs.push({ impl, rep: 0, ok: false, seconds: 0, error: client.error });
        } else {
          log(`${transport}: ${impl} client connected and warmed up`);
        }
      }
      active = active.filter((impl) => !stepped.get(impl)?.error);
      const record = (run: ClientRun) => {
        longest[run.impl] = Math.max(longest[run.impl] ?? 0, run.seconds);
        runs.push(run);
        if (run.ok) {
          const r = run.result!;
          log(
            `${transport} rep ${run.rep + 1} ${run.impl.padEnd(6)} ${run.seconds.toFixed(1)} s: rtt ${r.roundtrip_median_us} µs, ` +
              `${r.roundtrip_per_s}/s, pipelined ${r.pipelined_per_s}/s, 16 MiB ${r.bulk_16MiB_MiBps}, 1 MiB ${r.bulk_1MiB_MiBps} MiB/s`,
          );
        } else {
          log(`${transport} rep ${run.rep + 1} ${run.impl}: FAILED: ${run.error}`);
          console.log(`${IMPL_NAMES[run.impl]} ${transport} client failed (rep ${run.rep + 1}): ${run.error}`);
        }
      };
      const runDask = async (rep: number) => {
        if (!active.includes('dask')) return;
        record(await runClient('dask', rep, transport, servers.get('dask')!.address, tls, args.options, clientTimeout));
      };
      for (let rep = 0; rep < args.reps; rep++) {
        const expected = active.reduce((sum, impl) => sum + (longest[impl] ?? (impl === 'dask' ? 25 : 6)), 0) * 1000;
        if (Date.now() + expected > transportBudget) {
          const line = `${transport}: reps ${rep + 1}-${args.reps} skipped, out of time (${Math.round(elapsed() / 1000)} s used)`;
          console.log(line);
          for (const impl of active) runs.push({ impl, rep, ok: false, seconds: 0, error: 'skipped: out of time' });
          break;
        }
        // Dask before the Node pair in odd reps, after it in even ones.
        if (rep % 2 === 1) await runDask(rep);
        // The Node pair phase by phase, alternating who goes first, so that the two
        // figures a ratio compares are measured seconds apart.
        const nodeImpls = active.filter((impl) => impl !== 'dask' && !stepped.get(impl)!.error);
        const reps = new Map<Impl, Rep>(nodeImpls.map((impl) => [impl, {}]));
        const seconds = new Map<Impl, number>(nodeImpls.map((impl) => [impl, 0]));
        const failed = new Map<Impl, string>();
        for (let k = 0; k < PHASES.length; k++) {
          const phase = PHASES[k];
          const order = nodeImpls.map((_, i) => nodeImpls[(i + rep + k) % nodeImpls.length]);
          for (const impl of order) {
            if (failed.has(impl)) continue;
            const outcome = await stepped.get(impl)!.phase(phase, clientTimeout);
            seconds.set(impl, seconds.get(impl)! + outcome.seconds);
            if (outcome.result) reps.get(impl)![phase] = outcome.result;
            else failed.set(impl, outcome.error ?? 'failed');
          }
        }
        for (const impl of nodeImpls) {
          const error = failed.get(impl);
          record(
            error === undefined
              ? { impl, rep, ok: true, seconds: seconds.get(impl)!, result: summarize([reps.get(impl)!]) }
              : { impl, rep, ok: false, seconds: seconds.get(impl)!, error },
          );
        }
        if (rep % 2 === 0) await runDask(rep);
      }
    } finally {
      await Promise.all([...stepped.values()].map((client) => client.stop()));
      await Promise.all([...servers.values()].map(stopServer));
    }

    const medians: Partial<Record<Impl, Record<string, number>>> = {};
    const repCounts = { rxcomm: 0, bare: 0, dask: 0 } as Record<Impl, number>;
    for (const impl of IMPLS) {
      const ok = runs.filter((run) => run.impl === impl && run.ok);
      repCounts[impl] = ok.length;
      if (ok.length === 0) continue;
      medians[impl] = {};
      for (const metric of METRICS) medians[impl]![metric.key] = median(ok.map((run) => run.result![metric.key] as number));
    }
    const checks = METRICS.map((metric) => check(metric, transport, medians));
    // rxcomm/bare per repetition: the two were measured seconds apart, so the spread of
    // these says how far the machine's noise moves a ratio.
    const paired: Record<string, number[]> = {};
    for (let rep = 0; rep < args.reps; rep++) {
      const of = (impl: Impl) => runs.find((run) => run.impl === impl && run.rep === rep && run.ok)?.result;
      const [rx, bare] = [of('rxcomm'), of('bare')];
      if (!rx || !bare) continue;
      for (const metric of METRICS) {
        const r = ratio(rx[metric.key] as number, bare[metric.key] as number);
        if (r !== undefined) (paired[metric.key] ??= []).push(Math.round(r * 100) / 100);
      }
    }
    let table = renderTable(transport, checks, repCounts);
    if (Object.keys(paired).length > 0 && args.reps > 1) {
      const spread = (key: string) => {
        const values = paired[key] ?? [];
        return values.length ? `${Math.min(...values).toFixed(2)}–${Math.max(...values).toFixed(2)}` : 'n/a';
      };
      table +=
        `\nrxcomm/bare within each rep (min–max): round trip ${spread('roundtrip_median_us')}, ` +
        `round trips/s ${spread('roundtrip_per_s')}, pipelined ${spread('pipelined_per_s')}, ` +
        `16 MiB ${spread('bulk_16MiB_MiBps')}, 1 MiB ${spread('bulk_1MiB_MiBps')}`;
    }
    tables.push(table);
    console.log('\n' + table + '\n');
    transportsOut[transport] = {
      medians,
      checks,
      pairedRxcommOverBare: paired,
      serverErrors,
      runs: runs.map((run) => ({ ...run, result: run.result })),
    };
  }

  report.finished = new Date().toISOString();
  report.seconds = Math.round(elapsed() / 100) / 10;
  (report.environment as Record<string, unknown>).loadavgAfter = os.loadavg();
  report.tables = tables;
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
