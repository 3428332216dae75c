/**
 * Throwaway certificates for tests and demos, made with the `openssl` command: a CA,
 * a server and a client certificate it signed (both valid for 127.0.0.1, ::1 and
 * localhost), a second unrelated CA with a client of its own, and an expired one.
 * Never use them for anything but tests.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * A certificate and its key, as PEM text and as files.
 *
 * ## Example
 * ```ts
 * const { server } = await createTestCertificates();
 * const fromText: SecurityConfig = { cert: server.cert, key: server.key };
 * const fromFiles: SecurityConfig = { cert: server.certFile, key: server.keyFile };
 * ```
 *
 * @group Testing
 */
export interface CertificatePair {
  /** The certificate, PEM text. */
  cert: string;
  /** Its private key, PEM text. */
  key: string;
  /** The path of the certificate's file. */
  certFile: string;
  /** The path of the key's file. */
  keyFile: string;
}

/**
 * What `createTestCertificates` makes: a CA, certificates it signed for a server and a
 * client, and the wrong ones that tests of refusal need.
 *
 * ## Example
 * ```ts
 * const certs: TestCertificates = await createTestCertificates();
 * const server: SecurityConfig = { ca: certs.ca.cert, cert: certs.server.cert, key: certs.server.key };
 * const stranger: SecurityConfig = { ca: certs.ca.cert, cert: certs.stranger.cert, key: certs.stranger.key };
 * const listener = await listen('tls://127.0.0.1:0', { security: server }).start();
 * connect(listener.contactAddress, { security: stranger }).subscribe({
 *   error: (err) => console.log(err instanceof FatalCommClosedError), // its CA is not trusted
 * });
 * // after the test
 * await certs.remove();
 * ```
 *
 * @group Testing
 */
export interface TestCertificates {
  /** The folder holding the files; `remove()` deletes it. */
  dir: string;
  /** The CA that signed `server`, `client` and `expired`. */
  ca: CertificatePair;
  /** Signed by `ca`, valid for 127.0.0.1, ::1 and localhost. */
  server: CertificatePair;
  /** Signed by `ca`, for mutual TLS. */
  client: CertificatePair;
  /** An expired certificate signed by `ca`. */
  expired: CertificatePair;
  /** A second CA, unrelated to `ca`. */
  otherCa: CertificatePair;
  /** A client certificate signed by `otherCa`. */
  stranger: CertificatePair;
  /** Deletes `dir` and the files in it. */
  remove(): Promise<void>;
}

const SAN = 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost';

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run('openssl', args, { cwd: dir });
  } catch (err) {
    const { code, stderr } = err as { code?: string; stderr?: string };
    throw new Error(
      code === 'ENOENT' ? 'the openssl command is needed to make test certificates (apt-get install openssl)' : `openssl ${args[0]} failed: ${stderr}`,
      { cause: err },
    );
  }
}

async function read(dir: string, name: string): Promise<CertificatePair> {
  const certFile = path.join(dir, `${name}.pem`);
  const keyFile = path.join(dir, `${name}.key`);
  return { cert: await fs.readFile(certFile, 'utf8'), key: await fs.readFile(keyFile, 'utf8'), certFile, keyFile };
}

async function makeCa(dir: string, name: string): Promise<void> {
  await openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.pem`, '-days', '2', '-subj', `/CN=rxcomm test ${name}`]);
}

async function makeSigned(dir: string, name: string, ca: string, days: number): Promise<void> {
  await openssl(dir, ['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=rxcomm test ${name}`]);
  await fs.writeFile(path.join(dir, `${name}.ext`), `${SAN}\nextendedKeyUsage=serverAuth,clientAuth\n`);
  await openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.pem`, '-CAkey', `${ca}.key`,
    '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-out', `${name}.pem`, '-days', String(days), '-extfile', `${name}.ext`]);
}

/**
 * Makes a fresh set of test certificates in a temporary folder.
 *
 * ## Example
 * ```ts
 * const certs = await createTestCertificates();
 * const security = { ca: certs.ca.cert, cert: certs.server.cert, key: certs.server.key };
 * listen('tls://127.0.0.1:0', { security });
 * ```
 *
 * @group Testing
 */
export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rxcomm-certs-'));
  await Promise.all([makeCa(dir, 'ca'), makeCa(dir, 'otherCa')]);
  await Promise.all([
    makeSigned(dir, 'server', 'ca', 2),
    makeSigned(dir, 'client', 'ca', 2),
    makeSigned(dir, 'expired', 'ca', -1),
    makeSigned(dir, 'stranger', 'otherCa', 2),
  ]);
  const names = ['ca', 'server', 'client', 'expired', 'otherCa', 'stranger'] as const;
  const pairs = await Promise.all(names.map((name) => read(dir, name)));
  const [ca, server, client, expired, otherCa, stranger] = pairs;
  return { dir, ca, server, client, expired, otherCa, stranger, remove: () => fs.rm(dir, { recursive: true, force: true }) };
}
