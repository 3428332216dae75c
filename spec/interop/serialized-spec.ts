/**
 * Interop 4: Dask's serialized payloads (`{"__Serialized__": k}` / `{"__Pickled__": k}`
 * pointing at a sub-header frame and its payload frames) through rxcomm with
 * `deserialize: false`, as a Dask scheduler forwards them.
 *
 * - Python → rxcomm → Python: `dask_peer.py serialized-roundtrip` sends `to_serialize(...)`
 *   (numpy arrays, bytes, a custom class, an int) and `ToPickle(...)` payloads, several
 *   in one message, to an rxcomm echo listener, and checks that each reply deserializes
 *   to the original. The listener records what it got: every payload arrives as an opaque
 *   `Serialized`/`Pickled`, and rxcomm's encoding of the message puts the very same bytes
 *   back on the wire (sub-header and payload frames, byte for byte).
 * - rxcomm → Python → rxcomm: payloads built in TypeScript go through a Python echo
 *   listener; with `--deserialize false` they come back byte-identical, with
 *   `--deserialize true` Python decodes rxcomm's msgpack-serialized payload to its value.
 */
import { firstValueFrom, type Subscription } from 'rxjs';
import { type Comm, connect, daskCodec, listen, Pickled, Serialized } from 'rxcomm';
import { type ClientRun, describeInterop, livePeerCount, type ReadyLine, runClient, startServer, stopAllPeers } from './dask-peer';
import { interopTransports } from './interop-transports';

/** A payload found in a decoded message, in the order the encoder meets it. */
interface FoundPayload {
  path: string;
  payload: Serialized | Pickled;
}

/** Depth-first, in key order: the order in which rxcomm's encoder numbers the frames. */
function findPayloads(value: unknown, path = '$', found: FoundPayload[] = []): FoundPayload[] {
  if (value instanceof Serialized || value instanceof Pickled) {
    found.push({ path, payload: value });
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => findPayloads(item, `${path}[${i}]`, found));
  } else if (value instanceof Map) {
    for (const [key, item] of value) findPayloads(item, `${path}[${String(key)}]`, found);
  } else if (value !== null && typeof value === 'object' && !ArrayBuffer.isView(value)) {
    for (const [key, item] of Object.entries(value)) findPayloads(item, `${path}.${key}`, found);
  }
  return found;
}

const same = (a: Uint8Array | undefined, b: Uint8Array | undefined): boolean =>
  a !== undefined && b !== undefined && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0;

/** What the recording listener saw of one message. */
interface Received {
  name: string;
  payloads: Array<{ path: string; kind: string; serializer?: unknown; frames: number[]; headerBytes: boolean }>;
  /** Frame lengths of rxcomm's encoding of the message as it will echo it. */
  reencodedLengths: number[];
  /** Problems with the byte-identity of the re-encoding (empty if identical). */
  notIdentical: string[];
}

function inspect(message: unknown): Received {
  const name = String((message as { name?: unknown }).name);
  const found = findPayloads(message);
  const frames = daskCodec({ deserialize: false }).encode(message);
  const notIdentical: string[] = [];
  let at = 1;
  for (const { path, payload } of found) {
    if (!same(frames[at], payload.headerBytes)) notIdentical.push(`${path}: sub-header frame ${at} is not the sub-header received`);
    payload.frames.forEach((frame, i) => {
      if (!same(frames[at + 1 + i], frame)) notIdentical.push(`${path}: payload frame ${at + 1 + i} differs from the one received`);
    });
    at += 1 + payload.frames.length;
  }
  if (at !== frames.length) notIdentical.push(`expected ${at} frames, the encoding has ${frames.length}`);
  return {
    name,
    payloads: found.map(({ path, payload }) => ({
      path,
      kind: payload.constructor.name,
      serializer: (payload.header as Record<string, unknown> | null)?.serializer,
      frames: payload.frames.map((frame) => frame.length),
      headerBytes: payload.headerBytes !== undefined,
    })),
    reencodedLengths: frames.map((frame) => frame.length),
    notIdentical,
  };
}

function failures(run: ClientRun): Array<{ name: unknown; error: unknown }> {
  return run.results.filter((line) => line.ok !== true).map((line) => ({ name: line.name, error: line.error }));
}

const CASES = [
  'serialize-numpy-arange',
  'serialize-numpy-random',
  'serialize-bytes-1MiB',
  'serialize-custom-pickle',
  'serialize-small-int',
  'to-pickle-custom',
  'to-pickle-numpy-random',
  'to-pickle-numpy-arange',
  'multi-payload',
];

describeInterop("Dask's serialized payloads through rxcomm with deserialize: false", () => {
  afterAll(async () => {
    await stopAllPeers();
    expect(livePeerCount()).toBe(0);
  });

  describe.each(interopTransports)('Python client through an rxcomm echo listener over $name', (transport) => {
    let subscription: Subscription | undefined;
    const accepted: Comm[] = [];

    afterEach(async () => {
      subscription?.unsubscribe();
      subscription = undefined;
      await Promise.all(accepted.splice(0).map((comm) => comm.close()));
      await stopAllPeers();
    });

    it('should hand every payload back intact, as opaque Serialized/Pickled forwarded byte for byte', async () => {
      const received: Received[] = [];
      const listener = listen(transport.listenAddress, { ...transport.rxListen(), deserialize: false });
      subscription = listener.subscribe((comm) => {
        accepted.push(comm);
        comm.read$.subscribe((message) => {
          received.push(inspect(message));
          comm.next(message);
        });
      });
      const { contactAddress } = await firstValueFrom(listener.bound$);

      const run = await runClient(['serialized-roundtrip', contactAddress, '--timeout', '60', ...transport.pyClient()]);

      // Python's side: every case deserialized back to the original.
      expect({ code: run.code, failed: failures(run) }).toEqual({ code: 0, failed: [] });
      // rxcomm advertises no compression, so nothing is compressed and Dask's ToPickle
      // lz4 bug (interop/README.md) cannot bite: no case is skipped, all 9 really ran.
      expect(run.summary).toMatchObject({ ok: true, total: 9, passed: 9, failed: 0, skipped: 0 });
      expect(run.results.map((line) => line.name)).toEqual(CASES);
      for (const line of run.results) {
        expect(line.skipped).toBeUndefined();
        const sent = line.sent as { lengths: number[]; sub_headers: unknown[] };
        const recv = line.recv as { lengths: number[]; sub_headers: unknown[] };
        // What Python read back is what it wrote: same frames, same sub-headers (unlike a
        // Python echo, which re-pickles ToPickle payloads).
        expect({ name: line.name, lengths: recv.lengths, subHeaders: recv.sub_headers }).toEqual({
          name: line.name,
          lengths: sent.lengths,
          subHeaders: sent.sub_headers,
        });
        expect(line.negotiated).toEqual({ 'pickle-protocol': 5, compression: null });
        // And rxcomm's re-encoding has Dask's frame lengths, frame 0 included.
        expect(received.find((r) => r.name === line.name)?.reencodedLengths).toEqual(sent.lengths);
      }

      // rxcomm's side: payloads stayed opaque and were re-encoded byte-identically.
      expect(received.map((r) => r.name)).toEqual(CASES);
      expect(received.filter((r) => r.notIdentical.length > 0)).toEqual([]);
      const byName = Object.fromEntries(received.map((r) => [r.name, r.payloads]));
      for (const name of CASES.filter((n) => n.startsWith('serialize-'))) {
        expect(byName[name]).toEqual([expect.objectContaining({ path: '$.data', kind: 'Serialized', headerBytes: true })]);
      }
      expect(byName['serialize-numpy-arange'][0]).toMatchObject({ serializer: 'dask', frames: [2_000_000] });
      expect(byName['serialize-numpy-random'][0]).toMatchObject({ serializer: 'dask', frames: [800_000] });
      expect(byName['serialize-custom-pickle'][0]).toMatchObject({ serializer: 'pickle' });
      for (const name of CASES.filter((n) => n.startsWith('to-pickle-'))) {
        expect(byName[name]).toEqual([expect.objectContaining({ path: '$.data', kind: 'Pickled', headerBytes: true })]);
      }
      expect(byName['to-pickle-numpy-arange'][0]).toMatchObject({ frames: [2_000_000] }); // out-of-band buffer
      expect(byName['multi-payload'].map(({ path, kind }) => [path, kind])).toEqual([
        ['$.a', 'Serialized'],
        ['$.b[0]', 'Serialized'],
        ['$.b[1]', 'Pickled'],
      ]);
    }, 90_000);
  });

  describe.each(interopTransports)('rxcomm client through a Python echo listener over $name', (transport) => {
    const opened: Comm[] = [];

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((comm) => comm.close()));
      await stopAllPeers();
    });

    async function echoComm(pythonDeserialize: 'true' | 'false'): Promise<{ comm: Comm; ready: ReadyLine }> {
      const { ready } = await startServer(['echo-listen', '--deserialize', pythonDeserialize, ...transport.pyServer()]);
      const comm = await firstValueFrom(connect(ready.address, { timeout: 10_000, deserialize: false, ...transport.rxConnect() }));
      opened.push(comm);
      return { comm, ready };
    }

    const msgpackBytes = (value: unknown): Buffer => Buffer.from(daskCodec({ deserialize: true }).encode(value)[0]);
    const msgpackHeader = () => ({ serializer: 'msgpack', 'split-num-sub-frames': [1], 'split-offsets': [0], compression: [null] });

    it('should get Serialized payloads back byte-identical from Dask with deserialize=False', async () => {
      const { comm } = await echoComm('false');
      const big = Buffer.alloc(3_000_000);
      for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 256;
      // An opaque payload Python must not touch: 'pickle' serializer, two frames, with a
      // split of [2]; Dask with deserialize=False never unpickles a __Serialized__ payload.
      const opaqueHeader = { serializer: 'pickle', writeable: [], 'split-num-sub-frames': [2], 'split-offsets': [0], compression: [null, null] };
      const opaque = new Serialized(opaqueHeader, [Buffer.from('not really a pickle'), big]);
      const packed = new Serialized(msgpackHeader(), [msgpackBytes({ x: [1, 2, 3], y: 'z' })]);
      await comm.write({ op: 'forward', first: opaque, nested: [{ second: packed }], plain: 1 });
      const reply = (await comm.read()) as { op: string; first: unknown; nested: Array<{ second: unknown }>; plain: number };
      expect(reply.op).toBe('forward');
      expect(reply.plain).toBe(1);
      const back = [reply.first, reply.nested[0].second];
      for (const [i, sent] of [opaque, packed].entries()) {
        const got = back[i] as Serialized;
        expect(got).toBeInstanceOf(Serialized);
        expect(got.frames.map((frame) => frame.length)).toEqual(sent.frames.map((frame) => frame.length));
        got.frames.forEach((frame, j) => expect(same(frame, sent.frames[j])).toBe(true));
        expect(got.header).toEqual({ ...(sent.header as object), 'num-sub-frames': sent.frames.length });
      }
    }, 60_000);

    it("should have Dask decode rxcomm's msgpack-serialized payload to its value", async () => {
      const { comm } = await echoComm('true');
      const value = { x: [1, 2, 3], y: 'z', big: 2 ** 40, bytes: Buffer.from([0, 255]) };
      await comm.write({ op: 'decode-me', data: new Serialized(msgpackHeader(), [msgpackBytes(value)]) });
      // Python deserialized it (a dict, msgpack-writable) and echoed it as plain data.
      const reply = (await comm.read()) as { op: string; data: unknown };
      expect(reply.op).toBe('decode-me');
      expect(reply.data).not.toBeInstanceOf(Serialized);
      expect(reply.data).toEqual(value);
    }, 60_000);
  });
});
