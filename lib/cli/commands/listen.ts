/** `rxcomm listen ADDR [--echo]`: prints each comm and message as it arrives. */
import { type Comm, listen } from '../../index';
import { listenConfig } from '../args';
import type { Command } from '../command';
import { EXIT } from '../exit-codes';
import { json, readable } from '../format';

export const listenCommand: Command = {
  runsUntilInterrupted: true,
  spec: {
    name: 'listen',
    positionals: ['ADDR'],
    summary: 'accepts comms and prints what they send',
    description: [
      'Listens on ADDR (tcp://, tls://, ws://, wss://; port 0 picks a free one) and prints',
      '"listening on <address>", then each comm as it connects, each message it sends, and',
      'how it ended, until interrupted (Ctrl-C). With --echo, each message is written back',
      '(the echo listener that rxcomm bench measures; add --quiet there). A message is printed as',
      '"<peer> <message>", or with --json as {"event": "message", "peer": …, "message": …}.',
    ].join('\n'),
    options: {
      echo: { type: 'boolean', help: 'write every message back to its comm' },
      quiet: { type: 'boolean', help: 'print comms as they come and go, not their messages' },
      'allow-origin': { type: 'string', value: 'ORIGIN', multiple: true, help: "ws/wss: a web page origin allowed to connect, or '*'" },
    },
  },
  async run({ positionals, values, out, outIsTty, interrupted }) {
    const echo = values.echo === true;
    const quiet = values.quiet === true;
    const print = (event: string, peer: string, detail?: { message?: unknown; error?: string }) => {
      if (values.json) out(json({ event, peer, ...detail }));
      else if (event === 'message') out(`${peer} ${readable(detail?.message, outIsTty)}`);
      else out(`${peer} ${event}${detail?.error ? `: ${detail.error}` : ''}`);
    };
    const open = new Set<Comm>();
    const listener = listen(
      positionals.ADDR as string,
      (comm) => {
        open.add(comm);
        const peer = comm.peerAddress;
        print('connected', peer);
        comm.read$.subscribe({
          next: (message) => {
            if (!quiet) print('message', peer, { message });
            if (echo) comm.next(message);
          },
          complete: () => {
            open.delete(comm);
            print('closed', peer);
            if (echo) void comm.close();
          },
          error: (error: Error) => {
            open.delete(comm);
            print('aborted', peer, { error: error.message });
          },
        });
      },
      listenConfig(values),
    );
    await listener.start();
    if (values.json) out(json({ event: 'listening', address: listener.contactAddress }));
    else out(`listening on ${listener.contactAddress}`);
    await interrupted;
    listener.stop();
    await Promise.all([...open].map((comm) => comm.close()));
    return EXIT.ok;
  },
};
