import * as net from 'node:net';
import * as tls from 'node:tls';
import { filter, firstValueFrom, type Subscription } from 'rxjs';
import {
  ConfigError,
  connect,
  FatalCommClosedError,
  listen,
  status$,
  type CommStatus,
  type SecurityConfig,
} from 'rxcomm';
import { security, testCertificates } from '../helpers/certs';
import { failedConnect } from '../helpers/failed-connect';

/** An echo listener on tls, with the status events it reports. */
async function echoServer(config: SecurityConfig = security('server'), handshakeTimeout = 30_000) {
  const listener = listen('tls://127.0.0.1:0', { security: config, handshakeTimeout });
  const rejected: CommStatus[] = [];
  const events: Subscription = status$.pipe(filter((e) => e.type === 'listen:rejected')).subscribe((e) => rejected.push(e));
  const serving = listener.subscribe((comm) => comm.read$.subscribe(comm));
  const { contactAddress } = await firstValueFrom(listener.bound$);
  const port = Number(contactAddress.split(':').pop());
  return {
    address: contactAddress,
    port,
    rejected,
    nextRejection: () => firstValueFrom(status$.pipe(filter((e) => e.type === 'listen:rejected'))),
    /** Proves the listener still serves a well-behaved client. */
    async stillServes() {
      const comm = await firstValueFrom(connect(contactAddress, { security: security('client') }));
      await comm.write('still here');
      expect(await comm.read()).toBe('still here');
      await comm.close();
    },
    stop() {
      serving.unsubscribe();
      events.unsubscribe();
    },
  };
}

describe('tls', () => {
  it('should connect with mutual TLS and expose the peer certificate and cipher', async () => {
    const server = await echoServer();
    const comm = await firstValueFrom(connect(server.address, { security: security('client') }));
    await comm.write({ secret: Buffer.from('hello') });
    expect(await comm.read()).toEqual({ secret: Buffer.from('hello') });
    const cipher = comm.extraInfo.cipher as { name: string; protocol: string; bits: number };
    expect(cipher.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(typeof cipher.name).toBe('string');
    expect([128, 256]).toContain(cipher.bits);
    expect((comm.extraInfo.peercert as tls.PeerCertificate).subject.CN).toBe('rxcomm test server');
    await comm.close();
    server.stop();
  });

  it('should fail at once, without retrying, when the client does not trust the listener', async () => {
    const server = await echoServer();
    const certs = testCertificates();
    const { error, retries } = await failedConnect(server.address, { ...security('client'), ca: certs.otherCa.cert });
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/SELF_SIGNED|UNABLE_TO_VERIFY|unable to verify/i);
    expect(retries).toBe(0);
    await server.stillServes();
    server.stop();
  });

  it('should refuse a client whose certificate another CA signed, and keep serving', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error, retries } = await failedConnect(server.address, security('stranger'));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(retries).toBe(0);
    expect(await rejection).toMatchObject({ type: 'listen:rejected' });
    await server.stillServes();
    server.stop();
  });

  it('should refuse a client without a certificate', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error, retries } = await failedConnect(server.address, { ca: testCertificates().ca.cert });
    expect(error).toBeInstanceOf(FatalCommClosedError);
    // It says the certificate was missing, not that its issuer is unknown.
    expect(error.message).toMatch(/presented none/);
    expect(error.message).not.toMatch(/UNABLE_TO_GET_ISSUER_CERT/);
    expect(retries).toBe(0);
    await rejection;
    await server.stillServes();
    server.stop();
  });

  it('should refuse an expired client certificate', async () => {
    const server = await echoServer();
    const { error, retries } = await failedConnect(server.address, security('expired'));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/EXPIRED|expired/);
    expect(retries).toBe(0);
    server.stop();
  });

  it('should not connect to a listener whose certificate has expired', async () => {
    const server = await echoServer(security('expired'));
    const { error } = await failedConnect(server.address, security('client'));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/CERT_HAS_EXPIRED/);
    server.stop();
  });

  it('should fail at once on a certificate that does not match its key', async () => {
    const certs = testCertificates();
    const { error } = await failedConnect('tls://127.0.0.1:1', { ca: certs.ca.cert, cert: certs.client.cert, key: certs.server.key });
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/key/i);
  });

  it('should refuse TLS 1.1', async () => {
    const server = await echoServer();
    const { error, retries } = await failedConnect(server.address, { ...security('client'), minVersion: 'TLSv1', maxVersion: 'TLSv1.1' });
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(retries).toBe(0);
    await server.stillServes();
    server.stop();
  });

  it('should verify the host name only when asked', async () => {
    const server = await echoServer();
    const byName = `tls://localhost:${server.port}`;
    const ok = await firstValueFrom(connect(byName, { security: security('client', { checkHostname: true }) }));
    await ok.close();
    const { error } = await failedConnect(server.address, security('client', { checkHostname: true, serverName: 'example.invalid' }));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/ALTNAME|does not match/i);
    server.stop();
  });

  it('should refuse a plaintext Dask client at once, saying to use tls://, and keep serving', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error, retries } = await failedConnect(`tcp://127.0.0.1:${server.port}`, undefined, 20_000);
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/this is a tls:\/\/ listener and the client spoke plaintext/);
    expect(retries).toBe(0); // not retried until the timeout
    expect(await rejection).toMatchObject({ type: 'listen:rejected' });
    await server.stillServes();
    server.stop();
  });

  it('should drop a client that never starts its TLS handshake, within the handshake timeout', async () => {
    const server = await echoServer(security('server'), 300);
    const rejection = server.nextRejection();
    const silent = net.connect({ host: '127.0.0.1', port: server.port });
    silent.on('error', () => undefined);
    const closed = new Promise((resolve) => silent.on('close', resolve));
    const event = await rejection;
    expect((event as { error: Error }).error.message).toMatch(/TLS handshake not completed within 300 ms/);
    await closed;
    await server.stillServes();
    server.stop();
  });

  it('should say what is missing when tls:// has no settings', async () => {
    await expect(firstValueFrom(connect('tls://127.0.0.1:1'))).rejects.toThrow(
      new ConfigError('tls:// needs TLS settings to connect: security.ca is missing'),
    );
    await expect(listen('tls://127.0.0.1:0').start()).rejects.toThrow(
      'tls:// needs TLS settings to listen: security.ca, security.cert, security.key are missing',
    );
  });

  it('should refuse plaintext schemes when encryption is required', async () => {
    const config = { security: security('client', { requireEncryption: true }) };
    await expect(firstValueFrom(connect('tcp://127.0.0.1:1', config))).rejects.toThrow(
      new ConfigError("encryption required by security config, refusing communication from/to 'tcp://127.0.0.1:1'"),
    );
    await expect(listen('tcp://127.0.0.1:0', config).start()).rejects.toBeInstanceOf(ConfigError);
  });
});
