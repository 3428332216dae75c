/**
 * The child processes of `npm run bench` (run.ts and rpc.ts): every side runs in a
 * process of its own, prints JSON lines on stdout and stops when its stdin closes. Every
 * child started here is registered, and killed by its PID when the run exits, fails or is
 * interrupted; never by name.
 */
import { spawn, type ChildProcess } from 'node:child_process';

const running = new Set<ChildProcess>();

/** SIGKILL, by PID, every child still running. */
export function killAll(): void {
  for (const child of running) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    } catch {
      // already gone
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

export type Line = Record<string, unknown>;

export class Child {
  private readonly child: ChildProcess;
  private readonly lines: Line[] = [];
  private waiter: ((line: Line | undefined) => void) | undefined;
  private ended = false;
  private stderrTail = '';

  constructor(command: string, args: string[], cwd: string) {
    this.child = spawn(command, args, { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    running.add(this.child);
    this.child.once('exit', () => running.delete(this.child));
    this.child.on('error', () => undefined);
    this.child.stdin!.on('error', () => undefined);
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => (this.stderrTail = (this.stderrTail + chunk).slice(-4000)));
    let buffered = '';
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let newline;
      while ((newline = buffered.indexOf('\n')) >= 0) {
        const text = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        try {
          if (text.startsWith('{')) this.push(JSON.parse(text));
        } catch {
          // not a line of ours
        }
      }
    });
    this.child.stdout!.on('end', () => {
      this.ended = true;
      this.waiter?.(undefined);
    });
  }

  private push(line: Line): void {
    if (this.waiter) this.waiter(line);
    else this.lines.push(line);
  }

  /** The next JSON line, or undefined if stdout ended or `ms` passed. */
  next(ms: number): Promise<Line | undefined> {
    if (this.lines.length > 0) return Promise.resolve(this.lines.shift());
    if (this.ended) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(undefined), ms);
      const done = (line: Line | undefined) => {
        clearTimeout(timer);
        this.waiter = undefined;
        resolve(line);
      };
      this.waiter = done;
    });
  }

  send(line: string): void {
    this.child.stdin!.write(line + '\n');
  }

  /** Why it said nothing: its exit status and the end of its stderr. */
  failure(): string {
    const code = this.child.exitCode ?? this.child.signalCode;
    return `${code === null ? 'no answer in time' : `exited with ${code}`}; stderr: ${this.stderrTail.trim().slice(-400)}`;
  }

  /** Closes its stdin (its signal to stop); kills it by PID if it lingers. */
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

/** A client in `--stepped` mode: connected and warmed up once, then one phase per request. */
export class SteppedClient<Label extends string = string> {
  error: string | undefined;
  /** The client's `{"warm": true, ...}` line (a client may report more in it). */
  warm: Line | undefined;

  private constructor(
    readonly label: Label,
    private readonly child: Child,
  ) {}

  /** Starts `child` (a client given `--stepped` and `--label label`) and waits for its `{"warm": true}`. */
  static async start<Label extends string>(label: Label, child: Child, warmUpMs = 60_000): Promise<SteppedClient<Label>> {
    const client = new SteppedClient(label, child);
    const warm = await client.child.next(warmUpMs);
    client.warm = warm;
    if (warm?.warm !== true) {
      client.error = `warm-up failed: ${(warm?.error as string | undefined) ?? client.child.failure()}`;
      await client.child.stop();
    }
    return client;
  }

  /** Runs one phase; a client that fails or overruns is stopped and not asked again. */
  async phase<Result = Record<string, unknown>>(phase: string, timeoutS: number): Promise<{ seconds: number; result?: Result; error?: string }> {
    if (this.error) return { seconds: 0, error: this.error };
    const started = Date.now();
    this.child.send(`phase ${phase}`);
    const line = await this.child.next(timeoutS * 1000);
    const seconds = (Date.now() - started) / 1000;
    const result = line?.[this.label];
    if (line?.ok === true && line.phase === phase && result && typeof result === 'object') return { seconds, result: result as Result };
    this.error = `${phase}: ${(line?.error as string | undefined) ?? this.child.failure()}`;
    await this.child.stop();
    return { seconds, error: this.error };
  }

  stop(): Promise<void> {
    return this.child.stop();
  }
}

/** `[stderr]` progress lines with the time of day. */
export function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}
