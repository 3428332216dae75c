/**
 * The command line: each command's positionals and options, the options every command
 * shares (TLS files, `--timeout`, `--json`, `--debug`, `--help`), and the help text made
 * from the same table, so that help and parsing cannot disagree.
 */
import { parseArgs } from 'node:util';
import type { ConnectConfig, ListenConfig, SecurityConfig } from '../index';
import { UsageError } from './exit-codes';

export interface OptionSpec {
  type: 'string' | 'boolean';
  /** The value's name in help, for string options. */
  value?: string;
  multiple?: boolean;
  short?: string;
  help: string;
}

export interface CommandSpec {
  name: string;
  /** Positionals in order; a trailing `?` marks an optional one. */
  positionals: string[];
  summary: string;
  /** Paragraphs after the usage line. */
  description: string;
  options: Record<string, OptionSpec>;
}

const SHARED: Record<string, OptionSpec> = {
  timeout: { type: 'string', value: 'MS', help: 'connect timeout in milliseconds (default 10000)' },
  'tls-ca': { type: 'string', value: 'FILE', help: 'CA certificate (PEM) that the peer must be signed by' },
  'tls-cert': { type: 'string', value: 'FILE', help: "this side's certificate (PEM): a listener's, or a client certificate" },
  'tls-key': { type: 'string', value: 'FILE', help: 'the private key (PEM) of --tls-cert' },
  json: { type: 'boolean', help: 'machine output: one JSON value per line ({"$bytes": base64}, {"$bigint": "…"}, {"$map": […]})' },
  debug: { type: 'boolean', help: 'print errors with their stack' },
  help: { type: 'boolean', short: 'h', help: 'show this help' },
};

export const EXIT_CODES_LINE = 'Exit codes: 0 ok, 1 remote error, 2 usage, 3 connection failure.';

export interface Parsed {
  positionals: Record<string, string | undefined>;
  values: Record<string, string | boolean | string[] | undefined>;
}

/** Parses `argv` (after the command name) for `command`; throws `UsageError`. */
export function parseCommand(command: CommandSpec, argv: string[]): Parsed {
  const specs = { ...command.options, ...SHARED };
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(
        Object.entries(specs).map(([name, { type, multiple, short }]) => [name, { type, ...(multiple && { multiple }), ...(short && { short }) }]),
      ),
    });
  } catch (err) {
    // Node's text goes on to explain `--`; its first sentence is the mistake.
    throw new UsageError((err as Error).message.split('\n')[0].replace(/\. To specify a positional.*$/, ''));
  }
  const values = parsed.values as Parsed['values'];
  if (values.help) return { positionals: {}, values };
  const required = command.positionals.filter((p) => !p.endsWith('?'));
  if (parsed.positionals.length < required.length) {
    throw new UsageError(`${command.name} needs ${required.join(' ')}; missing ${required.slice(parsed.positionals.length).join(' ')}`);
  }
  if (parsed.positionals.length > command.positionals.length) {
    throw new UsageError(`${command.name} takes ${command.positionals.length} arguments, got ${parsed.positionals.length}: ${parsed.positionals.join(' ')}`);
  }
  const positionals: Parsed['positionals'] = {};
  command.positionals.forEach((name, i) => (positionals[name.replace(/\?$/, '')] = parsed.positionals[i]));
  return { positionals, values };
}

/** A whole number option, or its default. */
export function integerOption(values: Parsed['values'], name: string, fallback: number, min = 1): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be a whole number of at least ${min}, got '${String(raw)}'`);
  return n;
}

/** `--tls-*` as rxcomm's `security` option; `undefined` when none is given. */
function security(values: Parsed['values']): SecurityConfig | undefined {
  const { 'tls-ca': ca, 'tls-cert': cert, 'tls-key': key } = values as Record<string, string | undefined>;
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) throw new UsageError('--tls-cert and --tls-key go together');
  return { ca, cert, key };
}

/** The connect options the shared flags say. */
export function connectConfig(values: Parsed['values']): ConnectConfig {
  return { timeout: integerOption(values, 'timeout', 10_000), security: security(values) };
}

/** The listen options the shared flags (and `--allow-origin`) say. */
export function listenConfig(values: Parsed['values']): ListenConfig {
  const origins = values['allow-origin'] as string[] | undefined;
  return { security: security(values), allowedOrigins: origins };
}

/** The help of one command, from its table. */
export function commandHelp(command: CommandSpec): string {
  const usage = command.positionals.map((p) => (p.endsWith('?') ? `[${p.slice(0, -1)}]` : p)).join(' ');
  const rows = Object.entries({ ...command.options, ...SHARED }).map(([name, spec]) => {
    const flag = `${spec.short ? `-${spec.short}, ` : ''}--${name}${spec.value ? ` ${spec.value}` : ''}`;
    return `  ${flag.padEnd(24)}${spec.help}${spec.multiple ? ' (repeatable)' : ''}`;
  });
  return [`Usage: rxcomm ${command.name} ${usage} [options]`, '', command.description, '', 'Options:', ...rows, '', EXIT_CODES_LINE, ''].join('\n');
}
