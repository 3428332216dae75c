/**
 * A `Backend` for stream-socket transports (tcp, tls). The transport says how to open a
 * socket and how to accept one; this module turns that into the registry's Observable
 * factories, with the addressing rules both share.
 */
import * as net from 'node:net';
import { Observable } from 'rxjs';
import { parseHostPort } from '../../addresses';
import type { CommClosedError } from '../../errors';
import { sharedDaskCodec, type MessageCodec } from '../../protocol';
import type { Connection } from '../../comm/connection';
import type { Backend, BackendListenOptions, BackendOptions, ConnectByCallbacks, ConnectByCallbacksKey, ListenEvent } from '../../registry/backend';
import { bindServer } from './bind';
import type { DirectReader } from './direct-reader';
import { hostPortLookups, socketAddress } from './host';
import { SocketConnection } from './socket-connection';

/** A socket ready to carry messages: for tls, after its TLS handshake. */
export interface ReadySocket {
  socket: net.Socket;
  rawSocket: net.Socket;
  extraInfo?: Record<string, unknown>;
  /** How later socket errors become comm errors. */
  wrapError?: (err: unknown, message: string) => CommClosedError;
  /** Set when the socket reads through `onread` (tcp): bytes come from it, not 'data'. */
  reader?: DirectReader;
  /**
   * The peer's `scheme://host:port` when the transport already knows it exactly (a client
   * that dialled an IPv4 address): saves a getpeername() system call per connect.
   */
  peerAddress?: string;
  /**
   * This end's `scheme://host:port` when the transport already knows it exactly (a server
   * bound to one IPv4 address): saves a getsockname() system call per accept.
   */
  localAddress?: string;
}

export interface StreamTransport {
  scheme: string;
  /** Whether the transport encrypts (`requireEncryption` refuses those that do not). */
  encrypted: boolean;
  /** Fails at once on settings that can never work (tls without certificates). */
  checkOptions?(options: BackendOptions, side: 'connect' | 'listen'): void;
  /**
   * Opens a socket to host:port and calls `ready` or `failed` once. Returns a teardown
   * that destroys the socket if it is not ready yet.
   */
  open(
    host: string,
    port: number,
    options: BackendOptions,
    ready: (socket: ReadySocket) => void,
    failed: (error: Error) => void,
  ): () => void;
  /**
   * Makes the listening server. It calls `ready` for each connection that can carry
   * messages, `refused` for each authenticated peer it will not serve (the listener
   * answers with the reason), and `rejected` for each it dropped (a failed TLS handshake).
   */
  createServer(options: BackendListenOptions, events: ServerEvents): net.Server;
}

export interface ServerEvents {
  ready(socket: ReadySocket): void;
  refused(socket: ReadySocket, reason: string): void;
  rejected(peerAddress: string, error: Error): void;
}

/** Where `connect()` finds `connect` as plain callbacks (registry/backend.ts, `callbackConnect`). */
const CONNECT_BY_CALLBACKS = Symbol.for('rxcomm.connectByCallbacks' satisfies ConnectByCallbacksKey);

/** Nagle's delay off (Dask sets TCP_NODELAY too), keepalive on. */
export const SOCKET_OPTIONS = { noDelay: true, keepAlive: true } as const;

export function streamBackend(transport: StreamTransport): Backend {
  const { scheme } = transport;

  /** Connections of one connect or listen call share one codec: Dask's unless the user's. */
  const connections = (options: BackendOptions) => {
    const { maxMessageSize, writeHighWaterMark, deadPeerTimeout } = options;
    const codec: MessageCodec = options.codec ?? sharedDaskCodec(options.deserialize);
    // The fields named one by one, not `...ready`: ready sockets come in several shapes
    // (tcp, tls, accepted, dialled), and a spread of them is slow on every connect.
    return (ready: ReadySocket): Connection =>
      new SocketConnection({
        socket: ready.socket,
        rawSocket: ready.rawSocket,
        extraInfo: ready.extraInfo,
        wrapError: ready.wrapError,
        reader: ready.reader,
        localAddress: ready.localAddress ?? socketAddress(scheme, ready.rawSocket.localAddress, ready.rawSocket.localPort),
        peerAddress: ready.peerAddress ?? socketAddress(scheme, ready.rawSocket.remoteAddress, ready.rawSocket.remotePort),
        codec,
        maxMessageSize,
        writeHighWaterMark,
        deadPeerTimeout,
      });
  };

  /** The last location dialled, as host and port; the last connect options, and their connections. */
  let lastDialled: { location: string; hostPort: readonly [string, number] } | undefined;
  let lastConnect: { options: BackendOptions; connectionFor: (ready: ReadySocket) => Connection } | undefined;

  const open: ConnectByCallbacks = (location, options, ready, failed) => {
    try {
      transport.checkOptions?.(options, 'connect');
      // The last address and options, kept as they were made: `connect()` with one
      // options object resolves them once (`resolveConnectConfig`), and a client dials
      // one address again and again (Dask's rpc). Not parsed nor built again each time.
      if (lastDialled?.location !== location) lastDialled = { location, hostPort: parseHostPort(location) };
    } catch (error) {
      failed(error);
      return () => undefined;
    }
    const [host, port] = lastDialled.hostPort;
    if (lastConnect?.options !== options) lastConnect = { options, connectionFor: connections(options) };
    const connectionFor = lastConnect.connectionFor;
    return transport.open(host === '' ? 'localhost' : host, port, options, (socket) => ready(connectionFor(socket)), failed);
  };
  const connect = (location: string, options: BackendOptions) =>
    new Observable<Connection>((subscriber) =>
      open(
        location,
        options,
        (connection) => {
          subscriber.next(connection);
          subscriber.complete();
        },
        (error) => subscriber.error(error),
      ),
    );

  return {
    encrypted: transport.encrypted,

    connect: Object.assign(connect, { [CONNECT_BY_CALLBACKS]: open }),

    listen(location, options) {
      return new Observable<ListenEvent>((subscriber) => {
        transport.checkOptions?.(options, 'listen');
        const connectionFor = connections(options);
        const server = transport.createServer(options, {
          ready: (ready) => subscriber.next({ type: 'connection', connection: connectionFor(ready) }),
          refused: (ready, reason) => subscriber.next({ type: 'refused', connection: connectionFor(ready), reason }),
          rejected: (peerAddress, error) => subscriber.next({ type: 'rejected', peerAddress, error }),
        });
        bindServer(server, scheme, location, options, subscriber);
        // Stop accepting; comms already handed out stay open.
        return () => server.close();
      });
    },

    ...hostPortLookups,
  };
}
