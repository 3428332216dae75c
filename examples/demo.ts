/**
 * `npm start`: rxcomm on its embedded transports, no outside services.
 *
 * For each transport: listen, connect, pipe messages through operators both ways, and
 * close. Then a payload sent lz4-compressed, as Dask compresses its out-of-band frames,
 * and a connect attempt to an address nobody serves, retried until its timeout.
 */
import { filter, firstValueFrom, from, map, take, toArray } from 'rxjs';
import { connect, listen, status$, toSerialize, writeTo, type Comm, type ConnectConfig } from 'rxcomm';
import { cleanUpDemo, demoTransports } from './demo-transports';

function log(line: string): void {
  console.log(line);
}

/** A server that upper-cases every `text` it receives and numbers the replies. */
function shoutingServer(comm: Comm): void {
  let n = 0;
  comm.read$
    .pipe(
      filter((msg): msg is { op: string; text: string } => (msg as { op?: string }).op === 'shout'),
      map((msg) => ({ op: 'echo', n: ++n, text: msg.text.toUpperCase() })),
    )
    .subscribe(comm);
}

async function demoTransport(name: string, address: string, config: ConnectConfig): Promise<void> {
  log(`\n== ${name} ==`);
  const listener = listen(address, config);
  const serving = listener.subscribe((comm) => {
    log(`  listener accepted ${comm.peerAddress}`);
    shoutingServer(comm);
  });
  const { listenAddress, contactAddress } = await firstValueFrom(listener.bound$);
  log(`  listening on ${listenAddress}, contact address ${contactAddress}`);

  const comm = await firstValueFrom(connect(contactAddress, config));
  log(`  connected: ${comm}`);
  log(`  handshake agreed: ${JSON.stringify(comm.handshakeOptions)}`);
  if (comm.extraInfo.cipher) log(`  cipher: ${JSON.stringify(comm.extraInfo.cipher)}`);

  const words = ['comms', 'as', 'observables'];
  const replies = firstValueFrom(comm.read$.pipe(take(words.length), toArray()));
  from(words)
    .pipe(
      map((text) => ({ op: 'shout', text })),
      writeTo(comm),
    )
    .subscribe();
  for (const reply of await replies) log(`  reply: ${JSON.stringify(reply)}`);

  await comm.close();
  serving.unsubscribe();
  log(`  closed: ${comm}`);
}

async function demoCompression(): Promise<void> {
  log('\n== compression (tcp, both sides ask for lz4) ==');
  const listener = await listen('tcp://127.0.0.1:0', (comm) => comm.read$.subscribe(comm), { compression: 'lz4' }).start();
  const comm = await firstValueFrom(connect(listener.contactAddress, { compression: 'lz4' }));
  log(`  handshake agreed: ${JSON.stringify(comm.handshakeOptions)}`);
  const column = new Float64Array(1 << 17).map((_, i) => Math.floor(i / 1024)); // 1 MiB, 128 distinct values
  const wire = await comm.write({ op: 'store', data: toSerialize(new Uint8Array(column.buffer)) });
  const echoed = (await comm.read()) as { data: Uint8Array };
  log(`  1 MiB payload took ${wire} bytes on the wire; the echo brought back ${echoed.data.length} bytes`);
  await comm.close();
  listener.stop();
}

async function demoRetry(): Promise<void> {
  log('\n== connect to an address nobody serves ==');
  const address = 'tcp://127.0.0.1:9';
  const retries = status$.pipe(filter((e) => e.type === 'connect:retry')).subscribe((e) => {
    if (e.type === 'connect:retry') {
      log(`  attempt ${e.attempt} failed (${e.error.message}); retrying in ${e.delay.toFixed(1)} ms`);
    }
  });
  try {
    await firstValueFrom(connect(address, { timeout: 300 }));
  } catch (err) {
    const error = err as Error;
    log(`  ${error.name}: ${error.message}`);
    log(`  caused by: ${(error.cause as Error | undefined)?.message}`);
  } finally {
    retries.unsubscribe();
  }
}

async function main(): Promise<void> {
  log('rxcomm demo: Dask-compatible comms as RxJS streams');
  for (const transport of await demoTransports()) {
    await demoTransport(transport.name, transport.address, transport.config);
  }
  await demoCompression();
  await demoRetry();
  await cleanUpDemo();
  log('\ndone');
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
