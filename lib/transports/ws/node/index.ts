/**
 * `ws://` and `wss://` on Node, with the `ws` package: Dask's ws framing (count, then one
 * binary message per frame) on path `/`, no subprotocol, no permessage-deflate, and
 * `maxPayload` from `maxMessageSize`. `wss://` verifies peers exactly as `tls://` does
 * (mutual TLS by default), and its failures are fatal or retryable by the same rule.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import type * as tls from 'node:tls';
import { Observable } from 'rxjs';
import { WebSocket, WebSocketServer } from 'ws';
import { parseHostPort, unparseHostPort } from '../../../addresses';
import type { Connection } from '../../../comm/connection';
import { CommClosedError, FatalCommClosedError, HandshakeError, ProtocolError } from '../../../errors';
import { sharedDaskCodec } from '../../../protocol';
import type { Backend, BackendListenOptions, BackendOptions, ListenEvent } from '../../../registry/backend';
import { bindServer } from '../../socket/bind';
import { hostPortLookups, socketAddress } from '../../socket/host';
import { keepAliveIdle } from '../../socket/keepalive';
import { tlsError } from '../../socket/tls-errors';
import { checkSecurity, clientCertificateProblem, clientTlsOptions, secureContextFor, tlsInfo, tlsOptionsFor } from '../../socket/tls-security';
import { WebSocketConnection } from '../connection';
import { NodeMessageSocket } from './node-socket';
import { originAllowed } from './origin';

type Scheme = 'ws' | 'wss';

/**
 * The `ws` package keeps its message limit as a 32-bit integer (`maxPayload | 0`): a
 * larger `maxMessageSize` would wrap around, so one WebSocket message (one frame) is
 * limited to just under 2 GiB whatever the comm's limit.
 */
const payloadLimit = (maxMessageSize: number) => Math.min(maxMessageSize, 2 ** 31 - 1);

/** Socket errors as comm errors: the `ws` package's protocol checks become `ProtocolError`. */
function wsError(secure: boolean) {
  return (err: unknown, message: string): CommClosedError => {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code === 'string' && code.startsWith('WS_ERR_')) {
      return new ProtocolError(`${message}: ${(err as Error).message}`, { cause: err });
    }
    return secure ? tlsError(err, message) : err instanceof CommClosedError ? err : new CommClosedError(`${message}: ${(err as Error).message}`, { cause: err });
  };
}

/** A failed upgrade: 4xx answers are the same on every retry, so they are fatal. */
function upgradeRefused(url: string, response: http.IncomingMessage): CommClosedError {
  const status = response.statusCode ?? 0;
  const why =
    status === 403
      ? ' (a ws listener refuses browser origins it does not allow; an HTTP proxy may refuse too)'
      : status === 404
        ? ' (Dask serves ws comms on path / only)'
        : '';
  const message = `Could not connect to ${url}: the server answered the WebSocket upgrade with HTTP ${status} ${response.statusMessage ?? ''}${why}`;
  return status >= 400 && status < 500 && status !== 408 && status !== 429
    ? new FatalCommClosedError(message)
    : new CommClosedError(message);
}

function webSocketBackend(scheme: Scheme): Backend {
  const secure = scheme === 'wss';
  const wrapError = wsError(secure);

  const connectionFor = (options: BackendOptions) => {
    const codec = options.codec ?? sharedDaskCodec(options.deserialize);
    return (ws: WebSocket, socket: net.Socket): Connection =>
      new WebSocketConnection({
        socket: new NodeMessageSocket(ws, socket),
        localAddress: socketAddress(scheme, socket.localAddress, socket.localPort),
        peerAddress: socketAddress(scheme, socket.remoteAddress, socket.remotePort),
        extraInfo: secure ? tlsInfo(socket as tls.TLSSocket) : {},
        codec,
        maxMessageSize: options.maxMessageSize,
        writeHighWaterMark: options.writeHighWaterMark,
        wrapError,
      });
  };

  return {
    encrypted: secure,

    connect(location, options) {
      return new Observable<Connection>((subscriber) => {
        const security = secure ? checkSecurity(options.security, 'connect', scheme) : undefined;
        const [host, port] = parseHostPort(location);
        const target = unparseHostPort(host === '' ? 'localhost' : host, port);
        const url = `${scheme}://${target}/`;
        const ws = new WebSocket(url, {
          perMessageDeflate: false,
          maxPayload: payloadLimit(options.maxMessageSize),
          followRedirects: false,
          ...(security ? clientTlsOptions(security, host) : {}),
        });
        let socket: net.Socket | undefined;
        let settled = false;
        const fail = (error: CommClosedError) => {
          if (settled) return;
          settled = true;
          subscriber.error(error);
        };
        ws.on('upgrade', (response) => {
          socket = response.socket as net.Socket;
          socket.setKeepAlive(true, keepAliveIdle(options.deadPeerTimeout));
        });
        ws.on('unexpected-response', (request, response) => {
          fail(upgradeRefused(url, response));
          request.destroy();
        });
        // Kept for the socket's whole life: an 'error' nobody hears would throw.
        ws.on('error', (err) => fail(wrapError(err, `Could not connect to ${scheme}://${target}`)));
        ws.once('open', () => {
          settled = true;
          subscriber.next(connectionFor(options)(ws, socket!));
          subscriber.complete();
        });
        return () => {
          if (!settled || ws.readyState === WebSocket.CONNECTING) {
            settled = true;
            ws.terminate(); // abandoned before it was ready
          }
        };
      });
    },

    listen(location, options) {
      return new Observable<ListenEvent>((subscriber) => {
        const server = createServer(scheme, options, connectionFor(options), (event) => subscriber.next(event));
        bindServer(server, scheme, location, options, subscriber);
        // Stop accepting; comms already handed out stay open (upgraded sockets leave the server).
        return () => server.close();
      });
    },

    ...hostPortLookups,
  };
}

/** Answers an upgrade it will not make with a plain HTTP status, and drops the socket. */
function refuseUpgrade(socket: net.Socket, status: number, text: string): void {
  const body = `${text}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status]}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

/** The HTTP(S) server of a ws listener: upgrades on `/` from allowed origins, nothing else. */
function createServer(
  scheme: Scheme,
  options: BackendListenOptions,
  connectionFor: (ws: WebSocket, socket: net.Socket) => Connection,
  emit: (event: ListenEvent) => void,
): http.Server {
  const secure = scheme === 'wss';
  const security = secure ? checkSecurity(options.security, 'listen', scheme) : undefined;
  const checkClients = security !== undefined && security.requireClientCertificate !== false;
  const { handshakeTimeout, allowedOrigins } = options;
  const server = security
    ? https.createServer({
        ...tlsOptionsFor(security),
        secureContext: secureContextFor(security), // bad certificates or keys fail here, at once
        requestCert: checkClients,
        // Verified below rather than by Node, so that a refused client learns why.
        rejectUnauthorized: false,
        handshakeTimeout,
      })
    : http.createServer();

  const upgrades = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: payloadLimit(options.maxMessageSize),
    clientTracking: false,
    // Dask selects no subprotocol whatever the client offers; `ws` would pick the first.
    handleProtocols: () => false,
  });
  const rejected = (socket: net.Socket, error: Error) =>
    emit({ type: 'rejected', peerAddress: socketAddress(scheme, socket.remoteAddress, socket.remotePort), error });

  // Each TCP connection has `handshakeTimeout` to finish its TLS handshake and upgrade, a
  // deadline however it trickles bytes (Node's own HTTP timeouts are idle timers, checked
  // only every 30 s). The TLS socket of wss:// is found again by the peer's address.
  const notUpgraded = new Map<string, ReturnType<typeof setTimeout>>();
  const peerKey = (socket: net.Socket) => `${socket.remoteAddress}|${socket.remotePort}`;
  server.on('connection', (raw: net.Socket) => {
    const key = peerKey(raw);
    const deadline = setTimeout(() => {
      notUpgraded.delete(key);
      rejected(raw, new HandshakeError(`no WebSocket upgrade within ${handshakeTimeout} ms`));
      raw.destroy();
    }, handshakeTimeout);
    notUpgraded.set(key, deadline);
    raw.once('close', () => {
      if (notUpgraded.get(key) !== deadline) return;
      clearTimeout(deadline);
      notUpgraded.delete(key);
    });
  });
  const upgraded = (socket: net.Socket) => {
    const key = peerKey(socket);
    clearTimeout(notUpgraded.get(key));
    notUpgraded.delete(key);
  };
  server.on('close', () => {
    for (const deadline of notUpgraded.values()) clearTimeout(deadline);
    notUpgraded.clear();
  });

  server.on('request', (_request, response) => {
    response.writeHead(426, { Upgrade: 'websocket', 'Content-Type': 'text/plain' });
    response.end('This is a Dask comm endpoint: connect with a WebSocket client.\n');
  });

  server.on('upgrade', (request: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    upgraded(socket);
    let path: string;
    try {
      path = new URL(request.url ?? '/', 'http://host').pathname;
    } catch {
      // Node's parser lets through targets no URL parser takes (`http://[`): answer, never throw.
      refuseUpgrade(socket, 400, 'invalid request target');
      rejected(socket, new HandshakeError(`WebSocket upgrade with an invalid request target refused (400): ${JSON.stringify(request.url)}`));
      return;
    }
    if (path !== '/') {
      refuseUpgrade(socket, 404, `Dask comms are served on path /, not ${path}`);
      rejected(socket, new HandshakeError(`WebSocket upgrade for path ${path} refused (404): comms are on path /`));
      return;
    }
    const origin = request.headers.origin;
    if (!originAllowed(origin, request.headers.host, allowedOrigins)) {
      refuseUpgrade(socket, 403, 'Cross origin websockets not allowed');
      rejected(
        socket,
        new FatalCommClosedError(
          `WebSocket from origin ${origin} refused (403): not same-origin and not in allowedOrigins [${allowedOrigins.join(', ')}]`,
        ),
      );
      return;
    }
    upgrades.handleUpgrade(request, socket, head, (ws) => {
      socket.setKeepAlive(true, keepAliveIdle(options.deadPeerTimeout));
      const connection = connectionFor(ws, socket);
      // As on tls://: Node checks a client certificate only after the TLS handshake, so
      // the listener answers the Dask handshake with the reason rather than just hanging up.
      const problem = checkClients ? clientCertificateProblem(socket as tls.TLSSocket) : undefined;
      if (problem) emit({ type: 'refused', connection, reason: problem });
      else emit({ type: 'connection', connection });
    });
  });

  // With a listener here, `ws` leaves the answer to us: the same 400 it would send, plus a status event.
  upgrades.on('wsClientError', (error, socket) => {
    refuseUpgrade(socket as net.Socket, 400, error.message);
    rejected(socket as net.Socket, new HandshakeError(`invalid WebSocket upgrade: ${error.message}`, { cause: error }));
  });

  server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
    const error =
      err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT'
        ? new HandshakeError(`TLS handshake not completed within ${handshakeTimeout} ms`, { cause: err })
        : tlsError(err, 'TLS handshake failed');
    socket.destroy(); // Node does not always close it
    rejected(socket, error);
  });
  return server;
}

export const wsBackend = webSocketBackend('ws');
export const wssBackend = webSocketBackend('wss');
