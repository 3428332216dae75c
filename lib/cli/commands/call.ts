/** `rxcomm call ADDR OP [ARGS_JSON]`: one rpc call, as Dask's `rpc(addr).op(**args)`. */
import { firstValueFrom } from 'rxjs';
import { rpc } from '../../index';
import { connectConfig } from '../args';
import type { Command } from '../command';
import { EXIT, UsageError } from '../exit-codes';
import { json, parseJsonArgument, readable } from '../format';

export const call: Command = {
  spec: {
    name: 'call',
    positionals: ['ADDR', 'OP', 'ARGS_JSON?'],
    summary: 'one rpc call; prints the reply',
    description: [
      'Writes {op: OP, reply: true, ...ARGS_JSON} to ADDR, reads the one reply and prints it:',
      'Maps, bigints and bytes readably, or tagged JSON with --json. An error reply',
      '(status "uncaught-error") prints its exception text and exits 1.',
      '',
      "Example: rxcomm call tcp://127.0.0.1:8786 get_metadata '{\"keys\": [\"a\"], \"default\": null}'",
    ].join('\n'),
    options: {},
  },
  async run({ positionals, values, out, outIsTty }) {
    const { ADDR, OP, ARGS_JSON } = positionals as { ADDR: string; OP: string; ARGS_JSON?: string };
    const args = ARGS_JSON === undefined ? undefined : parseJsonArgument(ARGS_JSON, 'ARGS_JSON');
    if (args !== undefined && (args === null || typeof args !== 'object' || Array.isArray(args) || args instanceof Map)) {
      throw new UsageError(`ARGS_JSON must be a JSON object of the call's arguments, e.g. '{"keys": ["a"]}'`);
    }
    const remote = rpc(ADDR, connectConfig(values));
    try {
      const reply = await firstValueFrom(remote.call(OP, args as Record<string, unknown> | undefined));
      out(values.json ? json(reply) : readable(reply, outIsTty));
      return EXIT.ok;
    } finally {
      await remote.close();
    }
  },
};
