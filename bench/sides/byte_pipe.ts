/**
 * The byte pipe: what loopback TCP carries between two Node processes when nothing is
 * framed, parsed or decoded, only counted. The ceiling for the bulk rows of the tcp table
 * (run.ts prints rxcomm's bulk over it). Plain `net`, nothing of rxcomm, on purpose.
 *
 *     node byte_pipe.js server [--lifetime S]
 *         prints {"ready": true, "address": "tcp://127.0.0.1:PORT"}; stops when stdin closes
 *     node byte_pipe.js client tcp://127.0.0.1:PORT [--total-mib 1024] [--block-mib 16] [--mode onread|fresh|data]
 *         prints {"ok": true, "byte_pipe_MiBps": x, "mode": ..., ...}
 *
 * The client asks for `total` bytes (one u64 LE); the server writes one preallocated
 * block of `block` bytes again and again (waiting for 'drain'), then ends. The client
 * counts what arrives: `--mode onread` reads into one reused buffer (`onread`, no
 * allocation per read: the pipe itself), `--mode fresh` reads each block in place into a
 * new buffer of its own (what a receiver that hands messages out must allocate), `--mode
 * data` takes Node's 'data' chunks (a fresh 64 KiB buffer per read, as a socket reads by
 * default). One pass warms up, the
 * next is timed: from the request's write to the last byte.
 */
import * as net from 'node:net';

const MiB = 1024 * 1024;

function argValue(argv: string[], name: string, fallback: string): string {
  const i = argv.indexOf(name);
  return i >= 0 && i + 1 < argv.length ? argv[i + 1] : fallback;
}

function serve(argv: string[]): void {
  const lifetime = Number(argValue(argv, '--lifetime', '600'));
  const blocks = new Map<number, Buffer>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.on('error', () => socket.destroy());
    let header = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      header = Buffer.concat([header, chunk]);
      if (header.length < 16) return;
      socket.off('data', onData);
      const total = Number(header.readBigUInt64LE(0));
      const blockSize = Number(header.readBigUInt64LE(8));
      let block = blocks.get(blockSize);
      if (!block) blocks.set(blockSize, (block = Buffer.alloc(blockSize, 0x5a)));
      let left = total;
      const pump = () => {
        while (left > 0) {
          const piece = left >= block!.length ? block! : block!.subarray(0, left);
          left -= piece.length;
          if (!socket.write(piece)) return void socket.once('drain', pump);
        }
        socket.end();
      };
      pump();
    };
    socket.on('data', onData);
  });
  server.listen(0, '127.0.0.1', () => {
    const { port } = server.address() as net.AddressInfo;
    process.stdout.write(JSON.stringify({ ready: true, address: `tcp://127.0.0.1:${port}` }) + '\n');
  });
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  setTimeout(() => process.exit(0), lifetime * 1000).unref();
}

/** One pass: ask for `total` bytes in `block`-sized writes, count them; resolves with the seconds taken. */
function pass(port: number, total: number, block: number, mode: string, scratch: Buffer): Promise<number> {
  return new Promise((resolve, reject) => {
    let got = 0;
    let started = 0;
    const count = (n: number) => {
      got += n;
    };
    // fresh: each block read in place into a new buffer of its own, as a receiver that
    // hands each message out must allocate one (what rxcomm's tcp reader does).
    let current = scratch;
    let fill = 0;
    const fresh = {
      buffer: () => current.subarray(fill),
      callback: (n: number) => {
        count(n);
        fill += n;
        if (fill === current.length) {
          current = Buffer.allocUnsafe(block);
          fill = 0;
        }
        return true;
      },
    };
    const onread = mode === 'onread' ? { buffer: scratch, callback: (n: number) => (count(n), true) } : mode === 'fresh' ? fresh : undefined;
    const socket = net.connect({ host: '127.0.0.1', port, noDelay: true, ...(onread ? { onread } : {}) } as net.NetConnectOpts);
    if (mode === 'data') socket.on('data', (chunk: Buffer) => count(chunk.length));
    socket.on('error', reject);
    socket.on('end', () => {
      const seconds = (performance.now() - started) / 1000;
      socket.destroy();
      if (got !== total) reject(new Error(`received ${got} bytes of ${total}`));
      else resolve(seconds);
    });
    socket.on('connect', () => {
      const request = Buffer.alloc(16);
      request.writeBigUInt64LE(BigInt(total), 0);
      request.writeBigUInt64LE(BigInt(block), 8);
      started = performance.now();
      socket.write(request);
    });
  });
}

async function client(argv: string[]): Promise<void> {
  const address = argv[1] ?? '';
  const port = Number(/:(\d+)\/?$/.exec(address)?.[1]);
  if (!(port > 0)) throw new Error(`client needs tcp://127.0.0.1:PORT, got ${JSON.stringify(address)}`);
  const total = Number(argValue(argv, '--total-mib', '1024')) * MiB;
  const block = Number(argValue(argv, '--block-mib', '16')) * MiB;
  const mode = argValue(argv, '--mode', 'onread');
  if (mode !== 'onread' && mode !== 'fresh' && mode !== 'data') throw new Error(`--mode takes onread, fresh or data, got ${JSON.stringify(mode)}`);
  const scratch = Buffer.alloc(block);
  await pass(port, Math.min(total, 256 * MiB), block, mode, scratch); // warm-up
  const seconds = await pass(port, total, block, mode, scratch);
  const result = { ok: true, mode, total_mib: total / MiB, block_mib: block / MiB, seconds, byte_pipe_MiBps: total / MiB / seconds };
  process.stdout.write(JSON.stringify(result) + '\n');
}

const argv = process.argv.slice(2);
const main = argv[0] === 'server' ? async () => serve(argv) : argv[0] === 'client' ? () => client(argv) : undefined;
if (!main) {
  process.stdout.write(JSON.stringify({ ok: false, error: 'usage: byte_pipe.js server | client ADDRESS [--total-mib N] [--block-mib N] [--mode onread|fresh|data]' }) + '\n');
  process.exit(2);
}
main().then(
  () => undefined,
  (error: unknown) => {
    process.stdout.write(JSON.stringify({ ok: false, error: error instanceof Error ? error.message : String(error) }) + '\n');
    process.exit(1);
  },
);
