/**
 * The rxcomm side of the benchmark: the bench server and client written with rxcomm's
 * public API only, as an application would (`listen()` with `comm.read$` on the server,
 * `connect()` with `comm.write()` / `comm.read()` on the client). Command line and
 * output: see sideMain in protocol.ts.
 *
 * Only documented options are passed (`timeout`, `security`): connect() and listen()
 * reject unknown keys.
 */
import { firstValueFrom } from 'rxjs';
import { connect, listen, type Comm, type TransportConfig } from 'rxcomm';
import { benchHandler, fail, sideMain, type BenchPeer, type TlsFiles } from './protocol';

/** tcp and ws need nothing; tls and wss take the same `security` (as in Dask). */
function transportConfig(transport: string, tls: TlsFiles | undefined): TransportConfig {
  if (transport === 'tcp' || transport === 'ws') return {};
  if (transport !== 'tls' && transport !== 'wss') throw new Error(`unknown transport ${JSON.stringify(transport)} (tcp, tls, ws or wss)`);
  if (!tls) throw new Error(`${transport} needs --tls CA CERT KEY`);
  // Mutual TLS as in Dask: files, which rxcomm's `security` reads like Dask's Security.
  return { security: { ca: tls.ca, cert: tls.cert, key: tls.key } };
}

async function serve(transport: string, tls: TlsFiles | undefined): Promise<{ address: string }> {
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
  return { address: contactAddress };
}

/** A `Comm.write` promise cannot be seen to be settled without awaiting it: promisePerWrite. */
function peerOf(comm: Comm): BenchPeer {
  return { write: (message) => comm.write(message), promisePerWrite: true, read: () => comm.read() };
}

sideMain('rxcomm', {
  serve,
  async connect(address, transport, args) {
    const comm = await firstValueFrom(connect(address, { timeout: 10_000, ...transportConfig(transport, args.tls) }));
    // Dask's client reports the negotiated handshake options too.
    return { peer: peerOf(comm), extra: { negotiated: comm.handshakeOptions }, close: () => comm.close() };
  },
}).catch(fail);
