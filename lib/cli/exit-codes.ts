/**
 * Exit codes that scripts can trust, and the one-line error each failure prints.
 *
 *   0 ok · 1 the remote side answered with an error · 2 usage · 3 connection failure
 */
import { AddressError, CommClosedError, ConfigError, ListenError, RemoteError } from '../index';

export const EXIT = { ok: 0, remote: 1, usage: 2, connection: 3 } as const;

/** A mistake on the command line: its message, then a pointer to `--help`. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/** Which exit code an error means. */
export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError || error instanceof ConfigError || error instanceof AddressError) return EXIT.usage;
  if (error instanceof RemoteError) return EXIT.remote;
  if (error instanceof CommClosedError || error instanceof ListenError) return EXIT.connection;
  // Node's own socket errors (EADDRINUSE, ECONNREFUSED...) carry a code. A certificate file
  // that cannot be read is not one of them: rxcomm reports it as a ConfigError, a usage error.
  if (error instanceof Error && typeof (error as { code?: unknown }).code === 'string') return EXIT.connection;
  return EXIT.remote;
}

/** `rxcomm: <message>` (with its cause's message when that says more), or the stack with --debug. */
export function describeFailure(error: unknown, debug: boolean): string {
  if (debug && error instanceof Error && error.stack) return `rxcomm: ${error.stack}`;
  if (!(error instanceof Error)) return `rxcomm: ${String(error)}`;
  // The cause, when it says more: not when the message already quotes it or its code.
  const causeCode = (error.cause as { code?: unknown } | undefined)?.code;
  const quoted = error.cause instanceof Error && (error.message.includes(error.cause.message) || (typeof causeCode === 'string' && error.message.includes(causeCode)));
  const cause = error.cause instanceof Error && !quoted ? ` (${error.cause.message})` : '';
  return `rxcomm: ${error.message.split('\n')[0]}${cause}`;
}
