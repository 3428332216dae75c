/**
 * rxcomm's side of the compression table (bench/README.md, "The compression table"), with
 * its public API only: a listener per compression setting (`listen(addr, { compression })`,
 * received payloads deserialized, i.e. decompressed and decoded back to bytes), and a
 * client with a comm per setting (`connect(addr, { compression })`) that sends each payload
 * as `toSerialize(bytes)`: an out-of-band Dask payload frame, compressed under Dask's rule.
 *
 *     node dist-scripts/bench/sides/rxcomm_compression.js server [--formats off,lz4] [--lifetime S] [--host 127.0.0.1]
 *     node dist-scripts/bench/sides/rxcomm_compression.js client --addresses off=tcp://...,lz4=tcp://...
 *         --payloads DIR [--formats off,lz4] [--kinds sparse,categorical,random] [--total-mib 256]
 *         [--seconds 1.5] [--reps 1] [--stepped] [--no-warm-up] [--label rxcomm] [--timeout S]
 *
 * The server prints `{"ready": true, "addresses": {"off": ..., "lz4": ...}, "pid"}`.
 */
import { firstValueFrom } from 'rxjs';
import { connect, listen, toSerialize, type Comm, type CompressionOption } from 'rxcomm';
import { compressionClientMain, compressionHandler, parseCompressionArgs, type CompressionPeer, type Format } from './compression_protocol';
import { emit, fail, installGuards } from './protocol';

const optionOf = (format: Format): CompressionOption => (format === 'off' ? null : format);

async function serve(format: Format, host: string): Promise<string> {
  const listener = listen(`tcp://${host}:0`, { compression: optionOf(format) });
  listener.subscribe({
    next: (comm: Comm) => {
      const onWriteError = () => comm.abort();
      const handle = compressionHandler((message) => {
        comm.write(message).then(undefined, onWriteError);
      });
      comm.read$.subscribe({ next: handle, error: () => undefined });
    },
    error: (error: unknown) => fail(error),
  });
  return (await firstValueFrom(listener.bound$)).contactAddress;
}

async function main(): Promise<void> {
  const args = parseCompressionArgs(process.argv.slice(2));
  if (args.mode === 'server') {
    installGuards('server', args.lifetime);
    const addresses: Record<string, string> = {};
    for (const format of args.formats) addresses[format] = await serve(format, args.host);
    emit({ ready: true, mode: 'rxcomm-compression-server', addresses, pid: process.pid });
    return;
  }
  if (args.mode !== 'client') throw new Error('usage: rxcomm_compression.js server | client --addresses F=ADDR,... --payloads DIR [options]');
  installGuards('client', args.timeout);
  const peers = new Map<Format, CompressionPeer>();
  const comms: Comm[] = [];
  for (const format of args.formats) {
    const address = args.addresses[format];
    if (!address) throw new Error(`no address for ${format}`);
    const comm = await firstValueFrom(connect(address, { timeout: 10_000, compression: optionOf(format) }));
    comms.push(comm);
    peers.set(format, {
      writeBulk: (payload) => comm.write({ op: 'bulk', data: toSerialize(payload) }),
      write: (message) => comm.write(message),
      read: () => comm.read(),
      negotiated: comm.handshakeOptions?.compression ?? null,
    });
  }
  try {
    await compressionClientMain(peers, args);
  } finally {
    await Promise.all(comms.map((comm) => comm.close()));
  }
  process.exit(0);
}

main().catch(fail);
