/**
 * wss://: the ws framing over TLS, verified exactly as tls:// is (mutual TLS by default,
 * the same fatal certificate failures), plus the browser-facing setup without client
 * certificates. The framing itself is ws-spec.ts's; here only what TLS changes.
 */
import * as net from 'node:net';
import * as tls from 'node:tls';
import { filter, firstValueFrom, type Subscription } from 'rxjs';
import { WebSocket } from 'ws';
import {
  CommClosedError,
  ConfigError,
  connect,
  daskCodec,
  FatalCommClosedError,
  listen,
  type Comm,
  type CommStatus,
  type ListenConfig,
  type SecurityConfig,
} from 'rxcomm';
import {
  GOLDEN_WS_ACCEPT,
  GOLDEN_WS_CLIENT_CLOSE_FRAME,
  GOLDEN_WS_CLIENT_MESSAGES,
  GOLDEN_WS_DECODED,
  GOLDEN_WS_SERVER_CLOSE_FRAME,
  GOLDEN_WS_SERVER_COUNT_FRAME,
  upgradeRequest,
} from '../fixtures/golden/ws-dask-2022.12.1';
import { security, testCertificates } from '../helpers/certs';
import { failedConnect } from '../helpers/failed-connect';

const codec = daskCodec({ deserialize: false });

const waitFor = async (check: () => boolean) => {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5));
};

/** Listeners still open, stopped after each test even when it fails. */
const running = new Set<() => void>();
afterEach(() => {
  for (const stop of [...running]) stop();
});

/** An echo listener on wss, with its rejections and the comms it accepted. */
async function echoServer(config: ListenConfig = { security: security('server') }) {
  const listener = listen('wss://127.0.0.1:0', config);
  const rejected: CommStatus[] = [];
  const comms: Comm[] = [];
  const rejected$ = listener.status$.pipe(filter((e) => e.type === 'listen:rejected'));
  const events: Subscription = rejected$.subscribe((e) => rejected.push(e));
  const serving = listener.subscribe((comm) => {
    comms.push(comm);
    comm.read$.subscribe({ next: (message) => void comm.write(message).catch(() => undefined), error: () => undefined });
  });
  const { contactAddress, listenAddress } = await firstValueFrom(listener.bound$);
  const port = Number(contactAddress.split(':').pop());
  const stop = () => {
    running.delete(stop);
    serving.unsubscribe();
    events.unsubscribe();
    comms.forEach((comm) => void comm.close());
  };
  running.add(stop);
  return {
    address: contactAddress,
    listenAddress,
    port,
    rejected,
    comms,
    nextRejection: () => firstValueFrom(rejected$) as Promise<Extract<CommStatus, { type: 'listen:rejected' }>>,
    /** Proves the listener still serves a well-behaved client. */
    async stillServes(client: SecurityConfig = security('client')) {
      const comm = await firstValueFrom(connect(contactAddress, { security: client, timeout: 10_000 }));
      await comm.write('still here');
      expect(await comm.read()).toBe('still here');
      await comm.close();
    },
    stop,
  };
}

describe('wss', () => {
  it('should connect with mutual TLS and expose the peer certificate and cipher', async () => {
    const server = await echoServer();
    const comm = await firstValueFrom(connect(server.address, { security: security('client') }));
    await comm.write({ secret: Buffer.from('hello') });
    expect(await comm.read()).toEqual({ secret: Buffer.from('hello') });
    expect(comm.peerAddress).toBe(server.address);
    expect(comm.localAddress).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const cipher = comm.extraInfo.cipher as { name: string; protocol: string; bits: number };
    expect(cipher.protocol).toMatch(/^TLSv1\.[23]$/);
    expect(typeof cipher.name).toBe('string');
    expect([128, 256]).toContain(cipher.bits);
    expect((comm.extraInfo.peercert as tls.PeerCertificate).subject.CN).toBe('rxcomm test server');
    // and the listener's comm sees the client's certificate
    await waitFor(() => server.comms.length === 1);
    expect((server.comms[0].extraInfo.peercert as tls.PeerCertificate).subject.CN).toBe('rxcomm test client');
    await comm.close();
    server.stop();
  });

  it('should speak the golden ws bytes inside TLS', async () => {
    const server = await echoServer();
    const certs = testCertificates();
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write(Buffer.concat([upgradeRequest(server.port), GOLDEN_WS_CLIENT_MESSAGES]));
    const head = () => Buffer.concat(chunks).indexOf('\r\n\r\n');
    // 101, then count + handshake and count + echoed identity request: two count frames at least
    await waitFor(() => head() >= 0 && Buffer.concat(chunks).subarray(head() + 4).length >= 2 * 10 + 2 + 42 + 2 + 20);
    const bytes = Buffer.concat(chunks);
    const [statusLine, ...headers] = bytes.subarray(0, head()).toString('latin1').split('\r\n');
    expect(statusLine).toBe('HTTP/1.1 101 Switching Protocols');
    expect(headers).toContainEqual(`Sec-WebSocket-Accept: ${GOLDEN_WS_ACCEPT}`);
    const frames = bytes.subarray(head() + 4);
    expect(frames.subarray(0, 10)).toEqual(GOLDEN_WS_SERVER_COUNT_FRAME);
    const handshakeLength = frames[11];
    expect(codec.decode([frames.subarray(12, 12 + handshakeLength)])).toMatchObject({ compression: null, 'pickle-protocol': 5 });
    const echo = frames.subarray(12 + handshakeLength);
    expect(echo.subarray(0, 10)).toEqual(GOLDEN_WS_SERVER_COUNT_FRAME);
    expect(codec.decode([echo.subarray(12, 12 + echo[11])])).toEqual(GOLDEN_WS_DECODED.identityRequest);
    const before = Buffer.concat(chunks).length;
    socket.write(GOLDEN_WS_CLIENT_CLOSE_FRAME);
    await closed;
    expect(Buffer.concat(chunks).subarray(before)).toEqual(GOLDEN_WS_SERVER_CLOSE_FRAME);
    server.stop();
  });

  it('should refuse a client without a certificate at once, saying why, without retrying', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error, retries } = await failedConnect(server.address, { ca: testCertificates().ca.cert });
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/certificate/i);
    expect(error.message).toMatch(/refused/);
    expect(retries).toBe(0);
    expect(await rejection).toMatchObject({ type: 'listen:rejected', listenAddress: server.listenAddress });
    await server.stillServes();
    server.stop();
  });

  it('should refuse a client whose certificate another CA signed, without retrying', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error, retries } = await failedConnect(server.address, security('stranger'));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(retries).toBe(0);
    expect(await rejection).toMatchObject({ type: 'listen:rejected' });
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

  it('should verify the host name only when asked', async () => {
    const server = await echoServer();
    const byName = await firstValueFrom(connect(`wss://localhost:${server.port}`, { security: security('client', { checkHostname: true }) }));
    await byName.close();
    const { error } = await failedConnect(server.address, security('client', { checkHostname: true, serverName: 'example.invalid' }));
    expect(error).toBeInstanceOf(FatalCommClosedError);
    expect(error.message).toMatch(/ALTNAME|does not match/i);
    server.stop();
  });

  it('should let a client with only a CA connect when the listener does not require client certificates', async () => {
    const server = await echoServer({ security: { ...security('server'), requireClientCertificate: false } });
    const comm = await firstValueFrom(connect(server.address, { security: { ca: testCertificates().ca.cert } }));
    await comm.write({ from: 'a browser-like client' });
    expect(await comm.read()).toEqual({ from: 'a browser-like client' });
    expect((comm.extraInfo.peercert as tls.PeerCertificate).subject.CN).toBe('rxcomm test server');
    await waitFor(() => server.comms.length === 1);
    expect(server.comms[0].extraInfo.peercert).toEqual({}); // no client certificate asked for, none given
    await comm.close();
    expect(server.rejected).toEqual([]);
    server.stop();
  });

  it('should still refuse cross-origin pages over wss with 403', async () => {
    const server = await echoServer({ security: { ...security('server'), requireClientCertificate: false } });
    const rejection = server.nextRejection();
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`wss://127.0.0.1:${server.port}/`, { ca: testCertificates().ca.cert, origin: 'https://evil.example' });
      ws.once('open', () => {
        ws.terminate();
        reject(new Error('a cross-origin page was let in'));
      });
      ws.once('unexpected-response', (request, response) => {
        response.resume();
        request.destroy();
        resolve(response.statusCode ?? 0);
      });
      ws.once('error', reject);
    });
    expect(status).toBe(403);
    expect((await rejection).error.message).toContain('https://evil.example');
    server.stop();
  });

  it('should answer an upgrade whose request target is not a URL with an HTTP error, even from a client without a certificate', async () => {
    // The client certificate is checked after the upgrade: anyone who completes TLS reaches it.
    const server = await echoServer({ security: security('server'), handshakeTimeout: 1000 });
    const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: testCertificates().ca.cert });
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('error', () => undefined);
    const closed = new Promise((resolve) => socket.on('close', resolve));
    await new Promise((resolve) => socket.once('secureConnect', resolve));
    socket.write(upgradeRequest(server.port).toString('latin1').replace('GET / ', 'GET http://[ '));
    await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 3000))]);
    socket.destroy();
    expect(Buffer.concat(chunks).toString('latin1')).toMatch(/^HTTP\/1\.1 4\d\d /);
    await server.stillServes();
    server.stop();
  });

  it('should say what is missing when wss:// has no settings', async () => {
    await expect(firstValueFrom(connect('wss://127.0.0.1:1'))).rejects.toThrow(
      new ConfigError('wss:// needs TLS settings to connect: security.ca is missing'),
    );
    await expect(listen('wss://127.0.0.1:0').start()).rejects.toThrow(
      new ConfigError('wss:// needs TLS settings to listen: security.ca, security.cert, security.key are missing'),
    );
    await expect(listen('wss://127.0.0.1:0', { security: { requireClientCertificate: false } }).start()).rejects.toThrow(
      new ConfigError('wss:// needs TLS settings to listen: security.cert, security.key are missing'),
    );
  });

  it('should fail, not hang, when a plaintext ws client connects to a wss listener', async () => {
    const server = await echoServer();
    const rejection = server.nextRejection();
    const { error } = await failedConnect(`ws://127.0.0.1:${server.port}`, undefined, 1000);
    expect(error).toBeInstanceOf(CommClosedError);
    expect(await rejection).toMatchObject({ type: 'listen:rejected' });
    await server.stillServes();
    server.stop();
  });

  it('should fail within its timeout when a wss client connects to a plaintext ws listener', async () => {
    const listener = listen('ws://127.0.0.1:0');
    const serving = listener.subscribe((comm) => comm.read$.subscribe(comm));
    const stop = () => {
      running.delete(stop);
      serving.unsubscribe();
    };
    running.add(stop);
    const { contactAddress } = await firstValueFrom(listener.bound$);
    // Retried, as tls:// and Dask retry a TLS record error (EPROTO): until the timeout, not forever.
    const { error } = await failedConnect(contactAddress.replace('ws://', 'wss://'), security('client'), 1000);
    expect(error).toBeInstanceOf(CommClosedError);
    expect(String((error.cause as Error | undefined)?.message)).toMatch(/EPROTO|SSL|TLS/);
    stop();
  });

  it('should drop a client that never starts its TLS handshake, within the handshake timeout', async () => {
    const server = await echoServer({ security: security('server'), handshakeTimeout: 300 });
    const rejection = server.nextRejection();
    const silent = net.connect({ host: '127.0.0.1', port: server.port });
    silent.on('error', () => undefined);
    const closed = new Promise((resolve) => silent.on('close', resolve));
    const event = await rejection;
    expect(event.error.message).toMatch(/within 300 ms/);
    await closed;
    await server.stillServes();
    server.stop();
  });

  it('should not drop an idle upgraded wss comm after the handshake timeout', async () => {
    const server = await echoServer({ security: security('server'), handshakeTimeout: 300 });
    const comm = await firstValueFrom(connect(server.address, { security: security('client') }));
    await new Promise((resolve) => setTimeout(resolve, 900));
    await comm.write('still open');
    expect(await comm.read()).toBe('still open');
    expect(server.rejected).toEqual([]);
    await comm.close();
    server.stop();
  });

  it('should refuse ws:// but not wss:// when encryption is required', async () => {
    const required = { security: security('server', { requireEncryption: true }) };
    expect(() => connect('ws://127.0.0.1:1', required)).not.toThrow(); // cold: it fails on subscribe
    await expect(firstValueFrom(connect('ws://127.0.0.1:1', required))).rejects.toThrow(
      new ConfigError("encryption required by security config, refusing communication from/to 'ws://127.0.0.1:1'"),
    );
    await expect(listen('ws://127.0.0.1:0', required).start()).rejects.toBeInstanceOf(ConfigError);
    const server = await echoServer(required);
    await server.stillServes(security('client', { requireEncryption: true }));
    server.stop();
  });
});
