/**
 * Turns a `SecurityConfig` into Node TLS settings, checking it first: shared by the
 * transports that encrypt (tls, wss), so that both verify peers the same way.
 */
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { ConfigError, FatalCommClosedError } from '../../errors';
import type { SecurityConfig } from '../../registry/backend';

function pem(name: string, value: string | Uint8Array | undefined): string | Buffer | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (value.includes('-----BEGIN')) return value;
  try {
    return fs.readFileSync(value);
  } catch (err) {
    throw new ConfigError(`cannot read security.${name} from ${JSON.stringify(value)}: ${(err as NodeJS.ErrnoException).code}`, {
      cause: err,
    });
  }
}

/** What a side needs, checked before any socket is opened. */
export function checkSecurity(security: SecurityConfig | undefined, side: 'connect' | 'listen', scheme: string): SecurityConfig {
  // A connector must verify the listener; a listener must present a certificate and,
  // when it checks clients (the default), know their CA.
  const needed: (keyof SecurityConfig)[] =
    side === 'connect' ? ['ca'] : security?.requireClientCertificate === false ? ['cert', 'key'] : ['ca', 'cert', 'key'];
  const missing = needed.filter((name) => !security?.[name]);
  if (missing.length > 0) {
    throw new ConfigError(
      `${scheme}:// needs TLS settings to ${side}: security.${missing.join(', security.')} ${missing.length > 1 ? 'are' : 'is'} missing`,
    );
  }
  if (!security!.cert !== !security!.key) {
    throw new ConfigError(`${scheme}:// needs security.cert and security.key together`);
  }
  return security!;
}

/** The Node TLS options of a security config, with file paths read. */
export function tlsOptionsFor(security: SecurityConfig): tls.SecureContextOptions {
  return {
    ca: pem('ca', security.ca),
    cert: pem('cert', security.cert),
    key: pem('key', security.key),
    ciphers: security.ciphers,
    minVersion: security.minVersion ?? 'TLSv1.2',
    maxVersion: security.maxVersion ?? 'TLSv1.3',
  };
}

const contexts = new WeakMap<SecurityConfig, tls.SecureContext>();

/** The secure context for a security config, made once: parsing PEM on each connect is slow. */
export function secureContextFor(security: SecurityConfig): tls.SecureContext {
  let context = contexts.get(security);
  if (!context) {
    try {
      context = tls.createSecureContext(tlsOptionsFor(security));
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      // A key that does not match its certificate, or PEM that does not parse: a
      // certificate problem, fatal like an unknown CA.
      throw new FatalCommClosedError(`invalid TLS certificate or key: ${(err as Error).message}`, { cause: err });
    }
    contexts.set(security, context);
  }
  return context;
}

/**
 * A connector's TLS options: the listener's chain is always verified; its name only with
 * `checkHostname`, as Dask checks the chain and not the name.
 */
export function clientTlsOptions(security: SecurityConfig, host: string): tls.ConnectionOptions {
  return {
    secureContext: secureContextFor(security),
    rejectUnauthorized: true,
    servername: security.checkHostname && !net.isIP(host) ? (security.serverName ?? host) : security.serverName,
    checkServerIdentity: security.checkHostname
      ? (name, cert) => tls.checkServerIdentity(security.serverName ?? name ?? host, cert)
      : () => undefined,
  };
}

/** What Dask puts in `extra_info`: the peer certificate and the cipher (name, protocol, bits). */
export function tlsInfo(socket: tls.TLSSocket): Record<string, unknown> {
  const cipher = socket.getCipher();
  const bits = /(256|CHACHA20)/.test(cipher.name) ? 256 : /128/.test(cipher.name) ? 128 : undefined;
  return {
    peercert: socket.getPeerCertificate(),
    cipher: { name: cipher.standardName ?? cipher.name, protocol: socket.getProtocol(), bits },
  };
}

/**
 * Why a listener that checks clients refuses this one, or undefined when it does not.
 * A client that sent no certificate at all is told so: Node reports it as an unknown
 * issuer (`UNABLE_TO_GET_ISSUER_CERT`), which would send its user looking at the CA.
 */
export function clientCertificateProblem(socket: tls.TLSSocket): string | undefined {
  if (socket.authorized) return undefined;
  const presented = Object.keys(socket.getPeerCertificate() ?? {}).length > 0;
  return presented
    ? `client certificate refused: ${String(socket.authorizationError)}`
    : 'client certificate refused: the client presented none, and this listener requires one (requireClientCertificate)';
}
