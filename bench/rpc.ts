/**
 * The rpc table of `npm run bench` (run.ts calls runRpc): rxcomm's `serve` ← `rpc` /
 * `ConnectionPool` against Dask's `Server` ← `rpc` / `ConnectionPool`, over tcp on
 * loopback, sequential calls/s and `concurrency`-way concurrent calls/s through a pool.
 *
 * Four processes: rxcomm's server and client (sides/rxcomm_rpc.js), Dask's server and
 * client (sides/dask_side.py rpc-server / rpc-client). Both clients run `--stepped`:
 * connected and warmed up once (the pools' comms opened, V8's JIT warm), then one phase
 * per request, so that run.ts can interleave them phase by phase, who goes first
 * alternating by repetition and phase: the two figures a ratio compares are measured
 * seconds apart.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Child, log, SteppedClient } from './children';
import { reportRpc, RPC_IMPLS, type ClientRun, type RpcImpl, type RpcReport } from './report';
import { RPC_PHASES, rpcOptionFlags, summarizeRpc, type RpcOptions, type RpcPhaseResult, type RpcRep } from './sides/rpc_protocol';

export interface RpcRunConfig {
  /** The repository (the Python side runs from its source there). */
  root: string;
  /** Debian's interpreter, or undefined without the Dask column. */
  python: string | undefined;
  options: RpcOptions;
  reps: number;
  /** Epoch ms by which the table must be done (reps that would overrun are dropped). */
  deadline: number;
  /** A client's deadline per phase, seconds. */
  phaseTimeoutS: number;
}

export interface RpcRun extends RpcReport {
  runs: ClientRun[];
  serverErrors: Record<string, string>;
}

const SERVER_READY_MS = 45_000;
const IMPL_NAME: Record<RpcImpl, string> = { rxcomm: 'rxcomm', dask: 'Dask' };

function childOf(impl: RpcImpl, config: RpcRunConfig, args: string[]): Child {
  if (impl === 'dask') return new Child(config.python!, [path.join(config.root, 'bench', 'sides', 'dask_side.py'), ...args], config.root);
  return new Child(process.execPath, [path.join(__dirname, 'sides', 'rxcomm_rpc.js'), ...args], config.root);
}

/** Clock ticks per second of /proc/PID/stat's CPU times (100 nearly everywhere). */
const CLOCK_TICKS = (() => {
  const ticks = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5000 }).stdout);
  return ticks > 0 ? ticks : 100;
})();

/**
 * A process's CPU time so far (user + system, ms; 10 ms resolution), from /proc: how the
 * servers' CPU per call is measured without asking them. Undefined where there is no /proc.
 */
export function cpuMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS; // utime, stime (fields 14, 15)
  } catch {
    return undefined;
  }
}

interface Server {
  child: Child;
  address: string;
  pid: number | undefined;
}

async function startServer(impl: RpcImpl, config: RpcRunConfig): Promise<Server> {
  const child = childOf(impl, config, [impl === 'dask' ? 'rpc-server' : 'server', '--lifetime', '600']);
  const line = await child.next(SERVER_READY_MS);
  if (line?.ready === true && typeof line.address === 'string') return { child, address: line.address, pid: typeof line.pid === 'number' ? line.pid : undefined };
  await child.stop();
  throw new Error(`${IMPL_NAME[impl]} rpc server did not start: ${(line?.error as string | undefined) ?? child.failure()}`);
}

export async function runRpc(config: RpcRunConfig): Promise<RpcRun> {
  const impls = RPC_IMPLS.filter((impl) => impl !== 'dask' || config.python !== undefined);
  log(`rpc: starting servers (${impls.join(', ')})`);
  const servers = new Map<RpcImpl, Server>();
  const serverErrors: Record<string, string> = {};
  const started = await Promise.allSettled(impls.map((impl) => startServer(impl, config)));
  started.forEach((outcome, i) => {
    if (outcome.status === 'fulfilled') servers.set(impls[i], outcome.value);
    else console.log((serverErrors[impls[i]] = (outcome.reason as Error).message));
  });

  const runs: ClientRun[] = [];
  const clients = new Map<RpcImpl, SteppedClient<RpcImpl>>();
  const lifetimeS = Math.max(60, (config.deadline - Date.now()) / 1000 + 60);
  try {
    // One at a time: each warm-up has the machine to itself.
    for (const [impl, server] of servers) {
      const mode = impl === 'dask' ? 'rpc-client' : 'client';
      const args = [mode, server.address, '--label', impl, ...rpcOptionFlags(config.options), '--timeout', String(Math.round(lifetimeS)), '--stepped'];
      const client = await SteppedClient.start(impl, childOf(impl, config, args));
      if (client.error) {
        console.log(`${IMPL_NAME[impl]} rpc client failed: ${client.error}`);
        runs.push({ impl, rep: 0, ok: false, seconds: 0, error: client.error });
      } else {
        clients.set(impl, client);
        log(`rpc: ${impl} client connected and warmed up`);
      }
    }
    const active = [...clients.keys()];
    const longest = new Map<RpcImpl, number>();
    for (let rep = 0; rep < config.reps; rep++) {
      const expected = active.reduce((sum, impl) => sum + (longest.get(impl) ?? 6), 0) * 1000;
      if (Date.now() + expected > config.deadline) {
        console.log(`rpc: reps ${rep + 1}-${config.reps} skipped, out of time`);
        for (const impl of active) runs.push({ impl, rep, ok: false, seconds: 0, error: 'skipped: out of time' });
        break;
      }
      const results = new Map<RpcImpl, RpcRep>(active.map((impl) => [impl, {}]));
      const seconds = new Map<RpcImpl, number>(active.map((impl) => [impl, 0]));
      const failed = new Map<RpcImpl, string>();
      for (let k = 0; k < RPC_PHASES.length; k++) {
        for (let i = 0; i < active.length; i++) {
          const impl = active[(i + rep + k) % active.length];
          if (failed.has(impl)) continue;
          const serverPid = servers.get(impl)!.pid;
          const serverCpu = cpuMs(serverPid);
          const outcome = await clients.get(impl)!.phase<RpcPhaseResult>(RPC_PHASES[k], config.phaseTimeoutS);
          const serverCpuAfter = cpuMs(serverPid);
          seconds.set(impl, seconds.get(impl)! + outcome.seconds);
          if (outcome.result && serverCpu !== undefined && serverCpuAfter !== undefined) outcome.result.server_cpu_ms = serverCpuAfter - serverCpu;
          if (outcome.result) results.get(impl)![RPC_PHASES[k]] = outcome.result;
          else failed.set(impl, outcome.error ?? 'failed');
        }
      }
      for (const impl of active) {
        const error = failed.get(impl);
        const run: ClientRun = { impl, rep, seconds: seconds.get(impl)!, ok: error === undefined };
        if (error === undefined) run.result = summarizeRpc([results.get(impl)!]);
        else run.error = error;
        longest.set(impl, Math.max(longest.get(impl) ?? 0, run.seconds));
        runs.push(run);
        const r = run.result;
        if (r) log(`rpc rep ${rep + 1} ${impl.padEnd(6)} ${run.seconds.toFixed(1)} s: sequential ${r.rpc_sequential_per_s}/s (median ${r.rpc_sequential_median_us} µs), concurrent ${r.rpc_concurrent_per_s}/s`);
        else console.log(`${IMPL_NAME[impl]} rpc client failed (rep ${rep + 1}): ${error}`);
      }
    }
  } finally {
    await Promise.all([...clients.values()].map((client) => client.stop()));
    await Promise.all([...servers.values()].map((server) => server.child.stop()));
  }
  const { concurrency, poolLimit } = config.options;
  return { ...reportRpc(runs, config.reps, concurrency, poolLimit || concurrency), runs, serverErrors };
}
