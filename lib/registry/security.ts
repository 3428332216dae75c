/**
 * TLS settings, modelled on Dask's `Security`: one CA, certificate and key (PEM text
 * or file paths), mutual authentication by default, no hostname check unless asked.
 * Used by encrypted transports (tls), and by every transport for `requireEncryption`.
 */

/**
 * A TLS protocol version name, as Node's `tls.SecureVersion`.
 *
 * ## Example
 * ```ts
 * const minVersion: TlsVersion = 'TLSv1.3';
 * const security: SecurityConfig = { ca: 'ca.pem', cert: 'node.pem', key: 'node.key', minVersion };
 * ```
 *
 * @group Transports
 */
export type TlsVersion = 'TLSv1.3' | 'TLSv1.2' | 'TLSv1.1' | 'TLSv1';

/**
 * TLS settings (the `security` option): certificates for `tls://` and `wss://`, and
 * `requireEncryption` for every scheme. PEM text, its bytes, or file paths.
 *
 * ## Example
 * ```ts
 * const security: SecurityConfig = {
 *   ca: '/etc/dask/ca.pem',
 *   cert: '/etc/dask/client.pem',
 *   key: '/etc/dask/client.key',
 *   requireEncryption: true, // a tcp:// address now fails at once
 * };
 * const comm = await firstValueFrom(connect('tls://scheduler.example:8786', { security }));
 * ```
 *
 * @group Transports
 */
export interface SecurityConfig {
  /** CA certificate(s) that peers' certificates must chain to: PEM text (or its bytes) or a file path. */
  ca?: string | Uint8Array;
  /** This side's certificate (chain): PEM text (or its bytes) or a file path. */
  cert?: string | Uint8Array;
  /** This side's private key: PEM text (or its bytes) or a file path. */
  key?: string | Uint8Array;
  /**
   * Refuse plaintext transports (`tcp://`): connect and listen fail at once.
   * @default false
   */
  requireEncryption?: boolean;
  /** OpenSSL cipher list (TLS 1.2 and below). @default Node's default list */
  ciphers?: string;
  /** @default 'TLSv1.2' */
  minVersion?: TlsVersion;
  /** @default 'TLSv1.3' */
  maxVersion?: TlsVersion;
  /**
   * Verify that the listener's certificate names the host connected to. Dask does not.
   * @default false
   */
  checkHostname?: boolean;
  /** The server name sent (SNI) and checked when `checkHostname` is on. @default the host */
  serverName?: string;
  /**
   * Listeners require and verify a client certificate (mutual TLS, as Dask).
   * @default true
   */
  requireClientCertificate?: boolean;
}
