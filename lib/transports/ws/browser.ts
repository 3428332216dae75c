/**
 * `ws://` and `wss://` in a browser, on the native `WebSocket`: no protocols argument,
 * `binaryType = 'arraybuffer'`, binary sends only, as Dask's own framing expects.
 *
 * What a page cannot do, and so this backend does not: listen (pages accept no
 * connections), pause reading (the native API has no backpressure on receive), present
 * a client certificate or choose a CA (the browser verifies wss:// with its own store),
 * or tell a refused connection from a refused origin (browsers report both as close
 * code 1006; `connect()` then retries until its timeout).
 */
import { Observable, throwError } from 'rxjs';
import { parseHostPort, unparseHostPort } from '../../addresses';
import type { Connection } from '../../comm/connection';
import { CommClosedError, ConfigError, ListenError } from '../../errors';
import { daskCodec, type FramePieces } from '../../protocol';
import { joinPieces } from '../../protocol/framing/ws-messages';
import type { Backend } from '../../registry/backend';
import { WebSocketConnection } from './connection';
import type { MessageSocket, MessageSocketEvents } from './message-socket';

/** The part of the DOM's `WebSocket` used here (the Node types have no DOM). */
interface NativeWebSocket {
  readonly readyState: number;
  readonly bufferedAmount: number;
  binaryType: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  send(data: Uint8Array): void;
  close(code?: number, reason?: string): void;
}
type NativeWebSocketClass = new (url: string) => NativeWebSocket;

const CLOSING = 2;
/** How often a writer over the high-water mark looks at `bufferedAmount`: browsers fire no drain event. */
const DRAIN_POLL_MS = 4;
/**
 * Close code for an abort: a page cannot reset its connection, so it closes with a code
 * that is not a clean one, and the peer's reader errors as it would on a reset.
 */
const ABORT_CLOSE_CODE = 4000;

class BrowserMessageSocket implements MessageSocket {
  constructor(private readonly ws: NativeWebSocket) {}

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  listen(events: MessageSocketEvents): void {
    this.ws.onmessage = ({ data }) => {
      if (typeof data === 'string') events.message(new TextEncoder().encode(data), false);
      else events.message(new Uint8Array(data as ArrayBuffer), true);
    };
    this.ws.onerror = null; // browsers say nothing in it; the close event that follows tells
    this.ws.onclose = ({ code, reason }) => events.closed(code, reason);
  }

  send(data: FramePieces): void {
    this.ws.send(joinPieces(data)); // a page cannot send fragments
  }

  drained(limit: number): Promise<void> {
    return new Promise((resolve) => {
      const check = () => {
        if (this.ws.bufferedAmount < limit || this.ws.readyState >= CLOSING) resolve();
        else setTimeout(check, DRAIN_POLL_MS);
      };
      check();
    });
  }

  pause(): void {}

  resume(): void {}

  close(code: number): void {
    this.ws.close(code);
  }

  terminate(): void {
    if (this.ws.readyState < CLOSING) this.ws.close(ABORT_CLOSE_CODE, 'aborted');
  }
}

function webSocketClass(): NativeWebSocketClass {
  const native = (globalThis as { WebSocket?: NativeWebSocketClass }).WebSocket;
  if (!native) throw new ConfigError('this environment has no WebSocket: ws:// needs a browser, or Node with the rxcomm Node entry');
  return native;
}

function browserWebSocketBackend(scheme: 'ws' | 'wss'): Backend {
  return {
    encrypted: scheme === 'wss',

    connect(location, options) {
      return new Observable<Connection>((subscriber) => {
        const { security } = options;
        if (security && (security.ca || security.cert || security.key)) {
          throw new ConfigError(
            `${scheme}:// in a browser cannot use security.ca, security.cert or security.key: the browser verifies the server with its own certificate store and presents no client certificate`,
          );
        }
        const [host, port] = parseHostPort(location);
        const target = unparseHostPort(host === '' ? 'localhost' : host, port);
        const ws = new (webSocketClass())(`${scheme}://${target}/`);
        ws.binaryType = 'arraybuffer';
        let opened = false;
        ws.onopen = () => {
          opened = true;
          ws.onopen = ws.onclose = ws.onerror = null;
          const page = (globalThis as { location?: { hostname?: string } }).location?.hostname || 'localhost';
          subscriber.next(
            new WebSocketConnection({
              socket: new BrowserMessageSocket(ws),
              // A page learns neither its own address nor its port: this names the page's host.
              localAddress: `${scheme}://${unparseHostPort(page, 0)}`,
              peerAddress: `${scheme}://${target}`,
              codec: options.codec ?? daskCodec({ deserialize: options.deserialize }),
              maxMessageSize: options.maxMessageSize,
              writeHighWaterMark: options.writeHighWaterMark,
            }),
          );
          subscriber.complete();
        };
        ws.onerror = null;
        ws.onclose = ({ code }) =>
          subscriber.error(
            new CommClosedError(
              `Could not connect to ${scheme}://${target}: the browser closed the WebSocket with code ${code} (refused, unreachable, or an origin the listener does not allow)`,
            ),
          );
        return () => {
          if (!opened) {
            ws.onclose = null;
            ws.close();
          }
        };
      });
    },

    listen() {
      return throwError(() => new ListenError(`${scheme}:// cannot listen in a browser: web pages accept no connections`));
    },

    getAddressHost(location) {
      return parseHostPort(location)[0];
    },

    getAddressHostPort(location) {
      return parseHostPort(location);
    },

    // No DNS in a page: the browser resolves names when it connects.
    async resolveAddress(location) {
      return location;
    },

    async getLocalAddressFor() {
      throw new ConfigError(`a browser does not tell a page its local address (${scheme}://)`);
    },
  };
}

export const browserWsBackend = browserWebSocketBackend('ws');
export const browserWssBackend = browserWebSocketBackend('wss');
