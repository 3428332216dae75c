/**
 * The compression table's protocol, with nothing of rxcomm in it (as rpc_protocol.ts for
 * the rpc table): the payloads, the phases, the client's loop and the command line of
 * the Node sides. dask_side.py's `compress-server` / `compress-client` do the same, with
 * the same messages, limits and output keys (bench/README.md, "The compression table").
 *
 * One phase = one payload kind × one compression setting: 16 MiB payloads sent one way,
 * back to back, each as an out-of-band Dask payload frame (rxcomm's `toSerialize`,
 * Dask's `to_serialize`), which is what Dask's compression applies to, up to
 * `--total-mib` or `--seconds`, then `{"op": "bulk-done"}` and the server's reply (bytes
 * and messages received, every payload decompressed and decoded back to bytes).
 * MiB/s counts the payload's own (uncompressed) bytes. Each compression setting has a
 * comm of its own, negotiated at connect: the server listens once per setting, each
 * listener advertising that compression (`off`: none).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as readline from 'node:readline';
import { emit } from './protocol';

export const MiB = 1024 * 1024;
/** The payload of every message: 16 MiB. */
export const PAYLOAD_SIZE = 16 * MiB;

/**
 * The payload kinds (bench/README.md says what each is and what lz4 makes of it):
 * - `sparse`: a float64 column, 95 % zeros, the rest uniform in [0, 1) (lz4 ~0.06);
 * - `categorical`: a float64 column of 16 distinct prices drawn at random (lz4 ~0.35);
 * - `random`: random bytes, incompressible (the sample test must reject it).
 */
export const KINDS = ['sparse', 'categorical', 'random'] as const;
export type Kind = (typeof KINDS)[number];
/** `off`: the comm negotiated no compression. */
export const FORMATS = ['off', 'lz4', 'zstd', 'snappy', 'zlib'] as const;
export type Format = (typeof FORMATS)[number];
/** What the default table runs; `--compression-formats all` adds zstd, snappy and zlib. */
export const DEFAULT_FORMATS: Format[] = ['off', 'lz4'];

export const phaseName = (kind: Kind, format: Format): string => `${kind}_${format}`;

/** xorshift32, seeded: the same payload bytes in every run. */
function xorshift(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** The payload of `kind` (the orchestrator writes it to a file that every side reads). */
export function makePayload(kind: Kind): Buffer {
  const rnd = xorshift(kind === 'sparse' ? 1 : kind === 'categorical' ? 2 : 3);
  const n = PAYLOAD_SIZE / 8;
  const column = new Float64Array(n);
  if (kind === 'sparse') {
    for (let i = 0; i < n; i++) column[i] = rnd() < 0.95 ? 0 : rnd();
  } else if (kind === 'categorical') {
    const prices = Array.from({ length: 16 }, (_, i) => 99.5 + i * 0.25);
    for (let i = 0; i < n; i++) column[i] = prices[Math.floor(rnd() * 16)];
  } else {
    const words = new Uint32Array(column.buffer);
    for (let i = 0; i < words.length; i++) words[i] = Math.floor(rnd() * 4294967296);
  }
  return Buffer.from(column.buffer);
}

export function payloadFile(dir: string, kind: Kind): string {
  return path.join(dir, `${kind}.bin`);
}

// ---------------------------------------------------------------------------------------
// command line
// ---------------------------------------------------------------------------------------

export interface CompressionOptions {
  /** Max MiB of payload per phase. */
  totalMiB: number;
  /** Stop sending after this many seconds (checked after each message). */
  seconds: number;
}

export const COMPRESSION_DEFAULTS: CompressionOptions = { totalMiB: 1024, seconds: 1 };

export function compressionOptionFlags(options: CompressionOptions): string[] {
  return ['--total-mib', String(options.totalMiB), '--seconds', String(options.seconds)];
}

export interface CompressionSideArgs {
  mode: string;
  /** Client: format=address,... (what the server printed). */
  addresses: Partial<Record<Format, string>>;
  formats: Format[];
  kinds: Kind[];
  payloads: string | undefined;
  label: string;
  options: CompressionOptions;
  stepped: boolean;
  warmUp: boolean;
  timeout: number;
  lifetime: number;
  reps: number;
  /** Server: the address its listeners bind (default 127.0.0.1; another inside a shaped link's namespace). */
  host: string;
}

function listOf<T extends string>(text: string, allowed: readonly T[], what: string): T[] {
  const items = text.split(',').filter(Boolean);
  for (const item of items) if (!(allowed as readonly string[]).includes(item)) throw new Error(`${what}: ${JSON.stringify(item)} is not one of ${allowed.join(', ')}`);
  return items as T[];
}

export function parseCompressionArgs(argv: string[]): CompressionSideArgs {
  const args: CompressionSideArgs = {
    mode: argv[0] ?? '',
    addresses: {},
    formats: [...DEFAULT_FORMATS],
    kinds: [...KINDS],
    payloads: undefined,
    label: 'rxcomm',
    options: { ...COMPRESSION_DEFAULTS },
    stepped: false,
    warmUp: true,
    timeout: 300,
    lifetime: 600,
    reps: 1,
    host: '127.0.0.1',
  };
  for (let i = 1; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) throw new Error(`${arg} needs a value`);
      return argv[++i];
    };
    if (arg === '--formats') args.formats = listOf(value(), FORMATS, '--formats');
    else if (arg === '--kinds') args.kinds = listOf(value(), KINDS, '--kinds');
    else if (arg === '--addresses') {
      for (const pair of value().split(',')) {
        const at = pair.indexOf('=');
        args.addresses[listOf(pair.slice(0, at), FORMATS, '--addresses')[0]] = pair.slice(at + 1);
      }
    } else if (arg === '--payloads') args.payloads = value();
    else if (arg === '--label') args.label = value();
    else if (arg === '--total-mib') args.options.totalMiB = Number(value());
    else if (arg === '--seconds') args.options.seconds = Number(value());
    else if (arg === '--timeout') args.timeout = Number(value());
    else if (arg === '--lifetime') args.lifetime = Number(value());
    else if (arg === '--reps') args.reps = Number(value());
    else if (arg === '--host') args.host = value();
    else if (arg === '--stepped') args.stepped = true;
    else if (arg === '--no-warm-up') args.warmUp = false;
    else throw new Error(`unknown argument ${JSON.stringify(arg)}`);
  }
  return args;
}

// ---------------------------------------------------------------------------------------
// the server's logic and the client's phases
// ---------------------------------------------------------------------------------------

type Message = Record<string, unknown>;

function field(message: unknown, key: string): unknown {
  return message !== null && typeof message === 'object' ? (message as Message)[key] : undefined;
}

/** bulk counted (its data must arrive as bytes: decompressed and decoded), bulk-done replies. */
export function compressionHandler(reply: (message: unknown) => void): (message: unknown) => void {
  let bytes = 0;
  let messages = 0;
  return (message) => {
    const op = field(message, 'op');
    if (op === 'bulk') {
      const data = field(message, 'data');
      if (!(data instanceof Uint8Array)) throw new TypeError(`bulk data is not bytes: ${Object.prototype.toString.call(data)}`);
      bytes += data.byteLength;
      messages++;
    } else if (op === 'bulk-done') {
      reply({ op: 'bulk-done', bytes, messages });
      bytes = messages = 0;
    } else reply(message);
  };
}

/** One comm of the client, negotiated with one compression setting. */
export interface CompressionPeer {
  /** Sends `{"op": "bulk", "data": <payload as an out-of-band frame>}`. */
  writeBulk(payload: Buffer): Promise<unknown>;
  write(message: Message): Promise<unknown>;
  read(): Promise<unknown>;
  /** The compression both sides agreed on (null: none). */
  negotiated: unknown;
}

export interface CompressionResult {
  messages: number;
  MiB: number;
  MiBps: number;
  seconds: number;
  negotiated: unknown;
  cpu_user_ms: number;
  cpu_system_ms: number;
}

async function sendPayloads(peer: CompressionPeer, payload: Buffer, maxCount: number, maxSeconds: number): Promise<CompressionResult> {
  const cpu = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + maxSeconds * 1000;
  let count = 0;
  while (count < maxCount) {
    await peer.writeBulk(payload);
    count++;
    if (performance.now() > deadline) break;
  }
  await peer.write({ op: 'bulk-done' });
  const reply = await peer.read();
  const size = payload.byteLength;
  if (field(reply, 'op') !== 'bulk-done' || field(reply, 'bytes') !== size * count || field(reply, 'messages') !== count) {
    throw new Error(`sent ${count} x ${size} B, server acked ${JSON.stringify(reply)}`);
  }
  const seconds = (performance.now() - t0) / 1000;
  const used = process.cpuUsage(cpu);
  const mib = (size * count) / MiB;
  return { messages: count, MiB: mib, MiBps: mib / seconds, seconds, negotiated: peer.negotiated, cpu_user_ms: used.user / 1000, cpu_system_ms: used.system / 1000 };
}

/**
 * The client: a comm per format (`peers`), the payloads read from `--payloads`; the
 * warm-up (2 payloads of each kind on each comm), then `--stepped` phases on request as
 * the other tables' clients (`phase sparse_lz4` → `{"ok": true, "phase", "<label>": {...}}`),
 * or `--reps` passes over every phase and one line.
 */
export async function compressionClientMain(peers: Map<Format, CompressionPeer>, args: CompressionSideArgs): Promise<void> {
  if (!args.payloads) throw new Error('--payloads DIR is needed');
  const payloads = new Map<Kind, Buffer>(args.kinds.map((kind) => [kind, fs.readFileSync(payloadFile(args.payloads!, kind))]));
  const phases = new Map<string, () => Promise<CompressionResult>>();
  for (const kind of args.kinds) {
    for (const format of args.formats) {
      const payload = payloads.get(kind)!;
      const maxCount = Math.max(1, Math.floor((args.options.totalMiB * MiB) / payload.byteLength));
      phases.set(phaseName(kind, format), () => sendPayloads(peers.get(format)!, payload, maxCount, args.options.seconds));
    }
  }
  if (args.warmUp) for (const kind of args.kinds) for (const format of args.formats) await sendPayloads(peers.get(format)!, payloads.get(kind)!, 2, 10);
  if (args.stepped) {
    emit({ warm: true, pid: process.pid });
    for await (const line of readline.createInterface({ input: process.stdin, crlfDelay: Infinity })) {
      const [command, phase] = line.trim().split(/\s+/);
      if (command !== 'phase') continue;
      const run = phases.get(phase);
      if (!run) throw new Error(`unknown phase ${JSON.stringify(phase)} (one of ${[...phases.keys()].join(', ')})`);
      emit({ ok: true, phase, [args.label]: await run() });
    }
    return;
  }
  const raw: Record<string, CompressionResult[]> = {};
  for (let rep = 0; rep < args.reps; rep++) for (const [phase, run] of phases) (raw[phase] ??= []).push(await run());
  emit({ ok: true, [args.label]: raw });
}
