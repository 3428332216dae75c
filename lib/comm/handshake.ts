/**
 * Dask's comm handshake (`distributed/comm/core.py`): right after connecting or
 * accepting, each side writes one map and reads the peer's. Writing first, then
 * reading, never deadlocks against any Dask version.
 */
import { Observable } from 'rxjs';
import { type CommClosedError, FatalCommClosedError, HandshakeError, toCommClosedError } from '../errors';
import type { Comm, HandshakeInfo, HandshakeOptions } from './comm';

/**
 * What rxcomm advertises by default: no compression (the `compression` option changes
 * it per comm; a scheduler may still forward compressed payloads, which are read by
 * their labels). rxcomm never pickles. Dask requires `pickle-protocol` and never reads
 * `python`; we send the value Debian bookworm's Dask sends.
 */
export const LOCAL_HANDSHAKE: Readonly<HandshakeInfo> = Object.freeze({
  compression: null,
  python: Object.freeze([3, 11, 2]), // frozen too: the map never changes, and is encoded once
  'pickle-protocol': 5,
});

function isPlainMap(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && !(value instanceof Map) && !ArrayBuffer.isView(value);
}

/**
 * rxcomm's heartbeat extension: each rxcomm side adds this key with its own
 * `deadPeerTimeout` (ms, 0 when off). A side that sees it in the peer's handshake may
 * send heartbeats (messages of no frames) and will receive them; Dask ignores keys it
 * does not know and never sees a heartbeat, since it never advertises the key.
 */
export const HEARTBEAT_KEY = 'rxcomm-heartbeat';

/** The peer's deadPeerTimeout if it understands heartbeats, else `undefined`. */
function peerHeartbeat(remote: HandshakeInfo): number | undefined {
  const value = remote[HEARTBEAT_KEY];
  return typeof value === 'number' && value >= 0 && Number.isFinite(value) ? value : undefined;
}

/**
 * The key of the map a listener sends instead of its handshake when it refuses a peer
 * it has authenticated (a TLS client certificate it does not trust). rxcomm's own
 * extension, both ends of it in this file: `refuse` writes it, `negotiate` reads it. A
 * Dask peer reads it as a handshake without `pickle-protocol` and fails at once too.
 */
const HANDSHAKE_REJECTED_KEY = 'rejected';

/**
 * Answers a peer's handshake with `{rejected: reason}`, then closes: the peer learns
 * why at once instead of retrying a connection that drops. Closing flushes the answer
 * and reads on until the peer hangs up (closing with unread bytes would reset the
 * connection and lose it), for at most the comm's `closeTimeout`.
 */
export function refuse(comm: Comm, reason: string): Promise<void> {
  comm.write({ [HANDSHAKE_REJECTED_KEY]: reason }).catch(() => undefined); // close() reports what matters
  return comm.close();
}

/** Dask's `handshake_configuration`: the lower pickle protocol, compression only if both agree. */
export function negotiate(local: HandshakeInfo, remote: unknown): HandshakeOptions {
  if (isPlainMap(remote) && typeof remote[HANDSHAKE_REJECTED_KEY] === 'string' && !('pickle-protocol' in remote)) {
    throw new FatalCommClosedError(`the peer refused this connection: ${remote[HANDSHAKE_REJECTED_KEY]}`);
  }
  if (!isPlainMap(remote) || typeof remote['pickle-protocol'] !== 'number' || !('compression' in remote)) {
    throw new HandshakeError(
      'peer handshake lacks pickle-protocol or compression; ' +
        `is the peer a Dask comm? (got ${JSON.stringify(remote, (_k, v) => (typeof v === 'bigint' ? String(v) : v))?.slice(0, 200)})`,
    );
  }
  const compression = local.compression === remote.compression ? (local.compression as string | null) : null;
  return {
    compression,
    'pickle-protocol': Math.min(local['pickle-protocol'] as number, remote['pickle-protocol'] as number),
  };
}

/** The last map built from `LOCAL_HANDSHAKE`, kept while comms keep the same settings. */
let sharedLocal: { deadPeerTimeout: number; compression: string | null; info: HandshakeInfo } | undefined;

/**
 * The map this side sends: `base` with the comm's compression and its heartbeat key.
 * Built from the frozen `LOCAL_HANDSHAKE` it is frozen too and shared by every comm with
 * the same settings (each comm keeps its map for `localInfo`: one object, not one per comm).
 */
function localHandshake(base: HandshakeInfo, deadPeerTimeout: number, compression: string | null): HandshakeInfo {
  if (base !== LOCAL_HANDSHAKE) return { ...base, compression, [HEARTBEAT_KEY]: deadPeerTimeout };
  if (sharedLocal?.deadPeerTimeout !== deadPeerTimeout || sharedLocal.compression !== compression) {
    const info = Object.freeze({ ...base, compression, [HEARTBEAT_KEY]: deadPeerTimeout });
    // Frozen, its values primitives and a frozen array: Dask's codec encodes it once.
    sharedLocal = { deadPeerTimeout, compression, info };
  }
  return sharedLocal.info;
}

/** Where `runHandshake` reports: the comm once handshaken, or why it failed (the comm aborted). */
export interface HandshakeCallbacks {
  next(comm: Comm): void;
  error(error: CommClosedError): void;
}

/**
 * Runs the handshake on a fresh comm and calls `done.next` or `done.error` once. Returns
 * a cancel function: called before that, it aborts the comm, so an abandoned attempt
 * leaves no socket behind. `handshake()` as plain callbacks: `connect()` and the listener
 * run one per connection, without an Observable, a subscriber and a `take(1)` each.
 *
 * Call it on a fresh comm, before anything arrives (as they do, in the callback that made
 * it): unlike `take(1)`, the reader cannot be dropped while `subscribe` is still running,
 * so messages already waiting behind the peer's handshake would be read and lost.
 */
export function runHandshake(comm: Comm, done: HandshakeCallbacks, base: HandshakeInfo = LOCAL_HANDSHAKE): () => void {
  const local = localHandshake(base, comm.deadPeerTimeout, comm.compression);
  // The comm's reader for the peer's map, as a read$ subscriber but without the rxjs
  // subscriber (see `addReader`). `closed` is whether the handshake has settled: then it
  // takes nothing more, as a subscriber unsubscribed by take(1).
  const reader = { closed: false, next: received, error: fail, complete: closedEarly };
  let stopReading: (() => void) | undefined;
  function fail(err: unknown): void {
    if (reader.closed) return;
    reader.closed = true;
    stopReading?.();
    const error = toCommClosedError(err, `handshake with ${comm.peerAddress} failed`);
    comm.abort(error);
    done.error(error);
  }
  function closedEarly(): void {
    fail(new HandshakeError(`${comm.peerAddress} closed before its handshake`));
  }
  // Read as read$ is rather than read(): delivery stays synchronous, so the handshake
  // runs in virtual time under a TestScheduler (a Promise would resolve outside it). Only
  // its first message: the reader is dropped on it (what take(1) did).
  function received(remote: unknown): void {
    if (reader.closed) return;
    let options: HandshakeOptions;
    try {
      options = negotiate(local, remote);
    } catch (err) {
      fail(err);
      return;
    }
    reader.closed = true;
    stopReading?.();
    // localInfo and remoteInfo (each map plus `address`) are made when first read.
    comm.handshaken(local, remote as HandshakeInfo, options);
    comm.startPeerWatch(peerHeartbeat(remote as HandshakeInfo));
    done.next(comm);
  }
  comm.write(local).catch(fail);
  stopReading = comm.addReader(reader);
  if (reader.closed) stopReading(); // it ended while being added
  return () => {
    if (reader.closed) return;
    reader.closed = true;
    stopReading?.();
    comm.abort(new HandshakeError(`handshake with ${comm.peerAddress} abandoned`));
  };
}

/**
 * Runs the handshake on a fresh comm: emits it once handshaken, then completes.
 * Unsubscribing before that, or any failure, aborts the comm, so an abandoned
 * attempt leaves no socket behind.
 */
export function handshake(comm: Comm, base: HandshakeInfo = LOCAL_HANDSHAKE): Observable<Comm> {
  return new Observable<Comm>((subscriber) =>
    runHandshake(
      comm,
      {
        next: (handshaken) => {
          subscriber.next(handshaken);
          subscriber.complete();
        },
        error: (error) => subscriber.error(error),
      },
      base,
    ),
  );
}
