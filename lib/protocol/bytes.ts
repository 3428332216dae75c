/**
 * Bytes for the protocol layer, in Node and in browsers: the one place that knows whether
 * Node's `Buffer` exists. Everything else in lib/protocol works on `Uint8Array` and calls
 * these helpers.
 *
 * Why not just `Uint8Array` everywhere: on Node, `Buffer` is faster where it matters
 * (pooled small allocations, native UTF-8 measuring and writing of long strings, native
 * concat), and the frames and bins users receive on Node have always been Buffers. So on
 * Node each helper is Buffer's own method and returns Buffers (typed as `Uint8Array`);
 * elsewhere it is plain typed arrays and `TextEncoder`.
 *
 * Why `globalThis.Buffer` and not `Buffer` or `import 'buffer'`: a bare `Buffer` would
 * throw a ReferenceError in a browser, and either form makes some bundlers (webpack 4,
 * browserify, others when configured to) add a Buffer polyfill, which we would then use,
 * slower than plain typed arrays. A property read of `globalThis` is invisible to them.
 * The choice is made once, at load: each helper below is one of two functions, so its
 * call sites stay monomorphic.
 */

/** What we use of Node's `Buffer`, declared here so that no type depends on @types/node. */
interface NodeBuffer {
  allocUnsafe(size: number): Uint8Array;
  allocUnsafeSlow(size: number): Uint8Array;
  from(arrayBuffer: ArrayBufferLike, byteOffset: number, length: number): Uint8Array;
  from(text: string, encoding: 'hex'): Uint8Array;
  concat(list: readonly Uint8Array[], totalLength?: number): Uint8Array;
  byteLength(text: string, encoding: 'utf8'): number;
  isBuffer(value: unknown): boolean;
  prototype: {
    /** Undocumented, but long present (msgpackr relies on it too): `write` minus its argument parsing. */
    utf8Write?: (this: Uint8Array, text: string, offset: number, length: number) => number;
    write(this: Uint8Array, text: string, offset: number, length: number, encoding: 'utf8'): number;
  };
}

interface NodeProcess {
  /** Node >= 20.16 / 22.3: a built-in module without `require` or `import`. */
  getBuiltinModule?: (id: string) => unknown;
}

const runtime = globalThis as unknown as { Buffer?: NodeBuffer; process?: NodeProcess };
/**
 * Node's Buffer (or Bun's, or Deno's in Node mode). A page that installs a Buffer polyfill
 * as a global gets it used too: correct (it has the same API), if slower than typed arrays.
 */
const NodeBuffer: NodeBuffer | undefined = typeof runtime.Buffer?.allocUnsafeSlow === 'function' ? runtime.Buffer : undefined;

/** True where Node's `Buffer` exists (Node, Bun, Deno): the helpers then return Buffers. */
export const HAS_NODE_BUFFER = NodeBuffer !== undefined;

/**
 * `size` bytes, not zeroed: the caller writes every byte before reading any. On Node,
 * sizes below 4 KiB are carved out of Buffer's shared pool: cheap, but their `.buffer`
 * holds other bytes too (as it may for any view).
 */
export const allocUnsafe: (size: number) => Uint8Array =
  NodeBuffer !== undefined ? (size) => NodeBuffer.allocUnsafe(size) : (size) => new Uint8Array(size);

/**
 * `size` bytes in an ArrayBuffer of their own, not zeroed: for long-lived slabs that are
 * carved up by the caller, which should not pin a pool.
 */
export const allocUnsafeSlow: (size: number) => Uint8Array =
  NodeBuffer !== undefined ? (size) => NodeBuffer.allocUnsafeSlow(size) : (size) => new Uint8Array(size);

/** The chunks back to back, in a new buffer (a copy even of a single chunk). */
export const concatBytes: (chunks: readonly Uint8Array[]) => Uint8Array =
  NodeBuffer !== undefined ? (chunks) => NodeBuffer.concat(chunks) : concatPortable;

function concatPortable(chunks: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (let i = 0; i < chunks.length; i++) length += chunks[i].byteLength;
  const joined = new Uint8Array(length);
  let at = 0;
  for (let i = 0; i < chunks.length; i++) {
    joined.set(chunks[i], at);
    at += chunks[i].byteLength;
  }
  return joined;
}

/**
 * The UTF-8 length of `text`, a lone surrogate counting as the 3 bytes of U+FFFD (what
 * both `writeUtf8`s write for it). On Node a native call; elsewhere a JS loop, as no
 * browser API measures without encoding.
 */
export const utf8Length: (text: string) => number =
  NodeBuffer !== undefined ? (text) => NodeBuffer.byteLength(text, 'utf8') : utf8LengthPortable;

function utf8LengthPortable(text: string): number {
  const units = text.length;
  let bytes = units;
  for (let i = 0; i < units; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) bytes += 1;
    else if ((c & 0xfc00) === 0xd800 && i + 1 < units && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 2; // a pair: 2 units, 4 bytes
      i++;
    } else bytes += 2; // 3 bytes, lone surrogates (as U+FFFD) included
  }
  return bytes;
}

/**
 * Writes `text` as UTF-8 into `target` at `at`, at most `length` bytes (never a partial
 * character); returns the bytes written. A lone surrogate becomes U+FFFD, as both
 * Buffer and TextEncoder write it (Python's encoder would refuse it). On Node,
 * Buffer's native writer (the fastest way to write a long string on Node, and the
 * reason Buffer is worth keeping); elsewhere `TextEncoder.encodeInto`.
 */
export const writeUtf8: (target: Uint8Array, text: string, at: number, length: number) => number =
  NodeBuffer !== undefined ? nodeWriteUtf8(NodeBuffer) : portableWriteUtf8();

function nodeWriteUtf8(buffer: NodeBuffer): (target: Uint8Array, text: string, at: number, length: number) => number {
  const utf8Write = buffer.prototype.utf8Write;
  if (typeof utf8Write === 'function') return (target, text, at, length) => utf8Write.call(target, text, at, length);
  const write = buffer.prototype.write;
  return (target, text, at, length) => write.call(target, text, at, length, 'utf8');
}

function portableWriteUtf8(): (target: Uint8Array, text: string, at: number, length: number) => number {
  const encoder = new TextEncoder();
  return (target, text, at, length) => encoder.encodeInto(text, target.subarray(at, at + length)).written;
}

/** Bytes from hex digits, for constants (no checks: the callers' literals are right). */
export function fromHex(hex: string): Uint8Array {
  if (NodeBuffer !== undefined) return NodeBuffer.from(hex, 'hex');
  const bytes = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return bytes;
}

/**
 * `bytes` as they should be given to msgpackr's `unpack`, which decodes each bin as
 * `source.subarray(...)`, a view of the same class as its source: on Node a Buffer
 * (a view over the same memory when `bytes` is a plain Uint8Array, no copy), so that bins
 * decode as Buffers as they always have; elsewhere `bytes` itself, so bins are Uint8Arrays.
 */
export const asDecodeSource: (bytes: Uint8Array) => Uint8Array =
  NodeBuffer !== undefined
    ? (bytes) => (NodeBuffer.isBuffer(bytes) ? bytes : NodeBuffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    : (bytes) => bytes;

/**
 * The largest byte array this runtime can allocate, or a safe bound below it. The frame
 * parser uses it only as an upper bound on the one allocation it makes at a size a peer
 * chose (a frame spanning chunks), so that a too-large frame is a `MessageTooLargeError`
 * rather than a RangeError from the allocator. Nothing else depends on it being exact.
 * - Node >= 20.16 and 22.3: `buffer.constants.MAX_LENGTH`, read through
 *   `process.getBuiltinModule` (no import, so bundlers see nothing): 2^32 on Node 20,
 *   2^53 - 1 from Node 22, on 64-bit machines.
 * - Older Node: 2^32, Node 20's value on 64-bit machines.
 * - Elsewhere: 2^31 - 1. Browsers allow more (2^32 or beyond in current engines, less on
 *   32-bit ones), but none promises it, and no sane peer sends a browser a 2 GiB frame.
 */
export const MAX_BYTE_LENGTH: number = NodeBuffer !== undefined ? nodeMaxLength() : 2 ** 31 - 1;

function nodeMaxLength(): number {
  let max: unknown;
  try {
    const module = runtime.process?.getBuiltinModule?.('buffer') as { constants?: { MAX_LENGTH?: unknown } } | undefined;
    max = module?.constants?.MAX_LENGTH;
  } catch {
    // Not Node's getBuiltinModule after all: fall back below.
  }
  return typeof max === 'number' && max > 0 ? max : 2 ** 32;
}
