/**
 * The web page of spec/browser: a user's app, which imports 'rxcomm' and 'rxcomm/testing'
 * (and rxjs) as any app does. browser-spec.ts bundles it with esbuild from the packed
 * package, serves it, and calls the functions it puts on `globalThis.rxcommPage` through
 * puppeteer's page.evaluate. Each returns plain JSON (see messages.ts) for the spec to
 * check, or rejects with a message that says what went wrong.
 *
 * It is type-checked with the repository's settings (no DOM types): it uses `globalThis`,
 * never `window`.
 */
import { firstValueFrom } from 'rxjs';
import { CommClosedError, connect, listen, toSerialize, UnknownSchemeError, type Comm } from 'rxcomm';
import { createCommPair } from 'rxcomm/testing';
import { compressiblePattern, describeValue, firstCompressibleMismatch, firstMismatch, messageSet, type Described } from './messages';

/** How long the page waits for anything before it gives up and says what it was waiting for. */
const DEADLINE_MS = 30_000;

function withDeadline<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`in the page: ${what} took more than ${DEADLINE_MS} ms`)), DEADLINE_MS);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** An error as plain JSON. */
export interface ErrorReport {
  name: string;
  code: string | null;
  message: string;
  isCommClosedError: boolean;
  isUnknownSchemeError: boolean;
  cause: string | null;
}

function errorReport(err: unknown): ErrorReport {
  const error = err as { name?: unknown; code?: unknown; message?: unknown; cause?: unknown };
  const cause = error?.cause as { name?: unknown; message?: unknown } | undefined;
  return {
    name: String(error?.name),
    code: typeof error?.code === 'string' ? error.code : null,
    message: String(error?.message),
    isCommClosedError: err instanceof CommClosedError,
    isUnknownSchemeError: err instanceof UnknownSchemeError,
    cause: cause ? `${String(cause.name)}: ${String(cause.message)}` : null,
  };
}

/** What one round trip of the message set saw. */
export interface RoundTripReport {
  localAddress: string;
  peerAddress: string;
  /** The peer's handshake, described. */
  remoteInfo: Described;
  sent: Described[];
  received: Described[];
  /** The binary message's bytes as they came back. */
  binary: { constructorName: string; isUint8Array: boolean; length: number; firstMismatch: number } | null;
  /** How `read$` ended: 'complete', or the error. */
  ended: string;
  /** `comm.closed` after `close()` resolved. */
  closed: boolean;
}

/**
 * Writes the message set, reads as many messages back (from an echo), closes, and waits
 * for `read$` to end. The comm is closed when this returns, whatever happened.
 */
async function roundTrip(comm: Comm): Promise<RoundTripReport> {
  const sent = messageSet();
  const received: unknown[] = [];
  let ended = 'not ended';
  let allReceived!: () => void;
  let endOfStream!: () => void;
  const all = new Promise<void>((resolve) => (allReceived = resolve));
  const end = new Promise<void>((resolve) => (endOfStream = resolve));
  const subscription = comm.read$.subscribe({
    next: (message) => {
      received.push(message);
      if (received.length === sent.length) allReceived();
    },
    complete: () => {
      ended = 'complete';
      allReceived();
      endOfStream();
    },
    error: (err: unknown) => {
      ended = `error ${errorReport(err).name}: ${errorReport(err).message}`;
      allReceived();
      endOfStream();
    },
  });
  try {
    for (const message of sent) await withDeadline(comm.write(message), 'a write');
    await withDeadline(all, `the echo of ${sent.length} messages (got ${received.length})`);
    await withDeadline(comm.close(), 'close()');
    await withDeadline(end, 'the end of read$ after close()');
  } finally {
    subscription.unsubscribe();
    if (!comm.closed) comm.abort();
  }
  const echoed = received.find((m) => (m as { op?: unknown } | null)?.op === 'binary') as { data?: unknown } | undefined;
  const data = echoed?.data as Uint8Array | undefined;
  return {
    localAddress: comm.localAddress,
    peerAddress: comm.peerAddress,
    remoteInfo: describeValue(comm.remoteInfo),
    sent: sent.map(describeValue),
    received: received.map(describeValue),
    binary:
      data === undefined
        ? null
        : {
            constructorName: String((data as { constructor?: { name?: unknown } }).constructor?.name),
            isUint8Array: data instanceof Uint8Array,
            length: data.length,
            firstMismatch: data instanceof Uint8Array ? firstMismatch(data) : 0,
          },
    ended,
    closed: comm.closed,
  };
}

const tests = {
  /** The page's origin, and what a bundle for Node would have found (nothing). */
  async environment(): Promise<{ origin: string; nodeGlobals: string[] }> {
    const scope = globalThis as unknown as { location: { origin: string }; Buffer?: unknown; process?: unknown };
    return { origin: scope.location.origin, nodeGlobals: [typeof scope.Buffer, typeof scope.process] };
  },

  /** ws:// to a Node listener. */
  async ws(address: string): Promise<RoundTripReport> {
    const comm = await withDeadline(firstValueFrom(connect(address, { timeout: 20_000 })), `connect('${address}')`);
    return roundTrip(comm);
  },

  /** inproc:// within the page: an echo listener and a comm to it. */
  async inproc(): Promise<RoundTripReport & { contactAddress: string; echoEnded: string }> {
    let echoEnded = 'no comm';
    const listener = listen('inproc://', (comm) => {
      echoEnded = 'open';
      comm.read$.subscribe({
        next: (message) => comm.next(message),
        complete: () => {
          echoEnded = 'complete';
          comm.complete();
        },
        error: (err: unknown) => {
          echoEnded = `error ${errorReport(err).message}`;
          comm.error(err);
        },
      });
    });
    try {
      await withDeadline(listener.start(), 'listen(inproc://).start()');
      const { contactAddress } = listener;
      const comm = await withDeadline(firstValueFrom(connect(contactAddress, { timeout: 20_000 })), `connect('${contactAddress}')`);
      const report = await roundTrip(comm);
      return { ...report, contactAddress, echoEnded };
    } finally {
      listener.stop();
    }
  },

  /** createCommPair of rxcomm/testing: one end echoes. */
  async commPair(): Promise<RoundTripReport & { echoClosed: boolean }> {
    const [a, b] = createCommPair();
    b.read$.subscribe(b);
    try {
      const report = await roundTrip(a);
      return { ...report, echoClosed: b.closed };
    } finally {
      b.abort();
    }
  },

  /**
   * Compression in the page: lz4 negotiated with a Node listener, a payload compressed here
   * and one compressed there, then one payload in each format the listener sends
   * unasked; zstd refused as an option (a page has no zstd encoder).
   */
  async compression(address: string): Promise<CompressionReport> {
    let zstdRefused = 'not refused';
    try {
      connect(address, { compression: 'zstd' });
    } catch (err) {
      zstdRefused = errorReport(err).message;
    }
    const comm = await withDeadline(firstValueFrom(connect(address, { timeout: 20_000, compression: 'lz4' })), `connect('${address}', lz4)`);
    try {
      const wireSize = await comm.write({ op: 'echo', data: toSerialize(compressiblePattern()) });
      const echoed = (await withDeadline(comm.read(), 'the echo')) as { op: string; data: Uint8Array; wireSize: number };
      await comm.write({ op: 'formats' });
      const formats: CompressionReport['formats'] = {};
      for (let i = 0; i < 4; i++) {
        const { op, data } = (await withDeadline(comm.read(), 'a payload of each format')) as { op: string; data: Uint8Array };
        formats[op] = { isUint8Array: data instanceof Uint8Array, firstMismatch: firstCompressibleMismatch(data) };
      }
      return {
        negotiated: comm.handshakeOptions.compression,
        wireSize,
        echo: { firstMismatch: firstCompressibleMismatch(echoed.data), wireSize: echoed.wireSize },
        formats,
        zstdRefused,
      };
    } finally {
      await comm.close();
    }
  },

  /** A Dask scheduler's identity, asked over `address` (an `rxcomm bridge` to one). */
  async schedulerIdentity(address: string): Promise<{ type: unknown; id: unknown; remoteCompression: unknown }> {
    const comm = await withDeadline(firstValueFrom(connect(address, { timeout: 20_000 })), `connect('${address}')`);
    try {
      await comm.write({ op: 'identity', reply: true });
      const identity = (await withDeadline(comm.read(), 'the identity reply')) as { type?: unknown; id?: unknown };
      return { type: identity.type, id: identity.id, remoteCompression: comm.remoteInfo.compression };
    } finally {
      await comm.close();
    }
  },

  /** A connect that must fail: its error, or what it connected to (the comm is aborted). */
  async connectError(address: string, timeout: number): Promise<{ connected: string } | { error: ErrorReport }> {
    try {
      const comm = await withDeadline(firstValueFrom(connect(address, { timeout })), `connect('${address}')`);
      comm.abort();
      return { connected: comm.peerAddress };
    } catch (err) {
      return { error: errorReport(err) };
    }
  },
};

export interface CompressionReport {
  negotiated: string | null;
  /** What the page's compressed write took on the wire. */
  wireSize: number;
  /** The payload as the Node side compressed it back, and its size on the wire there. */
  echo: { firstMismatch: number; wireSize: number };
  /** One payload per format, compressed by the Node side whatever was negotiated. */
  formats: Record<string, { isUint8Array: boolean; firstMismatch: number }>;
  zstdRefused: string;
}

export type PageTests = typeof tests;

(globalThis as unknown as { rxcommPage?: PageTests }).rxcommPage = tests;
