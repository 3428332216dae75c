/**
 * The Python side of the interop specs: `/usr/bin/python3 interop/dask_peer.py ...`
 * (Debian's Dask 2022.12.1) as a child process speaking JSON lines on stdout.
 *
 * - `startServer(args)`: a server mode (`scheduler`, `echo-listen`); resolves with its
 *   ready line, or rejects (with its stderr) on a start-up failure or timeout.
 * - `runClient(args)`: a client mode (`roundtrip`, `identity`, ...); resolves with every
 *   JSON line, the summary line and the exit code once the child has exited.
 * - `stopAllPeers()`: for afterEach/afterAll: ends each live child's stdin (server modes
 *   exit on stdin EOF), SIGTERMs it by PID after a grace period, SIGKILLs it if it is
 *   still there, and waits for every exit. No child outlives a spec file.
 *
 * `daskAvailability()` says whether the peer can run at all, and `describeInterop` turns
 * that into a suite that runs, is skipped with a visible reason, or fails under CI.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';

/** Debian's interpreter (the pyenv `python3` on PATH cannot import Dask); RXCOMM_DASK_PYTHON overrides it. */
export const PYTHON = process.env.RXCOMM_DASK_PYTHON || '/usr/bin/python3';
export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const PEER_SCRIPT = 'interop/dask_peer.py';
/** How long a server mode may take to print its ready line (a Scheduler needs ~1-3 s). */
export const READY_TIMEOUT_MS = 30_000;
/** After stdin is closed, how long a child gets to exit by itself before SIGTERM. */
export const STOP_GRACE_MS = 5_000;

/** One JSON line printed by dask_peer.py. */
export type PeerLine = Record<string, unknown>;

export interface ReadyLine extends PeerLine {
  ready: true;
  mode: string;
  /** The address to dial: always on 127.0.0.1 (for ws/wss, Dask's advertised address rewritten to it). */
  address: string;
  /**
   * The address Dask itself advertises (`Scheduler.address`, the listener's contact
   * address): the same as `address` over tcp/tls; over ws/wss this machine's LAN address
   * with the same port (never dialed).
   */
  advertised: string;
  pid: number;
}

export interface ClientRun {
  /** The exit code (null if killed by a signal). */
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Every JSON line, in order (the summary included). */
  lines: PeerLine[];
  /** The per-item result lines (everything but the summary). */
  results: PeerLine[];
  /** The `"summary": true` line, if one was printed. */
  summary: PeerLine | undefined;
  /** stdout lines that were not JSON (there should be none). */
  noise: string[];
  stderr: string;
  /** Wall time of the child, in ms. */
  ms: number;
}

/** A running dask_peer.py child. */
export class DaskPeer {
  readonly lines: PeerLine[] = [];
  readonly noise: string[] = [];
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitStatus: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly lineWaiters: Array<() => void> = [];
  private readonly started = Date.now();

  constructor(
    readonly args: string[],
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let newline: number;
      while ((newline = pending.indexOf('\n')) >= 0) {
        const text = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (text === '') continue;
        try {
          this.lines.push(JSON.parse(text) as PeerLine);
        } catch {
          this.noise.push(text);
        }
        this.wake();
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      // Keep the tail: a failing run's log is what a reader needs, not megabytes of it.
      this.stderr = (this.stderr + chunk).slice(-64 * 1024);
    });
    // A child that exits early closes its stdin pipe: writes then fail with EPIPE, ignore it.
    child.stdin.on('error', () => undefined);
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.exitStatus = { code, signal };
        resolve(this.exitStatus);
        this.wake();
      });
      child.on('error', (err) => {
        this.stderr += `\n[spawn error] ${err.message}`;
        this.exitStatus ??= { code: null, signal: null };
        resolve(this.exitStatus);
        this.wake();
      });
    });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  get running(): boolean {
    return this.exitStatus === undefined;
  }

  get elapsedMs(): number {
    return Date.now() - this.started;
  }

  /** The first line that `predicate` accepts; rejects on exit or after `timeoutMs`. */
  waitForLine(predicate: (line: PeerLine) => boolean, timeoutMs: number, what: string): Promise<PeerLine> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.describe()}: no ${what} within ${timeoutMs} ms${this.context()}`));
      }, timeoutMs);
      const check = () => {
        const found = this.lines.find(predicate);
        if (found) {
          done();
          resolve(found);
        } else if (!this.running) {
          done();
          reject(new Error(`${this.describe()} exited (${JSON.stringify(this.exitStatus)}) before its ${what}${this.context()}`));
        } else {
          this.lineWaiters.push(check);
        }
      };
      const done = () => clearTimeout(timer);
      check();
    });
  }

  /**
   * Stops the child: ends stdin (server modes exit at EOF), then after `graceMs` SIGTERM
   * by PID, then after another `graceMs` SIGKILL; resolves once it has exited.
   */
  async stop(graceMs = STOP_GRACE_MS): Promise<void> {
    if (!this.child.stdin.writableEnded) this.child.stdin.end();
    if (!this.running) return;
    if (await this.exitsWithin(graceMs)) return;
    this.signal('SIGTERM');
    if (await this.exitsWithin(graceMs)) return;
    this.signal('SIGKILL');
    await this.exited;
  }

  describe(): string {
    return `dask_peer.py ${this.args.join(' ')} (pid ${this.pid})`;
  }

  /** The tail of stderr and any non-JSON stdout, for error messages. */
  context(): string {
    const parts: string[] = [];
    const errors = this.lines.filter((line) => line.ok === false);
    if (errors.length > 0) parts.push(`error lines: ${JSON.stringify(errors).slice(0, 2000)}`);
    if (this.noise.length > 0) parts.push(`non-JSON stdout: ${this.noise.join('\n').slice(0, 1000)}`);
    if (this.stderr) parts.push(`stderr (tail):\n${this.stderr.slice(-4000)}`);
    return parts.length > 0 ? `\n${parts.join('\n')}` : '';
  }

  /** Signals the child by PID; it may have exited meanwhile (ESRCH), which is fine. */
  private signal(signal: NodeJS.Signals): void {
    if (this.pid === undefined || !this.running) return;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  private exitsWithin(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), ms);
      void this.exited.then(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  private wake(): void {
    for (const waiter of this.lineWaiters.splice(0)) waiter();
  }
}

const live = new Set<DaskPeer>();

/** Spawns `python3 interop/dask_peer.py ...args` in the repo root, with piped stdio. */
export function spawnPeer(args: string[]): DaskPeer {
  const child = spawn(PYTHON, [PEER_SCRIPT, ...args], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  const peer = new DaskPeer(args, child);
  live.add(peer);
  void peer.exited.then(() => live.delete(peer));
  return peer;
}

/** A server mode, once its ready line is out. */
export async function startServer(args: string[], timeoutMs = READY_TIMEOUT_MS): Promise<{ peer: DaskPeer; ready: ReadyLine }> {
  const peer = spawnPeer(args);
  try {
    const ready = (await peer.waitForLine((line) => line.ready === true || line.ok === false, timeoutMs, 'ready line')) as ReadyLine;
    if (ready.ready !== true) throw new Error(`${peer.describe()} failed to start: ${JSON.stringify(ready)}${peer.context()}`);
    return { peer, ready };
  } catch (err) {
    await peer.stop();
    throw err;
  }
}

/**
 * A client mode, run to its end. The child has its own hard deadline (`--timeout`); this
 * one (a little longer) only guards against a hung interpreter.
 */
export async function runClient(args: string[], timeoutMs = 90_000): Promise<ClientRun> {
  const peer = spawnPeer(args);
  peer.child.stdin.end(); // client modes never read stdin
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([peer.exited, timedOut]);
  clearTimeout(timer);
  if (outcome === 'timeout') {
    await peer.stop(1_000);
    throw new Error(`${peer.describe()} did not finish within ${timeoutMs} ms${peer.context()}`);
  }
  const summary = peer.lines.find((line) => line.summary === true);
  return {
    code: outcome.code,
    signal: outcome.signal,
    lines: peer.lines,
    results: peer.lines.filter((line) => line.summary !== true),
    summary,
    noise: peer.noise,
    stderr: peer.stderr,
    ms: peer.elapsedMs,
  };
}

/** Stops every child still running (afterEach/afterAll). */
export async function stopAllPeers(): Promise<void> {
  await Promise.all([...live].map((peer) => peer.stop()));
}

/** How many children are still alive (a spec can assert none leaked). */
export function livePeerCount(): number {
  return live.size;
}

/** `--tls CA CERT KEY` for a dask_peer.py command, from PEM file paths. */
export function tlsArgs(files: { ca: string; cert: string; key: string }): string[] {
  return ['--tls', files.ca, files.cert, files.key];
}

// ---- availability ----

export interface Availability {
  available: boolean;
  /** Why not, when not; the version when available. */
  detail: string;
}

let availability: Availability | undefined;

/** Whether `/usr/bin/python3` can import Dask's `distributed` (checked once per worker). */
export function daskAvailability(): Availability {
  if (!availability) {
    const result = spawnSync(PYTHON, ['-c', 'import distributed, sys; sys.stdout.write(distributed.__version__)'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    if (result.error) {
      availability = { available: false, detail: `${PYTHON} could not be run: ${result.error.message}` };
    } else if (result.status !== 0) {
      const why = (result.stderr || '').trim().split('\n').pop() || `exit status ${result.status}`;
      availability = { available: false, detail: `${PYTHON} -c "import distributed" failed: ${why}` };
    } else {
      availability = { available: true, detail: `distributed ${result.stdout.trim()}` };
    }
  }
  return availability;
}

export const CI_REQUIREMENT = 'Dask is required under CI: apt-get install python3-distributed';

/**
 * `describe` for an interop suite. With Dask present it is a plain `describe`. Without it:
 * under CI (`process.env.CI` set) a suite with one test that fails with CI_REQUIREMENT;
 * elsewhere `describe.skip` (jest reports the tests as skipped, never as passed) and a
 * console warning that says why.
 */
export function describeInterop(name: string, body: () => void): void {
  const { available, detail } = daskAvailability();
  if (available) {
    describe(name, body);
    return;
  }
  if (process.env.CI) {
    describe(name, () => {
      it('should have Dask available (required under CI)', () => {
        throw new Error(`${CI_REQUIREMENT} (${detail})`);
      });
    });
    return;
  }
  console.warn(`Skipping interop suite "${name}": ${detail}. Install it with: apt-get install python3-distributed`);
  describe.skip(`${name} [skipped: ${detail}]`, body);
}
