/**
 * `rxcomm bridge LISTEN_ADDR TARGET_ADDR`: a relay. Each comm accepted on LISTEN_ADDR gets
 * a comm of its own to TARGET_ADDR, and messages go across both ways as they came
 * (`deserialize: false`: payloads stay opaque and byte-identical, nothing is unpickled).
 * A clean close on one side closes the other; a failure aborts the other.
 */
import { firstValueFrom } from 'rxjs';
import { type Comm, connect, listen } from '../../index';
import { connectConfig, listenConfig } from '../args';
import type { Command } from '../command';
import { EXIT } from '../exit-codes';
import { json } from '../format';

interface Counts {
  comms: number;
  unreachable: number;
  toTarget: number;
  fromTarget: number;
}

/**
 * Every message of `from` written to `to`, in order. `to.next` is written during
 * `from`'s delivery, so a slow `to` pauses reading from `from` (bounded memory).
 */
function forward(from: Comm, to: Comm, count: () => void, ended: () => void): void {
  from.read$.subscribe({
    next: (message) => {
      count();
      to.next(message);
    },
    complete: () => {
      ended();
      void to.close();
    },
    error: (error: Error) => {
      ended();
      to.abort(error);
    },
  });
}

const plural = (n: number, noun: string) => `${n} ${noun}${n === 1 ? '' : 's'}`;

export const bridge: Command = {
  runsUntilInterrupted: true,
  spec: {
    name: 'bridge',
    positionals: ['LISTEN_ADDR', 'TARGET_ADDR'],
    summary: 'relays every comm accepted on one address to another',
    description: [
      'Accepts comms on LISTEN_ADDR and connects each to TARGET_ADDR, then forwards every',
      'message both ways as it came (payloads opaque, byte-identical; nothing unpickled),',
      'closing and aborting in step. A browser reaches a Dask cluster this way (Dask\'s ws',
      'listener refuses other origins), and a ws-only network a tcp scheduler:',
      '',
      '  rxcomm bridge ws://0.0.0.0:8787 tcp://scheduler:8786 --allow-origin https://app.example',
      '',
      'Prints "bridging <address> to TARGET_ADDR", then runs until interrupted (Ctrl-C) and',
      'reports its counts on exit (stderr; stdout with --json). The TLS flags apply to both',
      'ends: the listener presents --tls-cert, the connection to the target verifies with',
      '--tls-ca and presents --tls-cert as its client certificate.',
    ].join('\n'),
    options: {
      'allow-origin': { type: 'string', value: 'ORIGIN', multiple: true, help: "ws/wss: a web page origin allowed to connect, or '*'" },
    },
  },
  async run({ positionals, values, out, err, interrupted }) {
    const { LISTEN_ADDR, TARGET_ADDR } = positionals as { LISTEN_ADDR: string; TARGET_ADDR: string };
    const toTarget = { ...connectConfig(values), deserialize: false };
    const counts: Counts = { comms: 0, unreachable: 0, toTarget: 0, fromTarget: 0 };
    // Comms to close on exit. Only forward() subscribes to a comm's read$: messages that
    // arrive before the target is connected wait in the comm for that first subscriber.
    const open = new Set<Comm>();
    const listener = listen(
      LISTEN_ADDR,
      (client) => {
        counts.comms += 1;
        open.add(client);
        firstValueFrom(connect(TARGET_ADDR, toTarget)).then(
          (target) => {
            open.add(target);
            forward(client, target, () => (counts.toTarget += 1), () => open.delete(client));
            forward(target, client, () => (counts.fromTarget += 1), () => open.delete(target));
          },
          (error: Error) => {
            counts.unreachable += 1;
            err(`rxcomm: ${client.peerAddress} could not be bridged: ${error.message}`);
            client.abort(error);
            open.delete(client);
          },
        );
      },
      { ...listenConfig(values), deserialize: false },
    );
    await listener.start();
    out(values.json ? json({ event: 'listening', address: listener.contactAddress, target: TARGET_ADDR }) : `bridging ${listener.contactAddress} to ${TARGET_ADDR}`);
    await interrupted;
    listener.stop();
    await Promise.all([...open].map((comm) => comm.close()));
    const { comms, unreachable, toTarget: sent, fromTarget: received } = counts;
    if (values.json) out(json({ event: 'stopped', ...counts }));
    else err(`bridged ${plural(comms, 'comm')} (${unreachable} could not reach ${TARGET_ADDR}): ${plural(sent, 'message')} to the target, ${received} back`);
    return EXIT.ok;
  },
};
