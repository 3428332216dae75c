/**
 * The transports every Comm contract runs over. A new transport joins the suites by
 * adding an entry here: `describe.each(transports)`.
 */
import { firstValueFrom, type Observable } from 'rxjs';
import { firstExternalIpv4 } from '../../lib/transports/socket/local-ip';
import { security } from './certs';
import { connect, type Comm, type ConnectConfig, type ListenConfig, type Listener, listen } from 'rxcomm';

export interface TransportCase {
  name: string;
  /** Where to listen: a fresh address each time the suite asks. */
  listenAddress: string;
  /** Settings both ends need (tls certificates). */
  config: () => ConnectConfig & ListenConfig;
}

let inprocCounter = 0;
/** An inproc address of this process that nobody uses (high numbers stay clear of listen('inproc://')). */
export function inprocAddress(): string {
  return `inproc://${firstExternalIpv4()}/${process.pid}/${1_000_000 + ++inprocCounter}`;
}

export const transports: TransportCase[] = [
  { name: 'inproc', listenAddress: 'inproc://', config: () => ({}) },
  { name: 'tcp', listenAddress: 'tcp://127.0.0.1:0', config: () => ({}) },
  // One set of certificates serves both ends: the CA signed it for client and server use.
  { name: 'tls', listenAddress: 'tls://127.0.0.1:0', config: () => ({ security: security('server') }) },
  { name: 'ws', listenAddress: 'ws://127.0.0.1:0', config: () => ({}) },
  { name: 'wss', listenAddress: 'wss://127.0.0.1:0', config: () => ({ security: security('server') }) },
];

/** A listener bound on `transport`, with a connected pair of comms; `close()` tears all down. */
export interface Connected {
  listener: Listener;
  client: Comm;
  server: Comm;
  address: string;
  close(): Promise<void>;
}

export async function connectPair(transport: TransportCase, extra: ConnectConfig & ListenConfig = {}): Promise<Connected> {
  const config = { ...transport.config(), ...extra };
  const listener = listen(transport.listenAddress, config);
  const accepted: Comm[] = [];
  const waiting: ((comm: Comm) => void)[] = [];
  const subscription = listener.subscribe((comm) => {
    const next = waiting.shift();
    if (next) next(comm);
    else accepted.push(comm);
  });
  const { contactAddress } = await firstValueFrom(listener.bound$);
  const nextAccepted = () =>
    new Promise<Comm>((resolve) => {
      const comm = accepted.shift();
      if (comm) resolve(comm);
      else waiting.push(resolve);
    });
  const client = await firstValueFrom(connect(contactAddress, { timeout: 10_000, ...config }));
  const server = await nextAccepted();
  return {
    listener,
    client,
    server,
    address: contactAddress,
    async close() {
      subscription.unsubscribe();
      await Promise.all([client.close(), server.close()]);
    },
  };
}

/** Collects everything an Observable emits until it ends. */
export function collect<T>(source: Observable<T>): Promise<{ values: T[]; error?: unknown }> {
  return new Promise((resolve) => {
    const values: T[] = [];
    source.subscribe({
      next: (value) => values.push(value),
      error: (error) => resolve({ values, error }),
      complete: () => resolve({ values }),
    });
  });
}
