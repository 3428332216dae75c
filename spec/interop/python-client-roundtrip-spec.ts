/**
 * Interop 2 (tcp), 5b (tls) and ws-2 (ws, wss): Python's `distributed.comm.connect` against an rxcomm
 * listener that echoes every message (`dask_peer.py roundtrip ADDRESS`). The Python
 * checker sends the 40-message interop set (interop/message_set.md: every msgpack type,
 * a 10 MB bin inline in frame 0, int/tuple/bytes/mixed map keys, 50 nested maps, a bare
 * top-level array) one at a time and checks each reply type-exactly. Proves that rxcomm
 * accepts Dask's connector (which reads the handshake first), decodes everything Dask
 * writes, and re-encodes it so that Python reads back the same values. Over ws/wss the
 * connector is Dask's Tornado websocket client (one binary message for the frame count,
 * then one per frame; frame 0 of `bin-10MB` is a single 10 MB message).
 */
import { firstValueFrom, type Subscription } from 'rxjs';
import { type Comm, listen } from 'rxcomm';
import { type ClientRun, describeInterop, livePeerCount, runClient, stopAllPeers } from './dask-peer';
import { expectPythonClientExtraInfo, expectTlsExtraInfo, interopTransports, type PythonExtraInfo } from './interop-transports';
import { messageSet } from './message-set';

/** The failing lines of a run, short enough for an assertion message. */
function failures(run: ClientRun): Array<{ name: unknown; error: unknown }> {
  return run.results.filter((line) => line.ok !== true).map((line) => ({ name: line.name, error: line.error }));
}

describeInterop('Python Dask client against an rxcomm echo listener', () => {
  afterEach(async () => {
    await stopAllPeers();
    expect(livePeerCount()).toBe(0);
  });

  describe.each(interopTransports)('over $name', (transport) => {
    let subscription: Subscription | undefined;
    const accepted: Comm[] = [];

    afterEach(async () => {
      subscription?.unsubscribe(); // stops the listener
      subscription = undefined;
      await Promise.all(accepted.splice(0).map((comm) => comm.close()));
    });

    /** An rxcomm echo server; resolves with its contact address. */
    async function echoListener(): Promise<string> {
      const listener = listen(transport.listenAddress, transport.rxListen());
      subscription = listener.subscribe((comm) => {
        accepted.push(comm);
        comm.read$.subscribe(comm);
      });
      return (await firstValueFrom(listener.bound$)).contactAddress;
    }

    it('should round-trip the whole interop message set for the Python checker', async () => {
      const address = await echoListener();
      expect(address.startsWith(`${transport.name}://127.0.0.1:`)).toBe(true);

      const run = await runClient(['roundtrip', address, '--timeout', '60', ...transport.pyClient()]);

      // Failing names and Python's first difference show up in the diff if this fails.
      expect({ code: run.code, failed: failures(run), summary: run.summary?.failed_names }).toEqual({
        code: 0,
        failed: [],
        summary: [],
      });
      expect(run.summary).toMatchObject({ ok: true, summary: true, total: 40, passed: 40, failed: 0 });
      expect(run.noise).toEqual([]);
      // Every message of the set, in order, each reported passed (none skipped or missing).
      expect(run.results.map((line) => line.name)).toEqual(messageSet().map(([name]) => name));
      for (const line of run.results) expect(line).toMatchObject({ ok: true });
      // One connection for the whole set (the checker reconnects only after a failure).
      expect(accepted).toHaveLength(1);
    }, 90_000);

    it('should send back frame 0 at the length Dask sent it, one frame per message', async () => {
      const address = await echoListener();
      const run = await runClient(['roundtrip', address, '--timeout', '60', ...transport.pyClient()]);
      expect(failures(run)).toEqual([]);
      // Same length both ways for every message: rxcomm re-encodes what it decoded the way
      // Python wrote it (same int/str/bin/float formats; no map in the set has integer-like
      // string keys, the one case where a JS object would reorder keys).
      const mismatched = run.results
        .filter((line) => JSON.stringify(line.recv_frames) !== JSON.stringify(line.sent_frames))
        .map((line) => ({ name: line.name, sent: line.sent_frames, recv: line.recv_frames }));
      expect(mismatched).toEqual([]);
      for (const line of run.results) expect(line.sent_frames).toHaveLength(1);
      const big = run.results.find((line) => line.name === 'bin-10MB');
      expect(big).toMatchObject({ sent_frames: [10_000_034], recv_frames: [10_000_034] });
    }, 90_000);

    it("should see Dask's handshake on the accepted comm", async () => {
      const address = await echoListener();
      const run = await runClient(['roundtrip', address, '--only', 'str-ascii', '--timeout', '30', ...transport.pyClient()]);
      expect(failures(run)).toEqual([]);
      expect(accepted).toHaveLength(1);
      const [comm] = accepted;
      expect(comm.remoteInfo).toMatchObject({ 'pickle-protocol': 5, compression: 'lz4' });
      expect(comm.handshakeOptions.compression).toBeNull();
      if (transport.secure) expectTlsExtraInfo(comm.extraInfo, 'client');
      // And Python's side of that comm: it dialed our address, and over tls/wss saw our
      // server certificate.
      const connection = run.summary?.connection as { peer_address?: string; extra_info?: PythonExtraInfo } | undefined;
      expect(connection?.peer_address).toBe(address);
      expectPythonClientExtraInfo(connection?.extra_info, transport);
    }, 60_000);
  });
});
