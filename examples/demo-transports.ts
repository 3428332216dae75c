/** The transports the demo runs on: all embedded, nothing outside this machine's loopback. */
import type { ConnectConfig } from 'rxcomm';
import { createTestCertificates, type TestCertificates } from 'rxcomm/testing';

export interface DemoTransport {
  name: string;
  address: string;
  config: ConnectConfig;
}

let certificates: TestCertificates | undefined;

export async function demoTransports(): Promise<DemoTransport[]> {
  const transports: DemoTransport[] = [
    { name: 'inproc (messages by reference)', address: 'inproc://', config: {} },
    { name: 'tcp (Dask framing + msgpack, loopback)', address: 'tcp://127.0.0.1:0', config: {} },
    { name: "ws (Dask's WebSocket framing, loopback)", address: 'ws://127.0.0.1:0', config: {} },
  ];
  try {
    certificates = await createTestCertificates();
    // One certificate signed by the demo CA serves both ends (mutual TLS).
    const security = { ca: certificates.ca.cert, cert: certificates.server.cert, key: certificates.server.key };
    transports.push({ name: 'tls (mutual TLS, certificates made for the demo)', address: 'tls://127.0.0.1:0', config: { security } });
    transports.push({ name: 'wss (WebSocket over the same mutual TLS)', address: 'wss://127.0.0.1:0', config: { security } });
  } catch (err) {
    console.log(`(skipping tls: ${(err as Error).message})`);
  }
  return transports;
}

/** Deletes the demo's certificates. */
export async function cleanUpDemo(): Promise<void> {
  await certificates?.remove();
}
