/**
 * Interop 1 (tcp), 5a (tls) and ws-1 (ws, wss): rxcomm's connect() against a real
 * `distributed.Scheduler` (Dask 2022.12.1, `dask_peer.py scheduler`) on loopback. Proves
 * the handshake both ways (Dask drops a peer whose handshake lacks
 * `pickle-protocol`/`compression`), the framing and msgpack of a request and of a real
 * scheduler reply, and mutual TLS with Dask (tls://, wss://).
 *
 * Over ws/wss Dask's listener binds every interface and the Scheduler advertises this
 * machine's LAN address (`ready.advertised`, what `identity` reports); we dial
 * `127.0.0.1:<same port>` (`ready.address`) so the traffic stays on loopback.
 */
import { describeInterop, livePeerCount, stopAllPeers } from './dask-peer';
import { expectTlsExtraInfo, interopTransports, usePythonServer } from './interop-transports';

describeInterop('rxcomm client against a real distributed.Scheduler', () => {
  afterAll(async () => {
    await stopAllPeers();
    expect(livePeerCount()).toBe(0);
  });

  describe.each(interopTransports)('over $name', (transport) => {
    const server = usePythonServer('scheduler', transport);
    const connectToScheduler = server.connect;

    it(`should listen on a ${transport.name}:// loopback address`, () => {
      expect(server.ready().address).toMatch(new RegExp(`^${transport.name}://127\\.0\\.0\\.1:\\d+$`));
      const port = server.ready().address.split(':').pop();
      if (transport.name === 'tcp' || transport.name === 'tls') {
        expect(server.ready().advertised).toBe(server.ready().address);
      } else {
        // Dask's ws listener advertises a concrete address of this machine (its LAN
        // address; 127.0.0.1 only on a machine without one), on the port we dial.
        expect(server.ready().advertised).toMatch(new RegExp(`^${transport.name}://[^/]+:${port}$`));
      }
    });

    it("should get the Scheduler's identity for {op: 'identity', reply: true}", async () => {
      const comm = await connectToScheduler();
      await comm.write({ op: 'identity', reply: true });
      const reply = (await comm.read()) as Record<string, unknown>;
      // A string-keyed map decodes to a plain object.
      expect(Object.getPrototypeOf(reply)).toBe(Object.prototype);
      expect(reply.type).toBe('Scheduler');
      expect(Object.keys(reply)).toEqual(expect.arrayContaining(['type', 'id', 'address', 'services', 'started', 'workers']));
      expect(reply.id).toBe(server.ready().id);
      expect(reply.address).toBe(server.ready().advertised); // == address except over ws/wss
      expect(typeof reply.started).toBe('number'); // a float timestamp
      expect(reply.workers).toEqual({});
      expect(typeof reply.services).toBe('object');
    });

    it("should keep Dask's handshake and negotiate no compression (we advertise null)", async () => {
      const comm = await connectToScheduler();
      expect(comm.remoteInfo['pickle-protocol']).toBe(5);
      expect(comm.remoteInfo.compression).toBe('lz4'); // Debian's Dask has lz4
      expect(comm.remoteInfo.python).toEqual([expect.any(Number), expect.any(Number), expect.any(Number)]);
      expect(comm.remoteInfo.address).toBe(comm.peerAddress);
      expect(comm.localInfo.compression).toBeNull();
      expect(comm.handshakeOptions.compression).toBeNull();
      expect(comm.handshakeOptions['pickle-protocol']).toBe(5);
      expect(comm.peerAddress).toBe(server.ready().address);
    });

    it('should answer several requests in order on one comm, and on a second comm', async () => {
      const first = await connectToScheduler();
      for (let i = 0; i < 3; i++) await first.write({ op: 'identity', reply: true });
      for (let i = 0; i < 3; i++) expect(((await first.read()) as { type: string }).type).toBe('Scheduler');
      const second = await connectToScheduler();
      await second.write({ op: 'identity', reply: true });
      expect(((await second.read()) as { id: string }).id).toBe(server.ready().id);
    });

    if (transport.secure) {
      it("should present the server's certificate and the cipher in extraInfo", async () => {
        const comm = await connectToScheduler();
        expectTlsExtraInfo(comm.extraInfo, 'server');
      });
    }
  });
});
