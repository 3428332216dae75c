/**
 * The transports the interop specs run over, with what each side needs: rxcomm's
 * settings (listen / connect) and dask_peer.py's arguments (server / client role).
 *
 * TLS is mutual on both sides. The Python peer takes one certificate for every role
 * (`--tls CA CERT KEY`): as a server it presents the test `server` certificate, as a client
 * the `client` one, so each side can check it saw the other's certificate.
 */
import { X509Certificate } from 'node:crypto';
import { firstValueFrom } from 'rxjs';
import { type Comm, connect, type ConnectConfig, type ListenConfig } from 'rxcomm';
import { security, testCertificates } from '../helpers/certs';
import { type ReadyLine, startServer, stopAllPeers, tlsArgs } from './dask-peer';

export interface InteropTransport {
  name: 'tcp' | 'tls';
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
    listenAddress: 'tcp://127.0.0.1:0',
    rxListen: () => ({}),
    rxConnect: () => ({}),
    pyServer: () => [],
    pyClient: () => [],
  },
  {
    name: 'tls',
    listenAddress: 'tls://127.0.0.1:0',
    rxListen: () => ({ security: security('server') }),
    rxConnect: () => ({ security: security('client') }),
    pyServer: () => {
      const { ca, server } = testCertificates();
      return tlsArgs({ ca: ca.certFile, cert: server.certFile, key: server.keyFile });
    },
    pyClient: () => {
      const { ca, client } = testCertificates();
      return tlsArgs({ ca: ca.certFile, cert: client.certFile, key: client.keyFile });
    },
  },
];

/** SHA-256 fingerprint (Node's `AA:BB:...` form) of a test certificate. */
export function fingerprint(who: 'server' | 'client'): string {
  return new X509Certificate(testCertificates()[who].cert).fingerprint256;
}

/**
 * Checks a tls comm's `extraInfo` the way Dask fills `extra_info`: the peer certificate
 * (here: which one, by fingerprint) and the cipher (name, protocol, bits).
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
