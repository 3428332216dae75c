/**
 * The interop message set in TypeScript: a mirror of `message_set()` in
 * `interop/dask_peer.py`, as documented in `interop/message_set.md` (same names, same
 * order, same key order, same values). Keep the three in sync; interop-spec checks the
 * names, the order and the frame-0 bytes against Python's `message-set` output.
 *
 * Each value is written the way rxcomm's decoder hands it back (lib/protocol/msgpack.ts),
 * so a reply can be compared with what was sent:
 * - string-keyed maps are plain objects; a map with any non-string key is a `Map`, whose
 *   tuple keys are arrays and bytes keys Buffers;
 * - ints within ±2^53 are numbers, beyond that `bigint` (both signs);
 * - bin is a Buffer; str is a string; Python tuples and lists are arrays.
 */

/** n bytes where byte i is i % 251, as dask_peer.py's `pattern_bytes`. */
export function pattern(n: number): Buffer {
  const bytes = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) bytes[i] = i % 251;
  return bytes;
}

/** `{"level": 0, "next": {"level": 1, "next": ... {"level": depth-1, "next": {"leaf": "bottom"}}}}` */
export function nested(depth: number): Record<string, unknown> {
  let d: Record<string, unknown> = { leaf: 'bottom' };
  for (let level = depth - 1; level >= 0; level--) d = { level, next: d };
  return d;
}

const b = (text: string): Buffer => Buffer.from(text, 'latin1');

/** [name, value] of every message but the last, in message_set.md's order. */
export function messageValues(): Array<[string, unknown]> {
  return [
    // strings
    ['str-ascii', 'hello, dask'],
    ['str-empty', ''],
    ['str-unicode-bmp', 'h\u00e9llo w\u00f6rld \u2014 \u65e5\u672c\u8a9e \u2713'],
    ['str-emoji-nonbmp', '\u{1F600}\u{1F389} \u{1D11E} \u{2070E}'],
    ['str-long-multibyte', '\u00e9'.repeat(40_000)],
    // bytes
    ['bin-small', Buffer.from([0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff])],
    ['bin-empty', Buffer.alloc(0)],
    ['bin-300', pattern(300)],
    ['bin-10MB', pattern(10_000_000)],
    ['str-vs-bin', { s: 'abc', b: b('abc') }],
    // ints
    ['int-0', 0],
    ['int-neg1', -1],
    ['int-2^31', 2 ** 31],
    ['int-2^53+1', 2n ** 53n + 1n],
    ['int-2^63-1', 2n ** 63n - 1n],
    ['int-neg2^63', -(2n ** 63n)],
    ['int-2^64-1', 2n ** 64n - 1n],
    [
      'int-boundaries',
      [127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, -32, -33, -128, -129,
        -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1)],
    ],
    // floats (never integral-valued: JS would send those as ints, see message_set.md)
    ['float-1.5', 1.5],
    ['float-neg0.25', -0.25],
    ['float-0.1', 0.1],
    ['float-tiny', 5e-324],
    ['float-inf', Infinity],
    ['float-neginf', -Infinity],
    ['float-nan', NaN],
    // nil / bool
    ['nil', null],
    ['true', true],
    ['false', false],
    ['bool-vs-int', [true, 1, false, 0]],
    // arrays
    ['array-empty', []],
    ['array-nested', [1, [2, [3, [4, []]]], 'x', [b('y'), null], [[], [[]]]]],
    ['array-mixed', [0, -1, 1.5, 's', b('b'), null, true, { k: 'v' }, [1, 2]]],
    // maps
    ['map-empty', {}],
    ['map-nested-50', nested(50)],
    [
      'map-int-keys',
      new Map<unknown, unknown>([
        [0, 'zero'],
        [1, 'one'],
        [-1, 'minus one'],
        [2 ** 40, '2^40'],
        [2n ** 63n, '2^63'],
      ]),
    ],
    [
      'map-tuple-keys',
      new Map<unknown, unknown>([
        [['x', 0, 1], 'a'],
        [['y', 2], 'b'],
        [['x'], 'c'],
        [[], 'empty'],
        [['z', ['w', 1]], 'nested'],
      ]),
    ],
    [
      'map-bytes-keys',
      new Map<unknown, unknown>([
        [b('k1'), 1],
        [b(''), 2],
        [Buffer.from([0xff, 0x00]), 3],
      ]),
    ],
    [
      'map-mixed-keys',
      new Map<unknown, unknown>([
        ['1', 'str'],
        [1, 'int'],
        [b('1'), 'bin'],
        [['1'], 'tuple'],
        [1.5, 'float'],
        [null, 'nil'],
        [-7, 'neg'],
      ]),
    ],
    [
      'dask-like',
      {
        op: 'update-graph',
        keys: [['x', 0], ['x', 1], 'y-abc123'],
        priority: new Map<unknown, unknown>([
          [['x', 0], [0, 1, 2]],
          [['x', 1], [0, 1, 3]],
          ['y-abc123', [1]],
        ]),
        nbytes: { 'y-abc123': 1024 },
        restrictions: {},
        fifo_timeout: '100 ms',
        submitting_task: null,
      },
    ],
  ];
}

/** [name, message] of the whole set, in order: `{op: 'echo', name, value}` maps, then `toplevel-array`. */
export function messageSet(): Array<[string, unknown]> {
  const messages: Array<[string, unknown]> = messageValues().map(([name, value]) => [name, { op: 'echo', name, value }]);
  messages.push(['toplevel-array', [{ op: 'a', i: 0 }, { op: 'b', i: 1 }, { op: 'c', i: 2 }]]);
  return messages;
}

/** Python's frame 0 per message (msgpack-python 1.0.3), as tabled in message_set.md. */
export const PYTHON_FRAME0: Record<string, { length: number; sha256: string }> = {
  'str-ascii': { length: 42, sha256: '5066bc43b1d118f323ee36732a6c0a4220b157156a3a539bbb09b77c5aacaf55' },
  'str-empty': { length: 31, sha256: '06bec34cdbb99e8b07a127b88122b4dd609fb55629c6f40defbfd8b7b14ee900' },
  'str-unicode-bmp': { length: 68, sha256: 'c3ad4c925adba10e6985abd84e22c2347795f71dbfc6115c84b89f572bade080' },
  'str-emoji-nonbmp': { length: 56, sha256: '716a59ae80806f2a3d6c687458f673d289ef6881e9a907f7751cd1e826559806' },
  'str-long-multibyte': { length: 80044, sha256: '7a8cecd3237276e7852f77a60f7f7db43d97b385f6fd9612dea55ea5a43ff4e7' },
  'bin-small': { length: 39, sha256: '6e733527e3c2172470db93015167009c3d1b7a556dc902de53542c3783d9af90' },
  'bin-empty': { length: 32, sha256: 'a9f112d30a3dc8681e5c5497ff3e4e2ecd54da0675a3c3c88d5a16ab61ebce42' },
  'bin-300': { length: 331, sha256: 'f5877c66679f00897369f388f8d2485b060bd704d58b67e9015e004a1b44cc01' },
  'bin-10MB': { length: 10000034, sha256: '44dd464a72777f02b56fd0a4269e582a4417fc62d706e3ebc6b61ab625c636d1' },
  'str-vs-bin': { length: 45, sha256: '3e70fb705ca07d8f42b5030e760134dae8d75a024bcc2f553e743bce32ebcfea' },
  'int-0': { length: 27, sha256: 'be4ec5917d45af0fb66500f26e22b39652f312cffabde985b05272189290d205' },
  'int-neg1': { length: 30, sha256: '0f88043ca01b7136101d879a95a503d7373ff464b8b002573261ca289f0a54c6' },
  'int-2^31': { length: 34, sha256: '065249d0629959de1fafcae9c9f3867db7c739773e36a85bd96dbb4f79417bb0' },
  'int-2^53+1': { length: 40, sha256: '48ac83b67ef1e3daa4cdd8827c2027026c480097223ded5565c443ebce18426e' },
  'int-2^63-1': { length: 40, sha256: '007f69f40a88dce5eef16cc785742b30bcf524ee58afcf4c9ed4bfd8d7efaf2e' },
  'int-neg2^63': { length: 41, sha256: '43bf4deee7973f0f001f555e9078132d600f32e775b7519a465acefbbae7560c' },
  'int-2^64-1': { length: 40, sha256: '0fd3ec0ab1387f25f7468673b9cf8e601fb3fe466e443d0618d75580be96a05a' },
  'int-boundaries': { length: 116, sha256: '6730d4d4d8e8e66aecca9c3d219f33a01828f81f8624991b869c2d2ae8282452' },
  'float-1.5': { length: 39, sha256: '35728e3d9c40af32f3756e9549ed5259d2293c5a9dea111583c817043cb9e682' },
  'float-neg0.25': { length: 43, sha256: '5eeeba5475702596fe89ee8040260d1dcd44f8de28c5b2fded85052954fb3835' },
  'float-0.1': { length: 39, sha256: '8a0a60a25872671607f3e0c4864883e6a397806a2f89a729de4d30052a49f283' },
  'float-tiny': { length: 40, sha256: '191515dfff82524489bf4e5127a26200605bcfcd162a418a0c973c1894c36aef' },
  'float-inf': { length: 39, sha256: '7ebb3b46342f8d6710b330432cd09eb38cd0d0ce35f9636ea752875079e59c6e' },
  'float-neginf': { length: 42, sha256: 'ad08788048aba6a4670a16922c9de272926e7c2da466a94fb9b7ce0ca6d1900b' },
  'float-nan': { length: 39, sha256: 'ae97907e8222b84af7da0f14898e98a6e198125c59826e5df6be070345c8de6a' },
  nil: { length: 25, sha256: '5f153db648bc12fca245f22fe14d09db56d16092098cff9ee884037f454e1dfa' },
  true: { length: 26, sha256: '1b5fcd03b21340d7b7b48d7ff67547ca86dba827f96fcce9b83e2ec21ad88b4b' },
  false: { length: 27, sha256: '9b7ade4c3a3977b7958b64a9c6514b08727952e752f3ccb3b26966bfa9e75fe9' },
  'bool-vs-int': { length: 37, sha256: '41bccc60777b0da91a2aba2b1c6fe967e9c21df2ab061a6714df2e3526112f36' },
  'array-empty': { length: 33, sha256: 'e24c29630a81ef8b8c28842901a60392f0e46b581302a3435fdd21d158fcffdc' },
  'array-nested': { length: 53, sha256: 'e0e76bfd215ff88e04ffe7455cf6fe3035d5429cee62be9727dcabcd6e648692' },
  'array-mixed': { length: 59, sha256: '51ce881122f6b518a3d82b092fb68c4d7a19e98efe7da0370035c53eea023dc4' },
  'map-empty': { length: 31, sha256: 'c04b5a12bcf381df1376a4583b8e73da6390d643d8c6b9ae67ea077ddf076169' },
  'map-nested-50': { length: 697, sha256: '0d8faf56c8edcc2312c0a4ce818f2e36af77e139e848b6178e944a6ca663de12' },
  'map-int-keys': { length: 84, sha256: '768f60083c086006b7bbead97fe44676fe856f337cc7cb8a032f2047d006bb43' },
  'map-tuple-keys': { length: 75, sha256: '5f975bd1d325f6386616f6ce0e5d58c1d91470839058f913f5b26960e1e27251' },
  'map-bytes-keys': { length: 49, sha256: 'c8375842df09a76e374c89ab1c0a15d49dfac5e180b1ca65e8811cf3b7398717' },
  'map-mixed-keys': { length: 88, sha256: 'e71631e36953078461f4ddfad9214ba334ecbc5e35690ec0ef6f6019d2441c26' },
  'dask-like': { length: 178, sha256: 'c9bf4f6fac711ab82b9dc3dbea71cb44a9f20972935cbb5de87fcb989d8e9479' },
  'toplevel-array': { length: 28, sha256: '0e77cf0fee1096b3216813f7543b685cc9b80d18e4ec06d9309733a7f0971502' },
};

// ---- equality, as message_set.md defines it ----

/**
 * The first difference between `expected` and `actual` as a path and a reason, or null
 * if they are equal by message_set.md's rules:
 * - arrays element by element; maps by their key set (key order ignored), with keys
 *   compared structurally (array keys by content, Buffer keys by bytes) and by kind;
 * - a string-keyed map is a plain object, any other a `Map`: the kinds must match;
 * - number vs bigint by kind and value (rxcomm decodes ints beyond ±2^53 as bigint, and
 *   only those); NaN equals NaN; -0 differs from 0;
 * - str vs bin by kind; bin by bytes; booleans are not numbers.
 */
export function firstDifference(expected: unknown, actual: unknown, at = '$'): string | null {
  const kind = kindOf(expected);
  const actualKind = kindOf(actual);
  if (kind !== actualKind) return `${at}: expected a ${kind} (${preview(expected)}), got a ${actualKind} (${preview(actual)})`;
  switch (kind) {
    case 'number':
      return Object.is(expected, actual) ? null : `${at}: expected ${preview(expected)}, got ${preview(actual)}`;
    case 'bigint':
    case 'string':
    case 'boolean':
    case 'null':
    case 'undefined':
      return expected === actual ? null : `${at}: expected ${preview(expected)}, got ${preview(actual)}`;
    case 'bin': {
      const e = expected as Uint8Array;
      const a = actual as Uint8Array;
      if (e.length !== a.length) return `${at}: expected ${e.length} bytes, got ${a.length}`;
      const i = firstByteDifference(e, a);
      return i < 0 ? null : `${at}: bytes differ at offset ${i} (expected ${e[i]}, got ${a[i]})`;
    }
    case 'array': {
      const e = expected as unknown[];
      const a = actual as unknown[];
      if (e.length !== a.length) return `${at}: expected ${e.length} elements, got ${a.length}`;
      for (let i = 0; i < e.length; i++) {
        const diff = firstDifference(e[i], a[i], `${at}[${i}]`);
        if (diff) return diff;
      }
      return null;
    }
    case 'object': {
      const e = expected as Record<string, unknown>;
      const a = actual as Record<string, unknown>;
      const eKeys = Object.keys(e).sort();
      const aKeys = Object.keys(a).sort();
      if (eKeys.join('\u0000') !== aKeys.join('\u0000')) return `${at}: expected keys ${JSON.stringify(eKeys)}, got ${JSON.stringify(aKeys)}`;
      for (const key of eKeys) {
        const diff = firstDifference(e[key], a[key], `${at}.${key}`);
        if (diff) return diff;
      }
      return null;
    }
    case 'Map': {
      const e = expected as Map<unknown, unknown>;
      const a = actual as Map<unknown, unknown>;
      if (e.size !== a.size) return `${at}: expected a Map of ${e.size} keys, got ${a.size}`;
      const unmatched = [...a.entries()];
      for (const [key, value] of e) {
        const found = unmatched.findIndex(([other]) => firstDifference(key, other) === null);
        if (found < 0) return `${at}: key ${preview(key)} is missing (got keys ${[...a.keys()].map(preview).join(', ')})`;
        const diff = firstDifference(value, unmatched[found][1], `${at}[${preview(key)}]`);
        if (diff) return diff;
        unmatched.splice(found, 1);
      }
      return null;
    }
    case 'Set': {
      const e = [...(expected as Set<unknown>)];
      const a = [...(actual as Set<unknown>)];
      return firstDifference(e, a, `${at}<set>`);
    }
    default:
      return `${at}: cannot compare a ${kind}`;
  }
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  if (value instanceof Uint8Array) return 'bin';
  if (value instanceof Map) return 'Map';
  if (value instanceof Set) return 'Set';
  if (typeof value === 'object') {
    const proto = Object.getPrototypeOf(value) as unknown;
    return proto === Object.prototype || proto === null ? 'object' : `instance of ${(value as object).constructor?.name}`;
  }
  return typeof value;
}

function firstByteDifference(e: Uint8Array, a: Uint8Array): number {
  if (Buffer.compare(Buffer.from(e.buffer, e.byteOffset, e.length), Buffer.from(a.buffer, a.byteOffset, a.length)) === 0) return -1;
  for (let i = 0; i < e.length; i++) if (e[i] !== a[i]) return i;
  return -1;
}

/** A short readable form of a value, for messages. */
export function preview(value: unknown): string {
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…(${value.length} chars)` : value);
  if (value instanceof Uint8Array) {
    return value.length > 16 ? `<bin ${value.length} bytes>` : `<bin ${Buffer.from(value).toString('hex')}>`;
  }
  if (Array.isArray(value)) return value.length > 8 ? `[${value.length} elements]` : `[${value.map(preview).join(', ')}]`;
  if (value instanceof Map) return `Map(${value.size})`;
  if (value === null || value === undefined) return String(value);
  if (typeof value === 'object') return `{${Object.keys(value).slice(0, 6).join(', ')}}`;
  return String(value);
}
