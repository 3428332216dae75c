/**
 * Runs the built `rxcomm` command (`node dist/cli/main.js …`, the package's `bin`) as a
 * child process, for end-to-end specs of the command line.
 *
 * - `runCli(args, { stdin })`: runs to its end; resolves with stdout, stderr, the exit
 *   code and signal. stdin is always ended (so `send -` never waits on the spec). A
 *   deadline kills the child (by its PID) and rejects with what it printed so far.
 * - `startCli(args)`: a long-running command (listen, watch): a handle to wait for output
 *   lines as they come, to send it SIGINT/SIGTERM, and to await its exit (with a deadline).
 * - `stopAllCli()`: for afterEach/afterAll: SIGKILLs (by PID) every child this module
 *   started that is still running, and waits for each to exit. `liveCliCount()` says how
 *   many are left (a spec asserts none).
 *
 * The command runs from dist/: build first (`npm run build --silent`; `npm test` does).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const CLI_MAIN = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');
/** The default deadline of a command run to its end (a hung child, not a speed limit). */
export const RUN_DEADLINE_MS = 20_000;

export interface CliResult {
  /** The exit code (null if a signal ended it). */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** stdout split in lines, without the trailing empty one. */
  stdoutLines: string[];
  /** stderr split in lines, without the trailing empty one. */
  stderrLines: string[];
  pid: number;
}

const live = new Set<CliProcess>();

function lines(text: string): string[] {
  const all = text.split('\n');
  if (all[all.length - 1] === '') all.pop();
  return all;
}

/** Whether a process with this PID exists (signal 0 checks without signalling). */
export function processExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A running `rxcomm` child. */
export class CliProcess {
  stdout = '';
  stderr = '';
  /** Resolves once the child has exited and its stdout/stderr are drained. */
  readonly closed: Promise<CliResult>;
  private result: CliResult | undefined;
  private readonly waiters: Array<() => void> = [];

  constructor(
    readonly args: string[],
    readonly child: ChildProcessWithoutNullStreams,
  ) {
    child.stdout.setEncoding('utf8');
    child.stderr.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      this.stdout += chunk;
      this.wake();
    });
    child.stderr.on('data', (chunk: string) => {
      this.stderr += chunk;
      this.wake();
    });
    // A child that exited closes its stdin: a late write fails with EPIPE, which is fine.
    child.stdin.on('error', () => undefined);
    this.closed = new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null) => {
        this.result ??= {
          code,
          signal,
          stdout: this.stdout,
          stderr: this.stderr,
          stdoutLines: lines(this.stdout),
          stderrLines: lines(this.stderr),
          pid: this.pid,
        };
        resolve(this.result);
        this.wake();
      };
      child.on('close', finish);
      child.on('error', (err) => {
        this.stderr += `\n[spawn error] ${err.message}`;
        finish(null, null);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.result === undefined;
  }

  /** Complete stdout lines so far. */
  get stdoutLines(): string[] {
    return this.stdout.split('\n').slice(0, -1);
  }

  describe(): string {
    return `rxcomm ${this.args.join(' ')} (pid ${this.pid})`;
  }

  /** What it printed so far, for error messages. */
  context(): string {
    return `\n--- stdout ---\n${this.stdout.slice(-4000)}\n--- stderr ---\n${this.stderr.slice(-4000)}`;
  }

  /**
   * The first complete stdout line (at or after index `from`) that `match` accepts;
   * rejects if the child exits first, or after `timeoutMs` (a deadline for a hung test).
   */
  waitForLine(match: RegExp | ((line: string) => boolean), what: string, timeoutMs = 20_000, from = 0): Promise<string> {
    const accepts = typeof match === 'function' ? match : (line: string) => match.test(line);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${this.describe()}: no ${what} within ${timeoutMs} ms${this.context()}`)), timeoutMs);
      const check = () => {
        const found = this.stdoutLines.slice(from).find(accepts);
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        } else if (!this.running) {
          clearTimeout(timer);
          reject(new Error(`${this.describe()} exited (${JSON.stringify(this.result?.code)}) before its ${what}${this.context()}`));
        } else {
          this.waiters.push(check);
        }
      };
      check();
    });
  }

  /** Signals the child by its PID (never by name); a child that already exited is fine. */
  signal(signal: NodeJS.Signals): void {
    if (!this.running || this.child.pid === undefined) return;
    try {
      process.kill(this.child.pid, signal);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  /**
   * The result once the child has exited; after `timeoutMs` it is SIGKILLed (by PID) and
   * this rejects: a child that does not end when it should is a failure, not a hang.
   */
  async exit(timeoutMs = 10_000): Promise<CliResult> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), timeoutMs)));
    const outcome = await Promise.race([this.closed, late]);
    clearTimeout(timer);
    if (outcome !== 'late') return outcome;
    const context = this.context();
    this.signal('SIGKILL');
    await this.closed;
    throw new Error(`${this.describe()} did not exit within ${timeoutMs} ms (killed)${context}`);
  }

  /** Sends `signal`, then awaits the exit as `exit()` does. */
  async interrupt(signal: NodeJS.Signals = 'SIGINT', timeoutMs = 10_000): Promise<CliResult> {
    this.signal(signal);
    return this.exit(timeoutMs);
  }

  private wake(): void {
    for (const waiter of this.waiters.splice(0)) waiter();
  }
}

/** Starts `node dist/cli/main.js …args` with piped stdio (stdin left open unless `stdin` is given). */
export function startCli(args: string[], options: { stdin?: string | Buffer; env?: NodeJS.ProcessEnv } = {}): CliProcess {
  if (!fs.existsSync(CLI_MAIN)) throw new Error(`${CLI_MAIN} is missing: run 'npm run build --silent' first (npm test does)`);
  const child = spawn(process.execPath, [CLI_MAIN, ...args], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ...options.env },
  });
  const cli = new CliProcess(args, child);
  live.add(cli);
  void cli.closed.then(() => live.delete(cli));
  if (options.stdin !== undefined) child.stdin.end(options.stdin);
  return cli;
}

/** Runs `rxcomm …args` to its end (stdin: `options.stdin`, or nothing). */
export function runCli(args: string[], options: { stdin?: string | Buffer; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
  const cli = startCli(args, { stdin: options.stdin ?? '', env: options.env });
  return cli.exit(options.timeoutMs ?? RUN_DEADLINE_MS);
}

/** SIGKILLs (by PID) every child started here that still runs, and waits for their exits. */
export async function stopAllCli(): Promise<void> {
  await Promise.all(
    [...live].map(async (cli) => {
      cli.signal('SIGKILL');
      await cli.closed;
    }),
  );
}

/** How many children started here are still running. */
export function liveCliCount(): number {
  return live.size;
}
