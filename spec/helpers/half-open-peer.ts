/**
 * One end of a half-open-spec connection, run as a child process inside a network
 * namespace (`ip netns exec NS node half-open-peer.js MODE ...`; netns-child.ts bundles
 * this file with lib/ by esbuild, so it runs the sources under test, not a stale dist/).
 * It reports on stdout as JSON lines, each with `event` and `at` (Date.now()):
 *
 * - `listen ADDRESS TIMEOUT`: an rxcomm listener with `deadPeerTimeout` TIMEOUT (ms, or
 *   `default` to leave the option out) whose one comm echoes what it reads, as the
 *   README's echo server does. `listening {address}`, `accepted`, `backpressured` (once
 *   echoes have left the comm at its write high-water mark five times, which holds its
 *   reading back each time: the flow is steadily pushing back), then `failed`.
 * - `dask-listen HOST STREAM_HEX`: a peer that speaks as Dask does, without rxcomm's
 *   heartbeat. STREAM_HEX is what a Dask scheduler sent (golden bytes): its handshake,
 *   sent at once, then one message, sent as the answer to the client's first message.
 *   It ignores everything else and never sends again. `listening {address}`, `accepted`.
 * - `connect ADDRESS TIMEOUT idle|busy|flood`: an rxcomm client. It makes one round trip;
 *   `busy` then writes a 1 KiB message every 10 ms, reading the echoes as they come;
 *   `flood` writes 256 KiB messages as fast as `write()` takes them and reads the echoes
 *   slower than that (one per 10 ms), so that both directions back up; `idle` does
 *   nothing more. `ready` (for busy and flood, once their first message is back), then
 *   `failed`.
 *
 * `failed` carries how reading ended (`error`: name, code, silentFor, message, the
 * cause's code), how a write that was waiting at that moment ended (`pendingWrite`, in
 * `flood`), and how a write made afterwards ended (`laterWrite`). The process then exits.
 * Closing its stdin also ends it (the parent's way to stop a child that is not done).
 */
import * as net from 'node:net';
import { firstValueFrom } from 'rxjs';
import { CommClosedError, connect, listen, type Comm } from 'rxcomm';

export interface PeerLine {
  event: 'listening' | 'accepted' | 'backpressured' | 'ready' | 'failed' | 'ended' | 'crashed';
  at: number;
  [key: string]: unknown;
}

export interface ErrorReport {
  name: string;
  /** Whether it is a `CommClosedError` (DeadPeerError is one). */
  commClosed: boolean;
  code: unknown;
  silentFor: unknown;
  message: string;
  causeCode: unknown;
}

type Settled = ErrorReport | 'resolved';

function say(event: PeerLine['event'], fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, at: Date.now(), ...fields })}\n`);
}

function report(error: unknown): ErrorReport {
  const { name, message, code, silentFor, cause } = error as Error & { code?: unknown; silentFor?: unknown };
  return { name, commClosed: error instanceof CommClosedError, code, silentFor, message, causeCode: (cause as { code?: unknown } | undefined)?.code };
}

/** How a write settles, without ever leaving a rejection unhandled. */
const settled = (write: Promise<unknown>): Promise<Settled> => write.then(() => 'resolved', report);

/** `deadPeerTimeout` from the command line: `default` leaves it out. */
const deadPeerOption = (arg: string) => (arg === 'default' ? {} : { deadPeerTimeout: Number(arg) });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function finish(): void {
  // stdout is a pipe, written synchronously on Linux: every line is out.
  process.exit(0);
}

/** Reports how reading `comm` ended (`error`: undefined when it completed), then exits. */
async function reportEnd(comm: Comm, error: unknown, pendingWrite?: Promise<Settled>): Promise<void> {
  if (error === undefined) {
    say('ended');
  } else {
    say('failed', {
      error: report(error),
      pendingWrite: pendingWrite && (await pendingWrite),
      laterWrite: await settled(comm.write({ op: 'after-failure' })),
    });
  }
  finish();
}

/** After how many echoes left at the write high-water mark the listener says `backpressured`. */
const BACKPRESSURED_AFTER = 5;

async function rxcommListener(address: string, timeout: string): Promise<void> {
  const listener = listen(address, deadPeerOption(timeout));
  listener.subscribe((comm) => {
    say('accepted', { peer: comm.peerAddress });
    let heldBack = 0;
    comm.read$.subscribe({
      next: (message) => {
        void comm.write(message).catch(() => undefined);
        // Once is a burst; the fifth time, the flow is steadily pushing back.
        if (comm.needsDrain && ++heldBack === BACKPRESSURED_AFTER) say('backpressured');
      },
      error: (error: unknown) => void reportEnd(comm, error),
      complete: () => void reportEnd(comm, undefined),
    });
  });
  const { contactAddress } = await firstValueFrom(listener.bound$);
  say('listening', { address: contactAddress });
}

/** Dask's framing: each message is a little-endian u64 length, then that many bytes. */
function messageLength(bytes: Buffer): number | undefined {
  return bytes.length < 8 ? undefined : 8 + Number(bytes.readBigUInt64LE(0));
}

function daskListener(host: string, streamHex: string): void {
  const stream = Buffer.from(streamHex, 'hex');
  const handshake = stream.subarray(0, messageLength(stream));
  const reply = stream.subarray(handshake.length);
  const server = net.createServer((socket) => {
    let received = Buffer.alloc(0);
    let messages = 0;
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      for (let length = messageLength(received); length !== undefined && received.length >= length; length = messageLength(received)) {
        received = received.subarray(length);
        // The first message is the client's handshake; the second gets the one answer.
        if (++messages === 2) socket.write(reply);
      }
    });
    socket.write(handshake);
    say('accepted', { peer: `tcp://${socket.remoteAddress}:${socket.remotePort}` });
  });
  server.listen(0, host, () => {
    const { port } = server.address() as net.AddressInfo;
    say('listening', { address: `tcp://${host}:${port}` });
  });
}

async function rxcommClient(address: string, timeout: string, mode: string): Promise<void> {
  // flood keeps few messages unread, so that its slow reading soon holds the echoes back.
  const reading = mode === 'flood' ? { readHighWaterMark: 4 } : {};
  const comm = await firstValueFrom(connect(address, { ...deadPeerOption(timeout), ...reading, timeout: 10_000 }));
  let waiting: Promise<Settled> | undefined;
  // Who waits for which answer: an echo of `op`, or (`*`) any first message.
  const answerWaits = new Map<unknown, () => void>();
  const answerTo = (op: string) => new Promise<void>((resolve) => answerWaits.set(op, resolve));
  const onMessage = (message: unknown) => {
    for (const op of ['*', (message as { op?: unknown }).op]) {
      answerWaits.get(op)?.();
      answerWaits.delete(op);
    }
  };
  if (mode === 'flood') {
    // read(), one message per 10 ms: a reader slower than the writer.
    void (async () => {
      for (;;) {
        try {
          onMessage(await comm.read());
        } catch (error) {
          return reportEnd(comm, error, waiting);
        }
        await sleep(10);
      }
    })();
  } else {
    comm.read$.subscribe({
      next: onMessage,
      error: (error: unknown) => void reportEnd(comm, error),
      complete: () => void reportEnd(comm, undefined),
    });
  }

  // The round trip: rxcomm's listener echoes, the Dask-style peer answers otherwise.
  const answered = answerTo('*');
  await comm.write({ op: 'hello', from: 'half-open-peer' });
  await answered;
  const flowing = answerTo(mode);
  if (mode === 'busy') {
    const data = Buffer.alloc(1024, 7);
    let seq = 0;
    const timer = setInterval(() => {
      if (comm.closed) clearInterval(timer);
      else void comm.write({ op: 'busy', seq: seq++, data }).catch(() => clearInterval(timer));
    }, 10);
    await flowing;
  } else if (mode === 'flood') {
    const data = Buffer.alloc(256 * 1024, 7);
    void (async () => {
      for (let seq = 0; !comm.closed; seq++) {
        waiting = settled(comm.write({ op: 'flood', seq, data }));
        if ((await waiting) !== 'resolved') break;
      }
    })();
    await flowing;
  }
  say('ready', { local: comm.localAddress, heartbeats: comm.remoteInfo['rxcomm-heartbeat'] ?? null });
}

async function main(): Promise<void> {
  process.stdin.on('end', finish);
  process.stdin.resume();
  const [mode, ...args] = process.argv.slice(2);
  if (mode === 'listen') await rxcommListener(args[0], args[1]);
  else if (mode === 'dask-listen') daskListener(args[0], args[1]);
  else if (mode === 'connect') await rxcommClient(args[0], args[1], args[2]);
  else throw new Error(`unknown mode ${mode}`);
}

main().catch((error: unknown) => {
  say('crashed', { error: report(error), stack: (error as Error).stack });
  finish();
});
