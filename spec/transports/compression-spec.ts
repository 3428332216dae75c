/**
 * Compression between comms, over every transport: what the handshake advertises and
 * negotiates (Dask's rule: used only when both sides name the same one), what goes on the
 * wire, and what a receiver does with compressed frames it did not ask for or cannot read.
 */
import { firstValueFrom } from 'rxjs';
import { ConfigError, connect, daskCodec, ProtocolError, Serialize, Serialized, toSerialize } from 'rxcomm';
import { collect, connectPair, transports, type Connected } from '../helpers/transports';

/** 1 MiB that lz4 shrinks about 250-fold. */
const sparse = new Uint8Array(1 << 20).map((_, i) => (i % 4096 === 0 ? i & 0xff : 0));

/** Whether `message` is `{...rest, data: <the bytes of expected>}`: jest's deep equality walks 1 MiB slowly. */
function withBytes(message: unknown, expected: Uint8Array): Record<string, unknown> {
  const { data, ...rest } = message as { data: Uint8Array };
  expect(Buffer.from(data.buffer, data.byteOffset, data.byteLength).equals(expected)).toBe(true);
  return rest;
}

const encoded = transports.filter((transport) => transport.name !== 'inproc');

describe.each(encoded)('compression over $name', (transport) => {
  let pair: Connected | undefined;
  afterEach(async () => {
    await pair?.close();
    pair = undefined;
  });

  it.each(['lz4', 'zstd', 'snappy', 'zlib'] as const)('should negotiate %s when both sides name it, and compress payloads with it', async (compression) => {
    pair = await connectPair(transport, { compression });
    const { client, server } = pair;
    expect(client.localInfo.compression).toBe(compression);
    expect(client.handshakeOptions.compression).toBe(compression);
    expect(server.handshakeOptions.compression).toBe(compression);
    const wire = await client.write({ op: 'put', data: toSerialize(sparse) });
    expect(wire).toBeLessThan(sparse.length / 10);
    expect(withBytes(await server.read(), sparse)).toEqual({ op: 'put' });
    // And the other way.
    const back = await server.write({ data: toSerialize(sparse) });
    expect(back).toBeLessThan(sparse.length / 10);
    expect(withBytes(await client.read(), sparse)).toEqual({});
  });

  it("should advertise lz4 for 'auto'", async () => {
    pair = await connectPair(transport, { compression: 'auto' });
    expect(pair.client.localInfo.compression).toBe('lz4');
    expect(pair.server.handshakeOptions.compression).toBe('lz4');
  });

  it('should not compress when the sides name different ones, yet read what arrives compressed', async () => {
    pair = await connectPair(transport);
    const { listener, address } = pair;
    // The listener advertises null; this client lz4: nothing is negotiated.
    const accepted = firstValueFrom(listener);
    const client = await firstValueFrom(connect(address, { ...transport.config(), compression: 'lz4' }));
    const server = await accepted;
    try {
      expect(client.handshakeOptions.compression).toBeNull();
      expect(await client.write({ data: toSerialize(sparse) })).toBeGreaterThan(sparse.length);
      expect(withBytes(await server.read(), sparse)).toEqual({});
      // A payload compressed elsewhere (a scheduler forwarding what a client stored)
      // is read by its label although this comm negotiated none.
      const forwarded = daskCodec({ deserialize: false }).decode(
        daskCodec({ deserialize: true }).encode({ data: toSerialize(sparse) }, { compression: 'lz4', maxMessageSize: 1 << 30 }),
      );
      await client.write(forwarded);
      expect(withBytes(await server.read(), sparse)).toEqual({});
    } finally {
      await Promise.all([client.close(), server.close()]);
    }
  });

  it('should fail only the comm that receives a frame it cannot decompress, with a ProtocolError', async () => {
    pair = await connectPair(transport);
    const { client, server } = pair;
    const reading = collect(server.read$);
    await client.write({ data: new Serialized({ serializer: 'pickle', compression: ['lz4'] }, [Uint8Array.of(0xff, 0xff, 0, 0, 0x10)]) });
    const { values, error } = await reading;
    expect(values).toEqual([]);
    expect(error).toBeInstanceOf(ProtocolError);
    expect((error as Error).message).toMatch(/an lz4 payload (does not decode|declares 65535 bytes)|an lz4 literal run overruns/);
    await expect(collect(client.read$)).resolves.toMatchObject({ values: [] });
  });
});

describe('compression over inproc', () => {
  it('should negotiate as the others do, while messages pass by reference: a toSerialize value arrives wrapped', async () => {
    const pair = await connectPair(transports[0], { compression: 'lz4' });
    try {
      expect(pair.client.handshakeOptions.compression).toBe('lz4');
      await pair.client.write({ data: toSerialize(sparse) });
      const { data } = (await pair.server.read()) as { data: Serialize };
      expect(data).toBeInstanceOf(Serialize);
      expect(data.value).toBe(sparse);
    } finally {
      await pair.close();
    }
  });
});

describe('the compression option', () => {
  it.each([
    ['lz5', "compression must be one of 'lz4', 'zstd', 'snappy', 'zlib', 'auto' or null, got a string ('lz5')"],
    [true, "compression must be one of 'lz4', 'zstd', 'snappy', 'zlib', 'auto' or null, got a boolean (true)"],
  ])('should refuse %p with a ConfigError', (value, message) => {
    expect(() => connect('tcp://127.0.0.1:1', { compression: value as never })).toThrow(new ConfigError(message));
  });
});
