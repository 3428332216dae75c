/**
 * `rxcomm bridge`, spawned as a user would run it: a real Dask Client's workload (tasks,
 * scatter and gather of megabytes, events) through it to a real Dask cluster over tcp and
 * over mutual tls, its counts on exit, and closing and aborting in step between rxcomm
 * comms. The browser case (a page that gets a real scheduler's identity through a ws
 * bridge) is in spec/browser/browser-spec.ts, which has the browser.
 */
import { spawn } from 'node:child_process';
import { firstValueFrom, take, toArray } from 'rxjs';
import { type Comm, CommClosedError, connect, listen, type Listener } from 'rxcomm';
import { testCertificates } from '../helpers/certs';
import { type Cli, startBridge } from '../helpers/cli';
import { collect } from '../helpers/transports';
import { DaskPeer, describeInterop, PYTHON, REPO_ROOT, tlsArgs } from '../interop/dask-peer';

/** A dask_workload.py child, spoken to with dask_peer.py's JSON-line protocol. */
function workload(args: string[]): DaskPeer {
  return new DaskPeer(args, spawn(PYTHON, ['interop/dask_workload.py', ...args], { cwd: REPO_ROOT, stdio: ['pipe', 'pipe', 'pipe'] }));
}

function pemFiles(who: 'server' | 'client') {
  const certs = testCertificates();
  return { ca: certs.ca.certFile, cert: certs[who].certFile, key: certs[who].keyFile };
}

const BRIDGED = /bridged (\d+) comms? \((\d+) could not reach \S+\): (\d+) messages? to the target, (\d+) back/;

describeInterop('rxcomm bridge with a real Dask cluster', () => {
  const running: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((stop) => stop()));
  });

  describe.each([
    { name: 'tcp', listen: 'tcp://127.0.0.1:0', python: (): string[] => [], cli: (): string[] => [] },
    {
      name: 'tls',
      listen: 'tls://127.0.0.1:0',
      python: (who: 'server' | 'client') => tlsArgs(pemFiles(who)),
      cli: () => {
        const files = pemFiles('server'); // the test CA signed it for server and client use
        return ['--tls-ca', files.ca, '--tls-cert', files.cert, '--tls-key', files.key];
      },
    },
  ])('over $name', (transport) => {
    it("should carry a Dask Client's workload to the scheduler, and report its counts on exit", async () => {
      const cluster = workload(['cluster', ...transport.python('server')]);
      running.push(() => cluster.stop());
      const ready = await cluster.waitForLine((line) => line.ready === true || line.ok === false, 60_000, 'the cluster');
      expect(ready).toMatchObject({ ready: true });
      const { bridge, address } = await startBridge(transport.listen, ready.address as string, transport.cli());
      running.push(() => bridge.interrupt());

      const client = workload(['client-workload', address, ...transport.python('client')]);
      client.child.stdin.end();
      const { code } = await client.exited;
      expect(client.lines.filter((line) => line.ok === false)).toEqual([]);
      expect({ code, summary: client.lines.at(-1) }).toEqual({ code: 0, summary: { summary: true, ok: true, steps: 7 } });

      expect(await bridge.interrupt()).toBe(0);
      const [, comms, unreachable, toTarget, back] = (BRIDGED.exec(bridge.stderr) ?? []).map(Number);
      expect(comms).toBeGreaterThanOrEqual(2); // the Client's stream and its rpc comms
      expect(unreachable).toBe(0);
      expect(toTarget).toBeGreaterThan(10);
      expect(back).toBeGreaterThan(10);
    }, 120_000);
  });
});

describe('rxcomm bridge between rxcomm comms', () => {
  let target: Listener;
  let accepted: Comm[];
  let bridge: Cli;
  let address: string;

  beforeEach(async () => {
    accepted = [];
    target = await listen('tcp://127.0.0.1:0', (comm) => void accepted.push(comm)).start();
    ({ bridge, address } = await startBridge('tcp://127.0.0.1:0', target.contactAddress));
  });

  afterEach(async () => {
    await bridge.interrupt();
    target.stop();
    await Promise.all(accepted.map((comm) => comm.close()));
  });

  const nextAccepted = async (): Promise<Comm> => {
    for (let i = 0; i < 500 && accepted.length === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
    const comm = accepted.shift();
    if (!comm) throw new Error('the target accepted no comm from the bridge');
    return comm;
  };

  it('should forward messages both ways in order, binary untouched, and close in step', async () => {
    const client = await firstValueFrom(connect(address));
    const far = await nextAccepted();
    const bytes = new Uint8Array(3 << 20).map((_, i) => i & 0xff);
    const arriving = firstValueFrom(far.read$.pipe(take(101), toArray()));
    for (let i = 0; i < 100; i++) void client.write({ i });
    await client.write({ bytes });
    const arrived = await arriving;
    expect(arrived.slice(0, 100)).toEqual([...Array(100).keys()].map((i) => ({ i })));
    expect(Buffer.from((arrived[100] as { bytes: Uint8Array }).bytes).equals(bytes)).toBe(true);
    await far.write('back');
    expect(await client.read()).toBe('back');
    // A clean close on one side closes the other: its read$ completes.
    const farEnd = collect(far.read$);
    await client.close();
    expect(await farEnd).toEqual({ values: [] });
    expect(await bridge.interrupt()).toBe(0);
    expect(bridge.stderr).toContain('bridged 1 comm (0 could not reach');
    expect(bridge.stderr).toContain('101 messages to the target, 1 back');
  });

  it('should abort the other side when one side aborts', async () => {
    const client = await firstValueFrom(connect(address));
    const far = await nextAccepted();
    const clientEnd = collect(client.read$);
    far.abort();
    expect((await clientEnd).error).toBeInstanceOf(CommClosedError);
  });

  it('should abort a comm whose target cannot be reached, and count it', async () => {
    const unreachable = await startBridge('tcp://127.0.0.1:0', 'tcp://127.0.0.1:1', ['--timeout', '300']);
    try {
      const client = await firstValueFrom(connect(unreachable.address));
      expect((await collect(client.read$)).error).toBeInstanceOf(CommClosedError);
      expect(await unreachable.bridge.interrupt()).toBe(0);
      expect(unreachable.bridge.stderr).toMatch(/could not be bridged: .*tcp:\/\/127\.0\.0\.1:1/);
      expect(unreachable.bridge.stderr).toContain('bridged 1 comm (1 could not reach tcp://127.0.0.1:1): 0 messages to the target, 0 back');
    } finally {
      await unreachable.bridge.interrupt();
    }
  });
});
