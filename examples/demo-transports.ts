/** The transports the demo runs on: all embedded, nothing outside this process. */
import type { ConnectConfig } from 'rxcomm';

export interface DemoTransport {
  name: string;
  address: string;
  config: ConnectConfig;
}

export async function demoTransports(): Promise<DemoTransport[]> {
  return [
    { name: 'inproc (messages by reference)', address: 'inproc://', config: {} },
    { name: 'tcp (Dask framing + msgpack, loopback)', address: 'tcp://127.0.0.1:0', config: {} },
  ];
}
