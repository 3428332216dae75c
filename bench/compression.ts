/**
 * The compression table of `npm run bench` (run.ts calls runCompression): 16 MiB payloads
 * sent one way as out-of-band Dask payload frames (rxcomm's `toSerialize`, Dask's
 * `to_serialize`), with compression off and on (lz4; zstd, snappy and zlib on request),
 * compressible and incompressible, rxcomm against Dask, over tcp on loopback, or (`link`,
 * run.ts's `--link-rate`) over a veth link shaped to a rate (netns.ts): each server in one
 * network namespace, each client in the other.
 *
 * Four processes: rxcomm's server and client (sides/rxcomm_compression.js), Dask's server
 * and client (sides/dask_side.py compress-server / compress-client). Each server listens
 * once per compression setting, each listener advertising it; each client holds one comm
 * per setting. The payloads are made here once (compression_protocol.ts `makePayload`,
 * seeded) and written to a temporary folder that both clients read, so both send the same
 * bytes. Both clients run `--stepped` and take turns phase by phase, who goes first
 * alternating by repetition and phase (as rpc.ts); a kind's settings run back to back, off
 * first in even reps and last in odd ones. The receivers' CPU time per phase is read from
 * /proc.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Child, log, SteppedClient } from './children';
import { rateLabel, type ShapedLink } from './netns';
import { cpuMs } from './rpc';
import { COMPRESSION_IMPLS, reportCompression, type CompressionImpl, type CompressionPhaseRun, type CompressionReport } from './report';
import { compressionOptionFlags, KINDS, makePayload, payloadFile, phaseName, type CompressionOptions, type CompressionResult, type Format, type Kind } from './sides/compression_protocol';

export interface CompressionRunConfig {
  root: string;
  /** Debian's interpreter, or undefined without the Dask column. */
  python: string | undefined;
  formats: Format[];
  kinds?: Kind[];
  options: CompressionOptions;
  reps: number;
  /** Epoch ms by which the table must be done (reps that would overrun are dropped). */
  deadline: number;
  phaseTimeoutS: number;
  /** Servers and clients on either side of this shaped link; loopback without. */
  link?: ShapedLink;
}

export interface CompressionRun extends CompressionReport {
  runs: CompressionPhaseRun[];
  /** compressed / original per `${kind}_${format}`, by Dask's compressors. */
  ratios: Record<string, number>;
  errors: Record<string, string>;
  payloads: Record<string, string>;
  /** `loopback`, or the shaped link's rate and qdisc. */
  link: string;
}

const SERVER_READY_MS = 45_000;
const NAME: Record<CompressionImpl, string> = { rxcomm: 'rxcomm', dask: 'Dask' };

export const PAYLOAD_DESCRIPTIONS: Record<Kind, string> = {
  sparse: 'float64 column, 95% zeros, the rest uniform in [0, 1)',
  categorical: 'float64 column of 16 distinct prices drawn at random',
  random: 'random bytes (incompressible)',
};

function childOf(impl: CompressionImpl, config: CompressionRunConfig, args: string[], role: 'server' | 'client'): Child {
  const [command, argv]: [string, string[]] =
    impl === 'dask'
      ? [config.python!, [path.join(config.root, 'bench', 'sides', 'dask_side.py'), ...args]]
      : [process.execPath, [path.join(__dirname, 'sides', 'rxcomm_compression.js'), ...args]];
  const { link } = config;
  if (!link) return new Child(command, argv, config.root);
  return new Child(...link.wrap(role === 'server' ? link.serverNs : link.clientNs, command, argv), config.root);
}

/** How the table names the link: `loopback`, or `veth shaped to 1 Gbit/s (tbf ...)`. */
export function linkName(link: ShapedLink | undefined): string {
  return link ? `a veth link shaped to ${rateLabel(link.bitsPerSecond)} each way (${link.qdisc})` : 'loopback';
}

interface Server {
  child: Child;
  addresses: Record<string, string>;
  pid: number | undefined;
}

async function startServer(impl: CompressionImpl, config: CompressionRunConfig): Promise<Server> {
  const host = config.link?.serverAddress ?? '127.0.0.1';
  const child = childOf(impl, config, [impl === 'dask' ? 'compress-server' : 'server', '--formats', config.formats.join(','), '--lifetime', '900', '--host', host], 'server');
  const line = await child.next(SERVER_READY_MS);
  if (line?.ready === true && line.addresses && typeof line.addresses === 'object') {
    return { child, addresses: line.addresses as Record<string, string>, pid: typeof line.pid === 'number' ? line.pid : undefined };
  }
  await child.stop();
  throw new Error(`${NAME[impl]} compression server did not start: ${(line?.error as string | undefined) ?? child.failure()}`);
}

export async function runCompression(config: CompressionRunConfig): Promise<CompressionRun> {
  const kinds = config.kinds ?? [...KINDS];
  const impls = COMPRESSION_IMPLS.filter((impl) => impl !== 'dask' || config.python !== undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-bench-compression-'));
  const errors: Record<string, string> = {};
  const runs: CompressionPhaseRun[] = [];
  let ratios: Record<string, number> = {};
  const servers = new Map<CompressionImpl, Server>();
  const clients = new Map<CompressionImpl, SteppedClient<CompressionImpl>>();
  const done: Record<CompressionImpl, number> = { rxcomm: 0, dask: 0 };
  try {
    for (const kind of kinds) fs.writeFileSync(payloadFile(dir, kind), makePayload(kind));
    log(`compression over ${linkName(config.link)}: starting servers (${impls.join(', ')}), formats ${config.formats.join(', ')}`);
    const started = await Promise.allSettled(impls.map((impl) => startServer(impl, config)));
    started.forEach((outcome, i) => {
      if (outcome.status === 'fulfilled') servers.set(impls[i], outcome.value);
      else console.log((errors[impls[i]] = (outcome.reason as Error).message));
    });
    const lifetimeS = Math.max(120, (config.deadline - Date.now()) / 1000 + 60);
    // One at a time: each warm-up has the machine to itself.
    for (const [impl, server] of servers) {
      const addresses = config.formats.map((f) => `${f}=${server.addresses[f]}`).join(',');
      const args = [
        impl === 'dask' ? 'compress-client' : 'client',
        '--addresses', addresses, '--payloads', dir, '--formats', config.formats.join(','), '--kinds', kinds.join(','),
        '--label', impl, ...compressionOptionFlags(config.options), '--timeout', String(Math.round(lifetimeS)), '--stepped',
      ];
      const client = await SteppedClient.start(impl, childOf(impl, config, args, 'client'), 120_000);
      // Dask's client reports what its compressors make of each payload in its warm line.
      const reported = client.warm?.ratios;
      if (reported && typeof reported === 'object') ratios = reported as Record<string, number>;
      if (client.error) console.log((errors[`${impl} client`] = `${NAME[impl]} compression client failed: ${client.error}`));
      else {
        clients.set(impl, client);
        log(`compression: ${impl} client connected and warmed up`);
      }
    }
    const active = [...clients.keys()];
    // Per kind, the settings back to back, in the listed order in even reps and reversed in
    // odd ones: a drift of the machine's load within a kind's phases does not favour one side.
    const phasesOf = (rep: number) => kinds.flatMap((kind) => (rep % 2 === 0 ? config.formats : [...config.formats].reverse()).map((format) => ({ kind, format })));
    const phaseCount = kinds.length * config.formats.length;
    const longest = new Map<CompressionImpl, number>();
    for (let rep = 0; rep < config.reps; rep++) {
      const expected = active.reduce((sum, impl) => sum + (longest.get(impl) ?? phaseCount * 2.5), 0) * 1000;
      if (Date.now() + expected > config.deadline) {
        console.log(`compression: reps ${rep + 1}-${config.reps} skipped, out of time`);
        break;
      }
      const seconds = new Map<CompressionImpl, number>(active.map((impl) => [impl, 0]));
      const phases = phasesOf(rep);
      for (let k = 0; k < phases.length; k++) {
        const { kind, format } = phases[k];
        for (let i = 0; i < active.length; i++) {
          const impl = active[(i + rep + k) % active.length];
          const client = clients.get(impl)!;
          if (client.error) continue;
          const pid = servers.get(impl)!.pid;
          const before = cpuMs(pid);
          const outcome = await client.phase<CompressionResult>(phaseName(kind, format), config.phaseTimeoutS);
          const after = cpuMs(pid);
          seconds.set(impl, seconds.get(impl)! + outcome.seconds);
          const r = outcome.result;
          if (!r) {
            console.log((errors[`${impl} ${phaseName(kind, format)}`] = `${NAME[impl]} compression client failed (rep ${rep + 1}): ${outcome.error}`));
            continue;
          }
          runs.push({
            impl, rep, kind, format, MiBps: r.MiBps, messages: r.messages, negotiated: r.negotiated,
            senderCpuMs: (r.cpu_user_ms + r.cpu_system_ms) / r.messages,
            receiverCpuMs: before !== undefined && after !== undefined ? (after - before) / r.messages : undefined,
          });
        }
      }
      for (const impl of active) {
        longest.set(impl, Math.max(longest.get(impl) ?? 0, seconds.get(impl)!));
        if (!clients.get(impl)!.error) done[impl]++;
        const mine = runs.filter((run) => run.impl === impl && run.rep === rep);
        log(`compression${config.link ? ` ${rateLabel(config.link.bitsPerSecond)}` : ''} rep ${rep + 1} ${impl.padEnd(6)} ${seconds.get(impl)!.toFixed(1)} s: ${mine.map((run) => `${run.kind}/${run.format} ${Math.round(run.MiBps)}`).join(', ')} MiB/s`);
      }
    }
  } finally {
    await Promise.all([...clients.values()].map((client) => client.stop()));
    await Promise.all([...servers.values()].map((server) => server.child.stop()));
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const report = reportCompression(runs, kinds, config.formats, ratios, done, linkName(config.link));
  const negotiatedWrong = runs.filter((run) => (run.format === 'off' ? run.negotiated !== null : run.negotiated !== run.format));
  if (negotiatedWrong.length > 0) report.table += `\nWARNING: ${negotiatedWrong.length} phases ran on a comm that did not negotiate their compression`;
  const payloads = Object.fromEntries(kinds.map((kind) => [kind, PAYLOAD_DESCRIPTIONS[kind]]));
  report.table += `\npayloads: ${kinds.map((kind) => `${kind} = ${PAYLOAD_DESCRIPTIONS[kind]}`).join('; ')}; sizes after compression by Dask's compressors`;
  return { ...report, runs, ratios, errors, payloads, link: linkName(config.link) };
}
