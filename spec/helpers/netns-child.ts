/**
 * Runs half-open-peer.ts as a child process inside a network namespace and reads its
 * JSON lines. The script is bundled with lib/ by esbuild (a dev dependency, as for the
 * browser specs) into a temporary directory, so the children run the sources under
 * test whether or not dist/ is built and fresh; the package's dependencies stay outside
 * the bundle and are found through NODE_PATH.
 *
 * Children are stopped by PID (`stop()`, `stopAllChildren()`): stdin closed first (the
 * script exits on it), SIGKILL if still there after a grace period.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as esbuild from 'esbuild';
import type { PeerLine } from './half-open-peer';

const ROOT = path.resolve(__dirname, '..', '..');
const STOP_GRACE_MS = 2_000;

export interface PeerScript {
  file: string;
  /** Deletes the bundle. */
  remove(): void;
}

/** Bundles half-open-peer.ts (and lib/, through tsconfig's `rxcomm` path) into a temporary file. */
export async function bundlePeerScript(): Promise<PeerScript> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rxcomm-half-open-'));
  const file = path.join(dir, 'half-open-peer.js');
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
    optionalDependencies?: Record<string, string>;
  };
  await esbuild.build({
    entryPoints: [path.join(__dirname, 'half-open-peer.ts')],
    outfile: file,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    tsconfig: path.join(ROOT, 'tsconfig.json'),
    external: [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.optionalDependencies ?? {})],
    logLevel: 'silent',
  });
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

const live = new Set<NetnsChild>();

/** A running peer script. */
export class NetnsChild {
  readonly lines: PeerLine[] = [];
  stderr = '';
  readonly exited: Promise<void>;
  private running = true;
  private readonly waiters = new Set<() => void>();

  constructor(
    readonly label: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    let pending = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      pending += chunk;
      for (let newline: number; (newline = pending.indexOf('\n')) >= 0; ) {
        const text = pending.slice(0, newline).trim();
        pending = pending.slice(newline + 1);
        if (text !== '') this.lines.push(JSON.parse(text) as PeerLine);
      }
      this.wake();
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (this.stderr = (this.stderr + chunk).slice(-16 * 1024)));
    child.stdin.on('error', () => undefined); // EPIPE once it has exited
    this.exited = new Promise((resolve) => {
      const done = () => {
        this.running = false;
        live.delete(this);
        this.wake();
        resolve();
      };
      child.on('exit', done);
      child.on('error', (err) => {
        this.stderr += `\n[spawn error] ${err.message}`;
        done();
      });
    });
  }

  /** The first line with `event` (waiting up to `timeoutMs` for it). */
  async waitFor(event: PeerLine['event'], timeoutMs: number): Promise<PeerLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const line = this.lines.find((l) => l.event === event);
      if (line) return line;
      const crash = this.lines.find((l) => l.event === 'crashed');
      if (crash || !this.running || Date.now() >= deadline) {
        const why = crash ? 'crashed' : !this.running ? 'exited' : `printed no "${event}" line within ${timeoutMs} ms`;
        throw new Error(`${this.label} ${why}; lines: ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`);
      }
      await new Promise<void>((resolve) => {
        const wake = () => {
          clearTimeout(timer);
          this.waiters.delete(wake);
          resolve();
        };
        const timer = setTimeout(wake, Math.max(0, deadline - Date.now()));
        this.waiters.add(wake);
      });
    }
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.stdin.end();
    const timer = setTimeout(() => {
      if (this.running && this.child.pid !== undefined) process.kill(this.child.pid, 'SIGKILL');
    }, STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
  }

  private wake(): void {
    for (const waiter of [...this.waiters]) waiter();
  }
}

/**
 * Starts `node script ...args` inside namespace `ns` (`ip netns exec` execs node in its
 * own place, so the child's PID is node's).
 */
export function spawnInNamespace(ns: string, script: PeerScript, args: string[], label = args[0]): NetnsChild {
  const nodePath = [path.join(ROOT, 'node_modules'), process.env.NODE_PATH].filter(Boolean).join(path.delimiter);
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, script.file, ...args], {
    cwd: ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_PATH: nodePath },
  });
  const peer = new NetnsChild(`${label} (in ${ns}, pid ${child.pid})`, child);
  live.add(peer);
  return peer;
}

/** Stops every child still running (afterEach/afterAll). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...live].map((child) => child.stop()));
}
