/**
 * `rxcomm bench ADDR`: round trips, then throughput, against an echo listener
 * (`rxcomm listen ADDR --echo`, or any peer that writes each message back).
 */
import { firstValueFrom } from 'rxjs';
import { type Comm, connect } from '../../index';
import { connectConfig, integerOption } from '../args';
import type { Command, CommandContext } from '../command';
import { EXIT } from '../exit-codes';
import { json } from '../format';

/** A live progress line on a terminal: redrawn at most every 100 ms, erased at the end. */
function progress(context: CommandContext): { update(text: string): void; done(): void } {
  let last = 0;
  let shown = false;
  return {
    update(text) {
      if (!context.errIsTty) return;
      const now = Date.now();
      if (now - last < 100) return;
      last = now;
      shown = true;
      process.stderr.write(`\r\x1b[K${text}`);
    },
    done() {
      if (shown) process.stderr.write('\r\x1b[K');
    },
  };
}

async function roundTrips(comm: Comm, count: number, line: ReturnType<typeof progress>): Promise<number[]> {
  const micros: number[] = [];
  for (let i = 0; i < count; i++) {
    const start = process.hrtime.bigint();
    await comm.write({ op: 'ping', i });
    const echo = (await comm.read()) as { i?: number } | null;
    micros.push(Number(process.hrtime.bigint() - start) / 1000);
    if (echo?.i !== i) throw new Error(`the echo of round trip ${i} was ${JSON.stringify(echo)}: is ADDR an echo listener?`);
    line.update(`round trips ${i + 1}/${count}`);
  }
  return micros;
}

/** `count` messages of `size` bytes out, each read back, writes and reads overlapping. */
async function throughput(comm: Comm, count: number, size: number, line: ReturnType<typeof progress>): Promise<number> {
  const payload = new Uint8Array(size).map((_, i) => (i * 131) & 0xff);
  const start = process.hrtime.bigint();
  let echoed = 0;
  const reading = (async () => {
    for (; echoed < count; echoed++) {
      const echo = (await comm.read()) as { data?: Uint8Array } | null;
      if (echo?.data?.length !== size) throw new Error(`echo ${echoed} did not bring ${size} bytes back`);
      line.update(`throughput ${echoed + 1}/${count} messages of ${size} bytes`);
    }
  })();
  for (let i = 0; i < count; i++) await comm.write({ op: 'bulk', data: payload });
  await reading;
  return Number(process.hrtime.bigint() - start) / 1e9;
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))];

export const bench: Command = {
  spec: {
    name: 'bench',
    positionals: ['ADDR'],
    summary: 'round trips and throughput against an echo listener',
    description: [
      'Connects to an echo listener at ADDR (start one with: rxcomm listen ADDR --echo) and',
      'measures sequential round trips of a small message, then throughput: messages of',
      '--size bytes, each echoed, writes and reads overlapping. A live progress line goes to',
      'stderr on a terminal; the summary to stdout (--json: one object).',
    ].join('\n'),
    options: {
      'round-trips': { type: 'string', value: 'N', help: 'sequential round trips (default 2000)' },
      messages: { type: 'string', value: 'N', help: 'messages in the throughput run (default 200)' },
      size: { type: 'string', value: 'BYTES', help: 'bytes per throughput message (default 1048576)' },
    },
  },
  async run(context) {
    const { positionals, values, out } = context;
    const rounds = integerOption(values, 'round-trips', 2000);
    const messages = integerOption(values, 'messages', 200);
    const size = integerOption(values, 'size', 1 << 20, 0);
    const comm = await firstValueFrom(connect(positionals.ADDR as string, connectConfig(values)));
    const line = progress(context);
    try {
      const micros = (await roundTrips(comm, rounds, line)).sort((a, b) => a - b);
      const seconds = await throughput(comm, messages, size, line);
      line.done();
      const summary = {
        address: comm.peerAddress,
        roundTrips: {
          count: rounds,
          medianMicros: Math.round(percentile(micros, 50)),
          p99Micros: Math.round(percentile(micros, 99)),
          perSecond: Math.round(rounds / (micros.reduce((a, b) => a + b, 0) / 1e6)),
        },
        throughput: { messages, size, seconds: Number(seconds.toFixed(3)), mibPerSecond: Number(((messages * size) / 2 ** 20 / seconds).toFixed(1)) },
      };
      if (values.json) {
        out(json(summary));
      } else {
        const { roundTrips: r, throughput: t } = summary;
        out(`${summary.address}`);
        out(`  round trips  ${r.count}: median ${r.medianMicros} µs, p99 ${r.p99Micros} µs, ${r.perSecond}/s`);
        out(`  throughput   ${t.messages} × ${t.size} bytes echoed in ${t.seconds} s: ${t.mibPerSecond} MiB/s each way`);
      }
      return EXIT.ok;
    } finally {
      line.done();
      await comm.close();
    }
  },
};
