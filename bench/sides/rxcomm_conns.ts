/**
 * The rxcomm side of the connections table, with rxcomm's public API only, as an
 * application would write it:
 *
 *   server: listen(address).subscribe(comm => comm.read$.subscribe(...)): every comm held
 *           with a reader, until the peer closes it
 *   client: await firstValueFrom(connect(address, config)), one after the other; each
 *           comm held (no reader: it would keep what arrives as unread)
 *
 * Command line and output: connSideMain in conn_protocol.ts.
 */
import { firstValueFrom } from 'rxjs';
import { connect, listen, type Comm, type ConnectConfig, type TransportConfig } from 'rxcomm';
import { connSideMain } from './conn_protocol';
import { fail, type TlsFiles } from './protocol';

function transportConfig(transport: string, tls: TlsFiles | undefined): TransportConfig {
  if (transport === 'tcp' || transport === 'ws') return {};
  if (!tls) throw new Error(`${transport} needs --tls CA CERT KEY`);
  return { security: { ca: tls.ca, cert: tls.cert, key: tls.key } };
}

/**
 * One connect config per process, as an application keeps its settings: rxcomm makes one
 * TLS context per `security` object (a new object per connect would parse the PEM files
 * each time).
 */
let connectConfig: ConnectConfig | undefined;

connSideMain('rxcomm', {
  async serve(transport, tls, counter) {
    const listener = listen(`${transport}://127.0.0.1:0`, transportConfig(transport, tls));
    listener.subscribe({
      next: (comm: Comm) => {
        counter.opened();
        comm.read$.subscribe({ complete: () => counter.ended(), error: () => counter.ended() });
      },
      error: (error: unknown) => fail(error),
    });
    const { contactAddress } = await firstValueFrom(listener.bound$);
    return { address: contactAddress };
  },

  async connect(address, transport, tls) {
    connectConfig ??= { timeout: 10_000, ...transportConfig(transport, tls) };
    const comm = await firstValueFrom(connect(address, connectConfig));
    return { isOpen: () => !comm.closed, close: () => comm.close() };
  },
}).catch(fail);
