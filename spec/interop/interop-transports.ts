/**
 * The transports the interop specs run over, with what each side needs: rxcomm's
 * settings (listen / connect) and dask_peer.py's arguments (server / client role).
 *
 * TLS is mutual on both sides. The Python peer takes one certificate for every role
 * (`--tls CA CERT KEY`): as a server it presents the test `server` certificate, as a client
 * the `client` one, so each side can check it saw the other's certificate.
 *
 * ws:// and wss:// (Dask's `distributed/comm/ws.py`): the Python peer listens with `--ws`
 * (plus `--tls` for wss, the same certificates and Security as tls); as a client it takes
 * the scheme from the address. Dask's ws listener binds every interface and advertises
 * this machine's LAN address, so dask_peer.py's ready line gives `address` =
 * `ws://127.0.0.1:<port>` to dial (traffic stays on loopback) and the advertised one as
 * `advertised`. Dask's wss client checks the certificate chain, not the name (its
 * contexts have `check_hostname = False`), and sends `Host: 127.0.0.1:<port>` (no
 * `server_hostname` in our Security); the test certificates are valid for 127.0.0.1
 * anyway, so rxcomm's name check passes too.
 */
import { X509Certificate } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import { type Comm, connect, type ConnectConfig, type ListenConfig } from 'rxcomm';
import { security, testCertificates } from '../helpers/certs';
import { type ReadyLine, startServer, stopAllPeers, tlsArgs } from './dask-peer';

export interface InteropTransport {
  name: 'tcp' | 'tls' | 'ws' | 'wss';
  /** Encrypted with (mutual) TLS: tls and wss. */
  secure: boolean;
  /** Where an rxcomm listener binds. */
  listenAddress: string;
  /** rxcomm listener settings. */
  rxListen(): ListenConfig;
  /** rxcomm connect settings. */
  rxConnect(): ConnectConfig;
  /** dask_peer.py arguments when Python listens (scheduler, echo-listen). */
  pyServer(): string[];
  /** dask_peer.py arguments when Python connects (roundtrip, serialized-roundtrip). */
  pyClient(): string[];
}

export const interopTransports: InteropTransport[] = [
  {
    name: 'tcp',
    secure: false,
    listenAddress: 'tcp://127.0.0.1:0',
    rxListen: () => ({}),
    rxConnect: () => ({}),
    pyServer: () => [],
    pyClient: () => [],
  },
  {
    name: 'tls',
    secure: true,
    listenAddress: 'tls://127.0.0.1:0',
    rxListen: () => ({ security: security('server') }),
    rxConnect: () => ({ security: security('client') }),
    pyServer: () => pythonTls('server'),
    pyClient: () => pythonTls('client'),
  },
  {
    name: 'ws',
    secure: false,
    listenAddress: 'ws://127.0.0.1:0',
    rxListen: () => ({}),
    rxConnect: () => ({}),
    pyServer: () => ['--ws'],
    pyClient: () => [],
  },
  {
    name: 'wss',
    secure: true,
    listenAddress: 'wss://127.0.0.1:0',
    rxListen: () => ({ security: security('server') }),
    rxConnect: () => ({ security: security('client') }),
    pyServer: () => ['--ws', ...pythonTls('server')],
    pyClient: () => pythonTls('client'),
  },
];

/** `--tls CA CERT KEY` for the Python peer presenting `who`'s certificate. */
function pythonTls(who: 'server' | 'client'): string[] {
  const certs = testCertificates();
  return tlsArgs({ ca: certs.ca.certFile, cert: certs[who].certFile, key: certs[who].keyFile });
}

/** SHA-256 fingerprint (Node's `AA:BB:...` form) of a test certificate. */
export function fingerprint(who: 'server' | 'client'): string {
  return new X509Certificate(testCertificates()[who].cert).fingerprint256;
}

/**
 * Checks a tls or wss comm's `extraInfo` the way Dask fills a tls (and wss client)
 * comm's `extra_info`: the peer certificate (here: which one, by fingerprint) and the
 * cipher (name, protocol, bits).
 */
export function expectTlsExtraInfo(extraInfo: Record<string, unknown>, peer: 'server' | 'client'): void {
  const cipher = extraInfo.cipher as { name?: unknown; protocol?: unknown; bits?: unknown } | undefined;
  expect(cipher).toBeDefined();
  expect(typeof cipher?.name).toBe('string');
  expect(String(cipher?.name).length).toBeGreaterThan(0);
  expect(['TLSv1.2', 'TLSv1.3']).toContain(cipher?.protocol);
  const peercert = extraInfo.peercert as { fingerprint256?: string; subject?: Record<string, string> } | undefined;
  expect(peercert).toBeDefined();
  expect(peercert?.fingerprint256).toBe(fingerprint(peer));
  expect(peercert?.subject?.CN).toBe(`rxcomm test ${peer}`);
}

/**
 * What dask_peer.py reports of a Dask comm's `extra_info` (`describe_extra_info`): the
 * keys, and for `peercert`/`cipher` the subject and the cipher triple.
 */
export interface PythonExtraInfo {
  keys: string[];
  peercert?: { subject: Record<string, string>; subjectAltName: string[][] };
  cipher?: { name: string; protocol: string; bits: number };
}

/**
 * Checks what a Python *client* comm reports in `extra_info` after connecting to rxcomm:
 * over tls:// and wss:// Dask fills `peercert` and `cipher` (here: rxcomm presented the
 * `server` certificate), over tcp:// and ws:// nothing. (Dask's server-side ws/wss comm,
 * `WSHandlerComm`, reports nothing either, so there is nothing to check that way.)
 */
export function expectPythonClientExtraInfo(extraInfo: PythonExtraInfo | undefined, transport: InteropTransport): void {
  if (!transport.secure) {
    expect(extraInfo).toEqual({ keys: [] });
    return;
  }
  expect(extraInfo?.keys).toEqual(['cipher', 'peercert']);
  expect(extraInfo?.peercert?.subject).toEqual({ commonName: 'rxcomm test server' });
  expect(['TLSv1.2', 'TLSv1.3']).toContain(extraInfo?.cipher?.protocol);
  expect(extraInfo?.cipher?.name).toEqual(expect.any(String));
  expect(extraInfo?.cipher?.bits).toBeGreaterThanOrEqual(128);
}

/**
 * For the enclosing describe: a Python server (`mode`, e.g. 'scheduler') started once on
 * `transport`, and rxcomm comms to it; the comms a test opened are closed after it, and
 * the server after the describe.
 */
export function usePythonServer(mode: string, transport: InteropTransport): { ready(): ReadyLine; connect(): Promise<Comm> } {
  let ready: ReadyLine;
  const opened: Comm[] = [];

  beforeAll(async () => {
    ({ ready } = await startServer([mode, ...transport.pyServer()]));
  }, 60_000);

  afterEach(async () => {
    await Promise.all(opened.splice(0).map((comm) => comm.close()));
  });

  afterAll(async () => {
    await stopAllPeers();
  });

  return {
    ready: () => ready,
    async connect() {
      const comm = await firstValueFrom(connect(ready.address, { timeout: 10_000, ...transport.rxConnect() }));
      opened.push(comm);
      return comm;
    },
  };
}
