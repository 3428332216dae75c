/**
 * The protocol layer alone, in one process, no sockets: rxcomm's msgpack, codec and
 * FrameParser side by side with msgpackr and with a plain copy, in one run. It is the
 * micro-benchmark behind the speed notes in lib/protocol (msgpack.ts, frames.ts); the
 * end-to-end figures are run.ts's. Numbers are noisy: compare the ratios it prints
 * between lines of one run, never across runs, and never assert them in a test.
 *
 *     npm run bench -- --parser
 *     node dist-scripts/bench/parser.js        (after npm run build:scripts)
 *
 * FrameParser and the codec are internal (not exported by `rxcomm`), hence the import
 * from lib/protocol's index rather than the package.
 */
import { Packr, Unpackr } from 'msgpackr';
import { daskCodec, encodePrelude, FrameParser, packMessage, unpackMessage } from '../lib/protocol';

function rate(name: string, count: number, run: (count: number) => void): number {
  run(Math.min(count, 200_000)); // warm up
  const best: number[] = [];
  for (let round = 0; round < 3; round++) {
    const start = process.hrtime.bigint();
    run(count);
    best.push(count / (Number(process.hrtime.bigint() - start) / 1e9));
  }
  const perSecond = Math.max(...best);
  const shown = perSecond >= 1e4 ? `${(perSecond / 1e6).toFixed(2)} M/s` : `${perSecond.toFixed(1)} /s`;
  console.log(`${name.padEnd(60)} ${shown.padStart(10)}`);
  return perSecond;
}

/** Prints one line per measurement; returns when done (about 30 s). */
export function runParserBench(): void {
  let sink: unknown;
  const small = { op: 'x', i: 1, data: 'abc' };
  const smallBytes = packMessage(small);
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const objectsUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  const mapsUnpackr = new Unpackr({ useRecords: false, mapsAsObjects: false });

  console.log('msgpack, small map {op, i, data}');
  const ours = rate('packMessage', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = packMessage(small);
  });
  const theirs = rate('msgpackr Packr (useRecords false, variableMapSize)', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = packr.pack(small);
  });
  console.log(`  ratio ours/msgpackr: ${(ours / theirs).toFixed(2)}`);
  const decoded = rate('unpackMessage (scan + maps as objects)', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = unpackMessage(smallBytes);
  });
  const lossy = rate('msgpackr mapsAsObjects: true (lossy)', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = objectsUnpackr.unpack(smallBytes);
  });
  rate('msgpackr mapsAsObjects: false (Maps, no walk)', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = mapsUnpackr.unpack(smallBytes);
  });
  const intKeyBytes = packMessage(new Map<unknown, unknown>([['op', 'x'], [1, 'abc']]));
  rate('unpackMessage, int key (Maps + walk)', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = unpackMessage(intKeyBytes);
  });
  console.log(`  ratio ours/msgpackr-lossy: ${(decoded / lossy).toFixed(2)}`);

  console.log('codec, small message');
  const codec = daskCodec({ deserialize: false });
  rate('codec.encode', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = codec.encode(small);
  });
  const frames = codec.encode(small);
  rate('codec.decode', 3e6, (n) => {
    for (let i = 0; i < n; i++) sink = codec.decode(frames);
  });

  console.log('framing');
  const message = Buffer.concat([encodePrelude(frames), ...frames]);
  const batch = Buffer.concat(Array.from({ length: 10_000 }, () => message));
  let received = 0;
  const parser = new FrameParser({ maxMessageSize: 1 << 30, onMessage: () => received++ });
  rate('FrameParser, 10,000 small messages per chunk', 2e7, (n) => {
    for (let i = 0; i < n; i += 10_000) parser.push(batch);
  });
  const decodingParser = new FrameParser({
    maxMessageSize: 1 << 30,
    onMessage: (parts) => {
      sink = codec.decode(parts);
    },
  });
  rate('FrameParser + codec.decode, same chunks', 6e6, (n) => {
    for (let i = 0; i < n; i += 10_000) decodingParser.push(batch);
  });
  rate('codec.encode + encodePrelude', 3e6, (n) => {
    for (let i = 0; i < n; i++) {
      const parts = codec.encode(small);
      sink = encodePrelude(parts);
    }
  });
  const big = Buffer.alloc(64 << 20);
  const bigMessage = Buffer.concat([encodePrelude([big]), big]);
  const chunks: Buffer[] = [];
  for (let at = 0; at < bigMessage.length; at += 64 << 10) chunks.push(bigMessage.subarray(at, at + (64 << 10)));
  const bigParser = new FrameParser({ maxMessageSize: 1 << 30, onMessage: () => received++ });
  const mibPerSecond = rate('FrameParser, 64 MiB message in 64 KiB chunks', 20, (n) => {
    for (let i = 0; i < n; i++) for (const chunk of chunks) bigParser.push(chunk);
  });
  const copyPerSecond = rate('baseline: copy the same chunks into a fresh 64 MiB buffer', 20, (n) => {
    for (let i = 0; i < n; i++) {
      const target = Buffer.allocUnsafe(64 << 20);
      let at = 0;
      for (const chunk of chunks) at += chunk.copy(target, at);
    }
  });
  // Both are bound by first touches of fresh memory (page faults), not by the parser.
  console.log(`  = ${(mibPerSecond * 64).toFixed(0)} MiB/s, copy baseline ${(copyPerSecond * 64).toFixed(0)} MiB/s`);
  void sink;
  void received;
}

if (require.main === module) runParserBench();
