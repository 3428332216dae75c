/**
 * The command line's dispatcher: finds the command, parses its arguments, runs it, and
 * turns any failure into one line on stderr and an exit code (exit-codes.ts).
 */
import { createInterface } from 'node:readline';
import { commandHelp, EXIT_CODES_LINE, parseCommand } from './args';
import type { Command, CommandContext } from './command';
import { bench } from './commands/bench';
import { bridge } from './commands/bridge';
import { call } from './commands/call';
import { listenCommand } from './commands/listen';
import { send } from './commands/send';
import { watch } from './commands/watch';
import { describeFailure, EXIT, exitCodeOf, UsageError } from './exit-codes';

export const COMMANDS: Command[] = [call, send, listenCommand, watch, bench, bridge];

export function mainHelp(): string {
  const width = Math.max(...COMMANDS.map((c) => c.spec.name.length)) + 2;
  return [
    'Usage: rxcomm COMMAND [arguments] [options]',
    '',
    "Talk to Dask schedulers, workers and rxcomm servers from a shell, through rxcomm's comms",
    '(addresses: tcp://host:port, tls://, ws://, wss://).',
    '',
    'Commands:',
    ...COMMANDS.map((c) => `  ${c.spec.name.padEnd(width)}${c.spec.summary}`),
    '',
    "Run 'rxcomm COMMAND --help' for a command's arguments and options.",
    EXIT_CODES_LINE,
    '',
  ].join('\n');
}

/** SIGINT or SIGTERM, once, as a promise (the handlers are installed only when asked for). */
function interruption(): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      process.off('SIGINT', done);
      process.off('SIGTERM', done);
      resolve();
    };
    process.on('SIGINT', done);
    process.on('SIGTERM', done);
  });
}

async function* stdinLines(): AsyncIterable<string> {
  yield* createInterface({ input: process.stdin, crlfDelay: Infinity });
}

/** Runs `rxcomm <argv>`; resolves with the exit code. */
export async function run(argv: string[]): Promise<number> {
  const out = (text: string) => process.stdout.write(`${text}\n`);
  const err = (text: string) => process.stderr.write(`${text}\n`);
  const [name, ...rest] = argv;
  if (name === undefined) {
    err(mainHelp());
    return EXIT.usage;
  }
  if (name === '--help' || name === '-h' || name === 'help') {
    out(mainHelp());
    return EXIT.ok;
  }
  const command = COMMANDS.find((c) => c.spec.name === name);
  if (command === undefined) {
    err(`rxcomm: unknown command '${name}'; the commands are ${COMMANDS.map((c) => c.spec.name).join(', ')}`);
    err("Run 'rxcomm --help' for usage.");
    return EXIT.usage;
  }
  const debug = rest.includes('--debug');
  // Commands that run until interrupted listen for the signal from the start, so that a
  // Ctrl-C during their setup still ends them with their cleanup and exit code 0.
  let interrupted: Promise<void> | undefined = command.runsUntilInterrupted ? interruption() : undefined;
  try {
    const parsed = parseCommand(command.spec, rest);
    if (parsed.values.help) {
      out(commandHelp(command.spec));
      return EXIT.ok;
    }
    const context: CommandContext = {
      ...parsed,
      out,
      err,
      errIsTty: process.stderr.isTTY === true,
      outIsTty: process.stdout.isTTY === true,
      get interrupted() {
        return (interrupted ??= interruption());
      },
      stdinLines,
    };
    return await command.run(context);
  } catch (error) {
    err(describeFailure(error, debug));
    const code = exitCodeOf(error);
    if (code === EXIT.usage) err(`Run 'rxcomm ${name} --help' for usage.`);
    return code;
  }
}
