/**
 * `listener.stop()` while clients are mid-handshake: a client whose `connect()`
 * succeeded must get a working comm (the handshake finishes and goes to the handler), or,
 * for an Observable subscriber that left, a clean close reported as rejected; never a
 * reset of a comm the client already holds.
 */
import { filter, firstValueFrom } from 'rxjs';
import { connect, listen, status$, type Comm, type CommStatus } from 'rxcomm';
import { transports } from '../helpers/transports';

const ROUNDS = Number(process.env.ROUNDS ?? 10);
const CLIENTS_PER_ROUND = 5;
const CLOSED = Symbol('closed');

/** Lets `n` turns of the event loop pass: the stop lands at varying points of the handshakes. */
async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** Connects, or `undefined` if the listener was already gone. */
function tryConnect(address: string, config: object): Promise<Comm | undefined> {
  return firstValueFrom(connect(address, { ...config, timeout: 300 })).catch(() => undefined);
}

describe.each(transports.filter((t) => t.name !== 'inproc'))('stopping a listener during handshakes, over $name', (transport) => {
  it('should hand every comm whose connect() succeeded to the handler, working', async () => {
    let succeeded = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const handled: Comm[] = [];
      const listener = listen(
        transport.listenAddress,
        (comm) => {
          handled.push(comm);
          comm.read$.subscribe(comm); // echo
        },
        transport.config(),
      );
      await listener.start();
      const address = listener.contactAddress;
      const clients = Array.from({ length: CLIENTS_PER_ROUND }, () => tryConnect(address, transport.config()));
      await turns(round % 7);
      listener.stop();
      for (const comm of await Promise.all(clients)) {
        if (!comm) continue;
        succeeded++;
        await comm.write({ round });
        expect(await comm.read()).toEqual({ round });
        await comm.close();
      }
      await Promise.all(handled.map((comm) => comm.close()));
    }
    // The rounds did exercise the race: some connects got through.
    expect(succeeded).toBeGreaterThan(0);
  });

  it('should close cleanly, and report, a comm whose subscriber left before its handshake finished', async () => {
    const events: CommStatus[] = [];
    const watching = status$.pipe(filter((e) => e.type === 'listen:rejected')).subscribe((e) => events.push(e));
    let cleanEnds = 0;
    let served = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const accepted: Comm[] = [];
      const listener = listen(transport.listenAddress, transport.config());
      const subscription = listener.subscribe((comm) => {
        accepted.push(comm);
        comm.read$.subscribe(comm);
      });
      const { contactAddress } = await firstValueFrom(listener.bound$);
      const clients = Array.from({ length: CLIENTS_PER_ROUND }, () => tryConnect(contactAddress, transport.config()));
      await turns(round % 7);
      subscription.unsubscribe();
      for (const comm of await Promise.all(clients)) {
        if (!comm) continue;
        // The echo, or the end of the stream: a clean close completes it, a reset would reject.
        const reply = firstValueFrom(comm.read$, { defaultValue: CLOSED });
        await comm.write('x').catch(() => undefined);
        if ((await reply) === 'x') {
          served++;
          await comm.close();
        } else {
          cleanEnds++;
        }
      }
      await Promise.all(accepted.map((comm) => comm.close()));
    }
    watching.unsubscribe();
    expect(served + cleanEnds).toBeGreaterThan(0);
    if (cleanEnds > 0) {
      expect(events.some((e) => e.type === 'listen:rejected' && /stopped while this handshake/.test(e.error.message))).toBe(true);
    }
  });
});
