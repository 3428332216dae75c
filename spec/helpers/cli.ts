/**
 * The `rxcomm` command as a child process (`node dist/cli/main.js`), for specs that run it
 * alongside other things: its output kept, its first line awaited, SIGINT to end it.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..', '..');
const CLI = path.join(ROOT, 'dist', 'cli', 'main.js');

/** The `rxcomm` command as a child process, its output kept. */
export class Cli {
  readonly child: ChildProcessWithoutNullStreams;
  stdout = '';
  stderr = '';
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdout.setEncoding('utf8').on('data', (chunk: string) => (this.stdout += chunk));
    this.child.stderr.setEncoding('utf8').on('data', (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  /** The first stdout line, once there is one (or a failure with what the command said). */
  async firstLine(timeoutMs = 20_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (!this.stdout.includes('\n')) {
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error(`rxcomm printed no line: ${this.stderr}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.stdout.slice(0, this.stdout.indexOf('\n'));
  }

  /** SIGINT (once), then its exit code. */
  async interrupt(): Promise<number | null> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGINT');
    return this.exited;
  }
}

/** Starts `rxcomm bridge LISTEN TARGET ...flags`; resolves with it and the address it listens on. */
export async function startBridge(listenAddress: string, target: string, flags: string[] = []): Promise<{ bridge: Cli; address: string }> {
  const bridge = new Cli(['bridge', listenAddress, target, ...flags]);
  const match = /^bridging (\S+) to (\S+)$/.exec(await bridge.firstLine());
  if (!match || match[2] !== target) throw new Error(`unexpected first line: ${bridge.stdout}`);
  return { bridge, address: match[1] };
}

