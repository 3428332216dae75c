/**
 * Which TLS failures are fatal. A certificate that is unknown, expired, missing or does
 * not match its key, or a protocol version nobody can agree on, will fail the same way
 * on every retry: `connect()` must fail at once (Dask's `FatalCommClosedError`).
 */
import { CommClosedError, FatalCommClosedError, toCommClosedError } from '../../errors';

const CERTIFICATE_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'CERT_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

export function isFatalTlsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && (CERTIFICATE_CODES.has(code) || code.startsWith('ERR_SSL_'));
}

/** Wraps a TLS socket error: fatal for certificate and protocol problems, else retryable. */
export function tlsError(err: unknown, message: string): CommClosedError {
  if (err instanceof CommClosedError) return err;
  if (!isFatalTlsError(err)) return toCommClosedError(err, message);
  const { code, message: text } = err as { code: string; message: string };
  return new FatalCommClosedError(`${message}: ${code}: ${text}`, { cause: err });
}
