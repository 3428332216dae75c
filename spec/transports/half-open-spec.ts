/**
 * Dead-peer detection over a real cut link (issue #10). An rxcomm listener runs in one
 * network namespace and a client in another, joined by a veth pair; once they have
 * talked, the link is cut both ways without a FIN or reset (blackhole routes, see
 * `NetnsPair.cut`), and each side must fail with `DeadPeerError`: idle, busy (small
 * messages flowing both ways), and flooding (both directions backed up, so that the
 * echoing listener's reading is held back by its own unsent echoes when the link goes).
 *
 * Detection times are printed, not asserted: they depend on the machine. Each wait is
 * bounded (4 × deadPeerTimeout) only so that a comm that never notices fails the spec
 * instead of hanging it. For comparison, Dask notices the same cut in 24-31 s with its
 * defaults (keepalive idle 10 s, interval 2 s, 10 probes; TCP_USER_TIMEOUT 30 s).
 *
 * Small timeouts (3 s) keep the heartbeat cases short; one idle case runs with the
 * default (30 s), and the Dask-style case needs 11 s (keepalive idle 1 s + 10 probes).
 * Needs root: elsewhere the suite is skipped with the reason, and under CI it fails
 * (see netns.ts).
 */
import { golden } from '../fixtures/golden';
import { type NetnsChild, type PeerScript, bundlePeerScript, spawnInNamespace, stopAllChildren } from '../helpers/netns-child';
import { ADDRESS_A, type NetnsPair, type TcpCounters, createNetnsPair, describeWithNetns } from '../helpers/netns';
import type { PeerLine } from '../helpers/half-open-peer';

/** The deadPeerTimeout of the short cases, in ms. */
const SHORT = 3_000;
/** COMM_DEFAULTS.deadPeerTimeout, which the `default` case leaves unset. */
const DEFAULT_TIMEOUT = 30_000;
/** keepalive idle max(1 s, 11 s − 10 s), then libuv's 10 probes 1 s apart. */
const KEEPALIVE_CASE = 11_000;
const START_MS = 15_000;

/** What a Dask scheduler sent a client: its handshake (no rxcomm heartbeat key), then one answer. */
const DASK_STREAM = golden('dask-2022.12.1-scheduler-to-client.bin').toString('hex');

const dead = { name: 'DeadPeerError', code: 'ERR_DEAD_PEER', commClosed: true };
/** Writes after the failure reject with a CommClosedError (DeadPeerError or another). */
const closed = { commClosed: true };

describeWithNetns('half-open links: a peer cut off without FIN or reset', () => {
  let pair: NetnsPair | undefined;
  let script: PeerScript | undefined;
  const detections: string[] = [];

  beforeAll(async () => {
    script = await bundlePeerScript();
    pair = createNetnsPair('halfopen');
  });

  afterEach(async () => {
    await stopAllChildren();
    pair?.restore();
  });

  afterAll(() => {
    pair?.destroy();
    script?.remove();
    if (detections.length > 0) console.log(`half-open detection times (from the cut):\n${detections.join('\n')}`);
  });

  interface Cut {
    /** The client's `ready` line: `heartbeats` is the listener's advertised timeout, or null. */
    ready: PeerLine;
    client: PeerLine;
    server: PeerLine | undefined;
    /** How each namespace's TCP counters grew from the cut to the end (A: listener, B: client). */
    a: TcpCounters;
    b: TcpCounters;
  }

  /**
   * Starts `server` in namespace A and a client (`connect ADDRESS timeout mode`) in B,
   * waits for their round trip, cuts the link, and waits for the client's `failed` line
   * (and the server's, unless it is a Dask-style peer that reports none).
   */
  async function cutUnder(name: string, server: string[], timeout: number | 'default', mode: 'idle' | 'busy' | 'flood'): Promise<Cut> {
    const link = pair!;
    const listener = spawnInNamespace(link.a, script!, server, `${server[0]} (${name})`);
    const { address } = await listener.waitFor('listening', START_MS);
    const client = spawnInNamespace(link.b, script!, ['connect', String(address), String(timeout), mode], `client (${name})`);
    const ready = await client.waitFor('ready', START_MS);
    await listener.waitFor('accepted', START_MS);
    // Flooding: cut once the listener's echoes keep being held back (its reading waits on them).
    if (mode === 'flood') await listener.waitFor('backpressured', START_MS);

    const cutAt = Date.now();
    link.cut();
    const before = link.tcpCounters();
    const guard = 4 * (timeout === 'default' ? DEFAULT_TIMEOUT : timeout);
    const watchesServer = server[0] === 'listen';
    const [clientEnd, serverEnd] = await Promise.allSettled([
      client.waitFor('failed', guard),
      watchesServer ? listener.waitFor('failed', guard) : Promise.resolve(undefined),
    ]);
    const after = link.tcpCounters();
    const grown = (side: 'a' | 'b'): TcpCounters => ({
      InSegs: after[side].InSegs - before[side].InSegs,
      OutSegs: after[side].OutSegs - before[side].OutSegs,
    });
    const [a, b] = [grown('a'), grown('b')];

    const since = (end: PromiseSettledResult<PeerLine | undefined>) => {
      if (end.status === 'rejected') return `nothing within ${guard} ms`;
      if (!end.value) return 'not watched';
      const { silentFor } = end.value.error as { silentFor?: number };
      return `${end.value.at - cutAt} ms (silentFor ${silentFor ?? 'undefined'})`;
    };
    const detection = `${name} (deadPeerTimeout ${timeout}): client ${since(clientEnd)}, listener ${since(serverEnd)}; new segments sent into the cut: client ${b.OutSegs}, listener ${a.OutSegs}`;
    detections.push(`  ${detection}`);
    // A side that never notices fails the spec; the message says how the other fared.
    const missed = [clientEnd, serverEnd].flatMap((end) => (end.status === 'rejected' ? [(end.reason as Error).message] : []));
    if (missed.length > 0) throw new Error(`${missed.join('\n')}\n(${detection})`);
    const value = <T>(end: PromiseSettledResult<T>) => (end as PromiseFulfilledResult<T>).value;
    return { ready, client: value(clientEnd)!, server: value(serverEnd), a, b };
  }

  /**
   * Silent: from the cut on, no TCP segment reached either side, so neither saw a FIN or
   * a reset. (Each side resets its connection when it gives up; the cut drops that too.)
   */
  function expectSilence(cut: Cut): void {
    expect([cut.a.InSegs, cut.b.InSegs]).toEqual([0, 0]);
  }

  it.each([
    ['idle', 'idle', SHORT],
    ['busy: a 1 KiB message every 10 ms, echoed', 'busy', SHORT],
    ['flooding: 256 KiB messages as fast as writes are taken, echoes read slower, both ways backed up', 'flood', SHORT],
  ] as const)(
    'should fail both comms with DeadPeerError when the link is cut (%s)',
    async (name, mode, timeout) => {
      const cut = await cutUnder(name, ['listen', `tcp://${ADDRESS_A}:0`, String(timeout)], timeout, mode);
      expect(cut.ready.heartbeats).toBe(timeout);

      for (const side of [cut.client, cut.server!]) {
        expect(side.error).toMatchObject({ ...dead, silentFor: expect.any(Number) });
        expect(side.laterWrite).toMatchObject(closed);
      }
      if (mode !== 'idle') expect(cut.b.OutSegs).toBeGreaterThan(0); // busy indeed: the client kept sending data after the cut
      // The flooding client was waiting for its socket to drain: that write fails too.
      if (mode === 'flood') expect(cut.client.pendingWrite).toMatchObject(dead);
      expectSilence(cut);
    },
    4 * SHORT + 2 * START_MS,
  );

  it(
    `should fail both idle comms with DeadPeerError with the default deadPeerTimeout (${DEFAULT_TIMEOUT} ms)`,
    async () => {
      const cut = await cutUnder('idle, default timeout', ['listen', `tcp://${ADDRESS_A}:0`, 'default'], 'default', 'idle');
      expect(cut.ready.heartbeats).toBe(DEFAULT_TIMEOUT);

      for (const side of [cut.client, cut.server!]) {
        expect(side.error).toMatchObject({ ...dead, silentFor: expect.any(Number) });
        expect(side.laterWrite).toMatchObject(closed);
      }
      expectSilence(cut);
    },
    4 * DEFAULT_TIMEOUT + 2 * START_MS,
  );

  it(
    'should fail an idle comm to a Dask-style peer (no heartbeats) with DeadPeerError by TCP keepalive',
    async () => {
      const cut = await cutUnder('idle, Dask-style peer', ['dask-listen', ADDRESS_A, DASK_STREAM], KEEPALIVE_CASE, 'idle');
      expect(cut.ready.heartbeats).toBeNull();

      // The kernel decided (keepalive probes unanswered): no silentFor, ETIMEDOUT underneath.
      expect(cut.client.error).toMatchObject({ ...dead, causeCode: 'ETIMEDOUT' });
      expect((cut.client.error as { silentFor?: unknown }).silentFor).toBeUndefined();
      expect(cut.client.laterWrite).toMatchObject(closed);
      expectSilence(cut);
    },
    4 * KEEPALIVE_CASE + 2 * START_MS,
  );
});
