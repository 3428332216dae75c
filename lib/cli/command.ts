/** What a command gets to run with, and what it is. */
import type { CommandSpec, Parsed } from './args';

export interface CommandContext {
  positionals: Record<string, string | undefined>;
  values: Parsed['values'];
  /** One line (or block) to stdout: results. */
  out(text: string): void;
  /** One line to stderr: progress, notes, counts. */
  err(text: string): void;
  /** Whether stderr is a terminal (a live progress line is drawn only there). */
  errIsTty: boolean;
  /** Whether stdout is a terminal (colours are used only there). */
  outIsTty: boolean;
  /** Resolves on SIGINT or SIGTERM: commands that run until interrupted wait for it. */
  interrupted: Promise<void>;
  /** Lines of stdin, for `send -`. */
  stdinLines(): AsyncIterable<string>;
}

export interface Command {
  spec: CommandSpec;
  /** It runs until SIGINT or SIGTERM (listen, watch, bridge): the signal is heard from the start. */
  runsUntilInterrupted?: boolean;
  /** Resolves with the exit code; throws for a failure (run.ts turns it into one line and a code). */
  run(context: CommandContext): Promise<number>;
}
