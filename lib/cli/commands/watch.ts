/** `rxcomm watch ADDR TOPIC`: the events a Dask scheduler logs on a topic, as they happen. */
import { schedulerEvents } from '../../index';
import { connectConfig } from '../args';
import type { Command } from '../command';
import { EXIT } from '../exit-codes';
import { json, readable } from '../format';

export const watch: Command = {
  runsUntilInterrupted: true,
  spec: {
    name: 'watch',
    positionals: ['ADDR', 'TOPIC'],
    summary: "prints the events logged on a Dask scheduler's topic",
    description: [
      "Joins the Dask scheduler at ADDR as a client stream (a Python Client's messages, no",
      'pickle), subscribes to TOPIC, and prints every event logged on it from then on',
      '(log_event, Client.log_event) as "<ISO time> <message>", or with --json as',
      '{"topic": …, "time": <seconds>, "msg": …}, until interrupted (Ctrl-C).',
      'Exits 3 if the scheduler closes the stream.',
    ].join('\n'),
    options: {},
  },
  async run({ positionals, values, out, outIsTty, interrupted }) {
    const { ADDR, TOPIC } = positionals as { ADDR: string; TOPIC: string };
    let subscription: { unsubscribe(): void } | undefined;
    const ended = new Promise<number>((resolve, reject) => {
      subscription = schedulerEvents(ADDR, TOPIC, connectConfig(values)).subscribe({
        next: (event) => out(values.json ? json(event) : `${new Date(event.time * 1000).toISOString()} ${readable(event.msg, outIsTty)}`),
        error: reject,
        complete: () => reject(Object.assign(new Error(`the scheduler at ${ADDR} closed the client stream`), { code: 'ERR_STREAM_CLOSED' })),
      });
    });
    try {
      return await Promise.race([ended, interrupted.then(() => EXIT.ok)]);
    } finally {
      subscription?.unsubscribe(); // says close-client and closes the comm
    }
  },
};
