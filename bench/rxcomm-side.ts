/**
 * The rxcomm side of the benchmark: the bench server and client of interop/dask_peer.py,
 * written with rxcomm's public API.
 *
 *     node dist-scripts/bench/rxcomm-side.js server <tcp|tls> [--tls CA CERT KEY]
 *     node dist-scripts/bench/rxcomm-side.js client <address> <tcp|tls> [--tls CA CERT KEY]
 *         [--label L] [--reps 3] [--trips 5000] [--trip-seconds 2] [--pipelined 50000]
 *         [--pipelined-seconds 1.5] [--bulk-total-mib 256] [--bulk-seconds 1.5] [--timeout 120]
 *         [--stepped] [--only PHASE,...] [--no-warm-up]
 *
 * The server prints `{"ready": true, "mode": "rxcomm-bench-server", "address", "pid"}` and
 * serves until its stdin closes; the client prints one line, `{"ok": true, "<label>": {...}}`,
 * with the keys of Dask's bench-client. `--stepped` runs one repetition per `rep` line on
 * stdin instead (run.ts interleaves implementations that way); `--only` and `--no-warm-up`
 * are for profiling one phase (see bench/README.md).
 */
import { firstValueFrom } from 'rxjs';
import { connect, listen, type Comm, type TransportConfig } from 'rxcomm';
import { benchHandler, emit, fail, sideMain, type BenchPeer, type TlsFiles } from './common';

function transportConfig(transport: string, tls: TlsFiles | undefined): TransportConfig {
  if (transport === 'tcp') return {};
  if (transport !== 'tls') throw new Error(`unknown transport ${JSON.stringify(transport)} (tcp or tls)`);
  if (!tls) throw new Error('tls needs --tls CA CERT KEY');
  return { security: { ca: tls.ca, cert: tls.cert, key: tls.key } };
}

async function serve(transport: string, tls: TlsFiles | undefined): Promise<void> {
  const listener = listen(`${transport}://127.0.0.1:0`, transportConfig(transport, tls));
  listener.subscribe({
    next: (comm: Comm) => {
      const onWriteError = () => comm.abort();
      const handle = benchHandler((message) => {
        comm.write(message).then(undefined, onWriteError);
      });
      comm.read$.subscribe({ next: handle, error: () => undefined });
    },
    error: (error: unknown) => fail(error),
  });
  const { contactAddress } = await firstValueFrom(listener.bound$);
  emit({ ready: true, mode: 'rxcomm-bench-server', address: contactAddress, pid: process.pid });
}

function peerOf(comm: Comm): BenchPeer {
  return {
    write: (message) => comm.write(message),
    promisePerWrite: true,
    read: () => comm.read(),
    close: () => comm.close(),
  };
}

sideMain('rxcomm-side.js', {
  serve,
  async connect(address, transport, args) {
    const comm = await firstValueFrom(connect(address, { timeout: 10_000, ...transportConfig(transport, args.tls) }));
    return { peer: peerOf(comm), extra: { negotiated: comm.handshakeOptions }, close: () => comm.close() };
  },
}).catch(fail);
