/**
 * Dask's error reply, both ways: what `error_message()` writes when a handler raises,
 * and how `send_recv` recognises it. Python's `clean_exception` accepts text where it
 * expects pickles, so a Python caller raises `Exception(<our text>)`.
 */
import { RemoteError } from '../errors';

export interface ErrorReply {
  status: 'uncaught-error';
  exception: unknown;
  traceback: unknown;
  exception_text: string;
  traceback_text: string;
}

function plainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map) && !ArrayBuffer.isView(value);
}

export function isErrorReply(reply: unknown): reply is ErrorReply {
  return plainObject(reply) && reply.status === 'uncaught-error';
}

/** The error a caller sees for an error reply: the texts only, never the pickles. */
export function remoteError(op: string, address: string, reply: ErrorReply): RemoteError {
  const text = (value: unknown) => (typeof value === 'string' ? value : '');
  return new RemoteError(op, address, text(reply.exception_text) || 'unknown error', text(reply.traceback_text));
}

/** The reply for a failed handler, with the texts in the fields Python reads. */
export function errorReply(error: unknown): ErrorReply {
  const err = error instanceof Error ? error : new Error(String(error));
  const exceptionText = `${err.name}: ${err.message}`;
  const tracebackText = err.stack ?? exceptionText;
  return {
    status: 'uncaught-error',
    exception: exceptionText,
    traceback: tracebackText,
    exception_text: exceptionText,
    traceback_text: tracebackText,
  };
}

export { plainObject };
