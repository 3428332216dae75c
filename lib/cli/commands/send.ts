/** `rxcomm send ADDR MSG_JSON`: writes messages, one, or one per line of stdin with `-`. */
import { firstValueFrom } from 'rxjs';
import { connect } from '../../index';
import { connectConfig } from '../args';
import type { Command } from '../command';
import { EXIT, UsageError } from '../exit-codes';
import { json, parseJsonArgument } from '../format';

export const send: Command = {
  spec: {
    name: 'send',
    positionals: ['ADDR', 'MSG_JSON'],
    summary: 'writes messages to a comm, then closes it',
    description: [
      'Connects to ADDR, writes MSG_JSON as one message (or, with MSG_JSON "-", each line of',
      'stdin as one message, blank lines skipped), then closes the comm once everything is',
      'flushed. Bytes, bigints and Maps may be written as tagged JSON: {"$bytes": "<base64>"},',
      '{"$bigint": "…"}, {"$map": [[key, value], …]}. Reads nothing: to see replies use call.',
      '',
      `Example: printf '%s\\n' '{"op": "log_event", "topic": "t", "msg": 1, "reply": false}' | rxcomm send tcp://127.0.0.1:8786 -`,
    ].join('\n'),
    options: {},
  },
  async run({ positionals, values, out, err, stdinLines }) {
    const { ADDR, MSG_JSON } = positionals as { ADDR: string; MSG_JSON: string };
    const single = MSG_JSON === '-' ? undefined : parseJsonArgument(MSG_JSON, 'MSG_JSON');
    const comm = await firstValueFrom(connect(ADDR, connectConfig(values)));
    let sent = 0;
    try {
      if (MSG_JSON !== '-') {
        await comm.write(single);
        sent = 1;
      } else {
        let line = 0;
        for await (const text of stdinLines()) {
          line += 1;
          if (text.trim() === '') continue;
          await comm.write(parseJsonArgument(text, `line ${line} of stdin`));
          sent += 1;
        }
      }
    } catch (error) {
      comm.abort();
      if (error instanceof UsageError) err(`rxcomm: ${sent} message(s) sent before the error`);
      throw error;
    }
    await comm.close();
    if (values.json) out(json({ sent }));
    else err(`sent ${sent} message${sent === 1 ? '' : 's'} to ${ADDR}`);
    return EXIT.ok;
  },
};
