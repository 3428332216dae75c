/**
 * Interop 3 (and ws-3 over ws, wss): rxcomm's connect() against a Python
 * `distributed.comm.listen` echo server (`dask_peer.py echo-listen`, dialed on 127.0.0.1
 * even where Dask's ws listener advertises the LAN address), sending the interop message set built in TypeScript
 * (message-set.ts, a mirror of interop/message_set.md) and checking every reply against
 * what was sent by message_set.md's equality (NaN equals NaN; bigint and number by kind,
 * as rxcomm decodes ints beyond ±2^53 to bigint; Map keys structurally).
 *
 * And the byte-exact check: rxcomm's frame 0 for each message is the very msgpack Python
 * writes (`dask_peer.py message-set`), compared by SHA-256 (and hex where Python prints it).
 */
import { createHash } from 'node:crypto';
import { daskCodec } from 'rxcomm';
import { describeInterop, livePeerCount, runClient, stopAllPeers } from './dask-peer';
import { expectTlsExtraInfo, interopTransports, usePythonServer } from './interop-transports';
import { firstDifference, messageSet, PYTHON_FRAME0 } from './message-set';

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/** Rejects if `promise` takes longer than `ms`. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

describeInterop('rxcomm client against a Python echo listener', () => {
  afterAll(async () => {
    await stopAllPeers();
    expect(livePeerCount()).toBe(0);
  });

  describe("frame 0 of every message, against Python's msgpack (message-set)", () => {
    it("should encode each message to exactly Python's bytes", async () => {
      const run = await runClient(['message-set', '--max-hex', '4096'], 60_000);
      expect(run.code).toBe(0);
      const python = run.lines as Array<{ name: string; frame0_len: number; frame0_sha256: string; frame0_hex?: string }>;
      const ours = messageSet();
      // The mirror is complete and in Python's order.
      expect(ours.map(([name]) => name)).toEqual(python.map((line) => line.name));
      // Python's bytes are still the ones message_set.md documents (the mirror's source).
      expect(Object.fromEntries(python.map((line) => [line.name, { length: line.frame0_len, sha256: line.frame0_sha256 }]))).toEqual(
        PYTHON_FRAME0,
      );

      // No message legitimately differs: every map is built with Python's key order (no
      // integer-like string keys, which a JS object would move first), every float in the
      // set is non-integral and goes out as float64 (cb), ints beyond 2^32 go out as
      // uint64/int64 as Python writes them, and bin is bin. So all must match.
      const codec = daskCodec({ deserialize: true });
      const differing: Array<Record<string, unknown>> = [];
      for (const [i, [name, message]] of ours.entries()) {
        const frames = codec.encode(message);
        expect(frames).toHaveLength(1); // plain data: frame 0 only
        const frame0 = Buffer.from(frames[0]);
        const expected = python[i];
        if (frame0.length !== expected.frame0_len || sha256(frame0) !== expected.frame0_sha256) {
          const entry: Record<string, unknown> = { name, ourLength: frame0.length, pythonLength: expected.frame0_len };
          if (expected.frame0_hex !== undefined) {
            const theirs = Buffer.from(expected.frame0_hex, 'hex');
            let at = 0;
            while (at < theirs.length && at < frame0.length && theirs[at] === frame0[at]) at++;
            Object.assign(entry, { firstDifferenceAt: at, ours: frame0.toString('hex'), python: expected.frame0_hex });
          }
          differing.push(entry);
        }
      }
      expect(differing).toEqual([]);
    }, 60_000);
  });

  describe.each(interopTransports)('over $name', (transport) => {
    const server = usePythonServer('echo-listen', transport);
    const connectToEcho = server.connect;

    it('should get every message of the set back equal to what it sent', async () => {
      let comm = await connectToEcho();
      const failed: Array<{ name: string; error: string }> = [];
      const replies = new Map<string, unknown>();
      for (const [name, message] of messageSet()) {
        try {
          await comm.write(message);
          const reply = await within(comm.read(), 30_000, name);
          replies.set(name, reply);
          const diff = firstDifference(message, reply);
          if (diff) failed.push({ name, error: diff });
        } catch (err) {
          failed.push({ name, error: String(err) });
          // Like the Python checker: a broken comm fails this message only; reconnect.
          await comm.close();
          comm = await connectToEcho();
        }
      }
      expect(failed).toEqual([]);
      expect(replies.size).toBe(40);

      // A few kinds spelled out, beyond the generic comparison.
      const value = (name: string) => (replies.get(name) as { value: unknown }).value;
      expect(value('int-2^53+1')).toBe(2n ** 53n + 1n);
      expect(value('int-neg2^63')).toBe(-(2n ** 63n));
      expect(value('int-2^31')).toBe(2 ** 31);
      expect(Number.isNaN(value('float-nan'))).toBe(true);
      expect(value('bin-empty')).toBeInstanceOf(Uint8Array);
      expect(value('str-empty')).toBe('');
      expect((value('bin-10MB') as Uint8Array).length).toBe(10_000_000);
      const tupleKeys = value('map-tuple-keys') as Map<unknown, unknown>;
      expect(tupleKeys).toBeInstanceOf(Map);
      expect([...tupleKeys.keys()]).toEqual([['x', 0, 1], ['y', 2], ['x'], [], ['z', ['w', 1]]]);
      const mixed = value('map-mixed-keys') as Map<unknown, unknown>;
      expect([...mixed.keys()].map((key) => (Buffer.isBuffer(key) ? 'bin' : Array.isArray(key) ? 'array' : typeof key))).toEqual([
        'string', 'number', 'bin', 'array', 'number', 'object', 'number',
      ]);
      expect(replies.get('toplevel-array')).toEqual([{ op: 'a', i: 0 }, { op: 'b', i: 1 }, { op: 'c', i: 2 }]);

      // Python re-encoded each reply in the key order it received; re-encoding what rxcomm
      // decoded gives Python's bytes again, so decoding lost nothing (not even key order).
      const codec = daskCodec({ deserialize: true });
      const notIdentical = [...replies]
        .filter(([name, reply]) => sha256(codec.encode(reply)[0]) !== PYTHON_FRAME0[name].sha256)
        .map(([name]) => name);
      expect(notIdentical).toEqual([]);
    }, 90_000);

    it('should pipeline the whole set and read the replies in order', async () => {
      const comm = await connectToEcho();
      const messages = messageSet();
      const writes = messages.map(([, message]) => comm.write(message));
      const replies: unknown[] = [];
      for (const [name] of messages) replies.push(await within(comm.read(), 30_000, name));
      await Promise.all(writes);
      const failed = messages
        .map(([name, message], i) => ({ name, error: firstDifference(message, replies[i]) }))
        .filter((entry) => entry.error !== null);
      expect(failed).toEqual([]);
    }, 90_000);

    it("should see the echo server's handshake (lz4 offered, none negotiated)", async () => {
      const comm = await connectToEcho();
      expect(comm.remoteInfo).toMatchObject({ 'pickle-protocol': 5, compression: 'lz4' });
      expect(comm.handshakeOptions.compression).toBeNull();
      if (transport.secure) expectTlsExtraInfo(comm.extraInfo, 'server');
      expect(comm.peerAddress).toBe(server.ready().address);
    });
  });
});
