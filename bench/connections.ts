/**
 * The connections table of `npm run bench` (run.ts calls runConnections): how fast each
 * side opens comms, handshake included, and what each open comm costs in memory, on the
 * client and on the server; then whether rxcomm holds 10,000 open comms in one process.
 *
 * Per implementation and repetition, two fresh processes: a server (`conn-server`) and a
 * client (`conn-client`) of the same implementation, rxcomm (sides/rxcomm_conns.js),
 * bare Node (sides/bare_conns.js) or Dask (sides/dask_side.py). The Node sides run under
 * `node --expose-gc`. The steps (bench/README.md, "The connections table"):
 *
 *   1. the client warms up (`--warm-up` connects, each closed), measures its memory, says so
 *   2. the server measures its memory once none of those comms is open (`mem 0`)
 *   3. the client connects n/2 times, one after the other, each with the handshake, holds
 *      them all, and measures its memory; so does the server (`mem N/2`)
 *   4. the client connects n/2 more times, and measures its memory; so does the server
 *      (`mem N`); connects/s is n / the time spent connecting
 *   5. both stop (the client's comms go with its process)
 *
 * Memory per comm is (at n − at n/2) / (n/2), per process: the slope over the second
 * half, once V8's young generation (which grows with the allocation rate over the first
 * thousand connects, and counts in RSS) has grown (conn_protocol.ts). Implementations take turns per
 * repetition, who goes first alternating, so the figures a ratio compares are measured
 * seconds apart.
 */
import * as path from 'node:path';
import { Child, log } from './children';
import { reportConnections, type ConnImpl, type ConnRun, type ConnReport, type ConnTransport } from './report';
import { cpuMs } from './rpc';
import type { TlsFiles } from './sides/protocol';

export interface ConnRunConfig {
  /** The repository (the Python side runs from its source there). */
  root: string;
  /** Debian's interpreter, or undefined without the Dask column. */
  python: string | undefined;
  /**
   * The transports of the table, the connects per run and the runs per implementation of
   * each (tls opens fewer, fewer times: each connect costs a TLS handshake).
   */
  transports: Array<{ transport: ConnTransport; n: number; reps: number }>;
  warmUp: number;
  /** The 10,000-comm row: how many, and which implementations (none: no row). */
  big: { n: number; impls: ConnImpl[] } | undefined;
  tls: { server: TlsFiles; client: TlsFiles } | undefined;
  /** Epoch ms by which the table must be done (runs that would overrun are dropped). */
  deadline: number;
}

export interface ConnectionsRun {
  tables: string[];
  transports: Record<string, ConnReport & { runs: ConnRun[] }>;
  big?: { runs: ConnRun[]; table: string };
}

const SERVER_READY_MS = 45_000;
const CONN_IMPLS: ConnImpl[] = ['rxcomm', 'bare', 'dask'];

function childOf(impl: ConnImpl, config: ConnRunConfig, args: string[]): Child {
  if (impl === 'dask') return new Child(config.python!, [path.join(config.root, 'bench', 'sides', 'dask_side.py'), ...args], config.root);
  return new Child(process.execPath, ['--expose-gc', path.join(__dirname, 'sides', `${impl}_conns.js`), ...args], config.root);
}

const tlsArgs = (files: TlsFiles | undefined) => (files ? ['--tls', files.ca, files.cert, files.key] : []);

interface Mem {
  rss: number;
  live?: number;
  heap_external?: number;
  [key: string]: unknown;
}

/** One run: a fresh server and client of `impl`, `n` connects held open. */
async function runOnce(impl: ConnImpl, transport: ConnTransport, n: number, rep: number, config: ConnRunConfig): Promise<ConnRun> {
  const started = Date.now();
  const base = { impl, transport, rep, n };
  const tls = transport === 'tls' ? config.tls : undefined;
  const server = childOf(impl, config, [
    'conn-server',
    ...(impl === 'dask' ? ['--transport', transport] : [transport]),
    ...tlsArgs(tls?.server),
    '--lifetime',
    '900',
  ]);
  let client: Child | undefined;
  const failed = (error: string): ConnRun => ({ ...base, ok: false, seconds: (Date.now() - started) / 1000, error });
  try {
    const ready = await server.next(SERVER_READY_MS);
    if (ready?.ready !== true || typeof ready.address !== 'string') return failed(`server did not start: ${(ready?.error as string | undefined) ?? server.failure()}`);
    const serverPid = typeof ready.pid === 'number' ? ready.pid : undefined;
    // Generous: Dask's tls connects run at a few hundred per second.
    const runTimeoutS = 60 + n / 50;
    client = childOf(impl, config, [
      'conn-client',
      ready.address,
      '--n',
      String(n),
      '--warm-up',
      String(config.warmUp),
      ...tlsArgs(tls?.client),
      '--label',
      impl,
      '--timeout',
      String(Math.round(runTimeoutS + 120)),
    ]);
    const warm = await client.next(60_000 + config.warmUp * 100);
    if (warm?.warm !== true) return failed(`client warm-up failed: ${(warm?.error as string | undefined) ?? client.failure()}`);
    server.send('mem 0 30');
    const serverBefore = await server.next(40_000);
    if (serverBefore?.ok !== true) return failed(`server memory: ${(serverBefore?.error as string | undefined) ?? server.failure()}`);
    let serverCpuMs = 0;
    let serverCpu = cpuMs(serverPid);
    const addServerCpu = () => {
      const now = cpuMs(serverPid);
      if (serverCpu !== undefined && now !== undefined) serverCpuMs += now - serverCpu;
      else serverCpuMs = NaN;
    };
    client.send('run');
    let line = await client.next(runTimeoutS * 1000);
    // Half-way: the server's memory with n/2 comms open, then the other half.
    let serverMid: typeof serverBefore | undefined;
    if (line?.half === true) {
      addServerCpu();
      server.send(`mem ${line.connected as number} 60`);
      serverMid = await server.next(70_000);
      if (serverMid?.ok !== true) return failed(`server memory: ${(serverMid?.error as string | undefined) ?? server.failure()}`);
      serverCpu = cpuMs(serverPid);
      client.send('continue');
      line = await client.next(runTimeoutS * 1000);
    }
    addServerCpu();
    const result = line?.[impl] as Record<string, unknown> | undefined;
    if (line?.ok !== true || !result) return failed(`client: ${(line?.error as string | undefined) ?? client.failure()}`);
    server.send(`mem ${n} 60`);
    const serverAfter = await server.next(70_000);
    if (serverAfter?.ok !== true) return failed(`server memory: ${(serverAfter?.error as string | undefined) ?? server.failure()}`);
    // The slope over the second half, as the client's (conn_protocol.ts).
    const before = (serverMid ?? serverBefore).mem as Mem;
    const after = serverAfter.mem as Mem;
    const count = n - ((serverMid?.open as number | undefined) ?? 0);
    const kib = (key: 'rss' | 'live' | 'heap_external') =>
      typeof before[key] === 'number' && typeof after[key] === 'number' ? Math.round((((after[key] as number) - (before[key] as number)) / 1024 / count) * 100) / 100 : undefined;
    const clientPerComm = result.per_comm as Record<string, number>;
    const connected = result.connected as number;
    const serverOpen = serverAfter.open as number;
    const run: ConnRun = {
      ...base,
      ok: true,
      seconds: (Date.now() - started) / 1000,
      connectsPerS: result.connects_per_s as number,
      clientOpen: result.open as number,
      serverOpen,
      client: { liveKiB: clientPerComm.live_kib, rssKiB: clientPerComm.rss_kib, heapExternalKiB: clientPerComm.heap_external_kib },
      server: { liveKiB: kib('live'), rssKiB: kib('rss'), heapExternalKiB: kib('heap_external') },
      clientCpuUsPerConnect: (((result.cpu_user_ms as number) + (result.cpu_system_ms as number)) * 1000) / Math.max(1, connected),
      serverCpuUsPerConnect: Number.isFinite(serverCpuMs) ? (serverCpuMs * 1000) / Math.max(1, connected) : undefined,
      raw: { client: result, warm, serverBefore, serverMid, serverAfter },
    };
    if (run.clientOpen !== n || serverOpen !== n) {
      run.ok = false;
      run.error = `${run.clientOpen} of ${n} comms open on the client, ${serverOpen} on the server`;
    }
    return run;
  } finally {
    await client?.stop();
    await server.stop();
  }
}

function describe(run: ConnRun): string {
  if (!run.ok) return `FAILED: ${run.error}`;
  const f = (x: number | undefined) => (x === undefined ? 'n/a' : x.toFixed(1));
  return (
    `${Math.round(run.connectsPerS!)} connects/s; KiB/comm live/RSS/heap+ext client ${f(run.client!.liveKiB)}/${f(run.client!.rssKiB)}/${f(run.client!.heapExternalKiB)}, ` +
    `server ${f(run.server!.liveKiB)}/${f(run.server!.rssKiB)}/${f(run.server!.heapExternalKiB)} (${run.seconds.toFixed(1)} s)`
  );
}

export async function runConnections(config: ConnRunConfig): Promise<ConnectionsRun> {
  const impls = CONN_IMPLS.filter((impl) => impl !== 'dask' || config.python !== undefined);
  const out: ConnectionsRun = { tables: [], transports: {} };
  const longest = new Map<string, number>();
  const expectedS = (impl: ConnImpl, transport: ConnTransport) => longest.get(`${impl} ${transport}`) ?? (impl === 'dask' ? 12 : 6);

  for (const { transport, n, reps } of config.transports) {
    if (transport === 'tls' && !config.tls) {
      out.tables.push(`connections (tls): skipped, no certificates`);
      continue;
    }
    const runs: ConnRun[] = [];
    for (let rep = 0; rep < reps; rep++) {
      const expected = impls.reduce((sum, impl) => sum + expectedS(impl, transport), 0) * 1000;
      // Always one rep; later ones only while there is time.
      if (rep > 0 && Date.now() + expected > config.deadline) {
        console.log(`connections ${transport}: reps ${rep + 1}-${reps} skipped, out of time`);
        break;
      }
      for (let i = 0; i < impls.length; i++) {
        const impl = impls[(i + rep) % impls.length];
        const run = await runOnce(impl, transport, n, rep, config);
        longest.set(`${impl} ${transport}`, Math.max(expectedS(impl, transport), run.seconds));
        runs.push(run);
        log(`connections ${transport} rep ${rep + 1} ${impl.padEnd(6)} n=${n}: ${describe(run)}`);
      }
    }
    const report = reportConnections(transport, n, runs, reps);
    out.tables.push(report.table);
    out.transports[transport] = { ...report, runs };
  }

  if (config.big) {
    const { n, impls: bigImpls } = config.big;
    const runs: ConnRun[] = [];
    for (const impl of bigImpls.filter((impl) => impls.includes(impl))) {
      // The 10,000 connects take ~10-15 s here for rxcomm.
      const expected = (n / 2000) * expectedS(impl, 'tcp') * 1000;
      if (Date.now() + expected > config.deadline) {
        console.log(`connections: the ${n.toLocaleString('en-US')}-comm run of ${impl} skipped, out of time`);
        runs.push({ impl, transport: 'tcp', rep: 0, n, ok: false, seconds: 0, error: 'skipped: out of time' });
        continue;
      }
      const run = await runOnce(impl, 'tcp', n, 0, config);
      runs.push(run);
      log(`connections tcp ${impl.padEnd(6)} n=${n}: ${describe(run)}`);
    }
    const table = reportConnections('tcp', n, runs, 1, true).table;
    out.tables.push(table);
    out.big = { runs, table };
  }
  return out;
}
