/**
 * Run-time checks of user options, for callers the compiler cannot help (JavaScript,
 * configs read from files): unknown keys name the nearest valid one, and bad values say
 * what they got.
 */
import { ConfigError } from '../errors';
import type { CompressionName } from '../protocol/compression';
import { COMPRESSION_LABELS, compressionSupport } from './compression-support';

/** Throws a `ConfigError` if `value` (never undefined) is not acceptable for `name`. */
export type Check = (name: string, value: unknown) => void;

/** `a string ('1000')`, `-1`, `null`, `an array`: what a value was, for error messages. */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return `a string ('${value.length > 40 ? `${value.slice(0, 40)}…` : value}')`;
    case 'number':
      return String(value);
    case 'boolean':
      return `a boolean (${value})`;
    case 'bigint':
      return `a bigint (${value}n)`;
    case 'function':
      return 'a function';
    case 'undefined':
      return 'undefined';
    case 'symbol':
      return 'a symbol';
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  const name = Object.getPrototypeOf(value)?.constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

function fail(name: string, expected: string, value: unknown): never {
  throw new ConfigError(`${name} must be ${expected}, got ${describeValue(value)}`);
}

/** The `compression` option: a format this platform can write, `'auto'`, or null. */
export const compression: Check = (name, value) => {
  if (value === null || value === 'auto') return;
  if (typeof value !== 'string' || !(COMPRESSION_LABELS as readonly string[]).includes(value)) {
    fail(name, `one of 'lz4', 'zstd', 'snappy', 'zlib', 'auto' or null`, value);
  }
  if (compressionSupport()?.canCompress(value as CompressionName) === false) {
    throw new ConfigError(`${name} '${value}' cannot compress on this platform (it reads ${value} payloads, but has no ${value} encoder)`);
  }
};

/** Largest delay a timer can take: Node fires longer ones at once. */
const MAX_DELAY_MS = 2 ** 31 - 1;

export const positiveNumber: Check = (name, value) => {
  if (typeof value !== 'number' || !(value > 0)) fail(name, 'a positive number', value);
};

export const duration: Check = (name, value) => {
  if (typeof value !== 'number' || !(value > 0) || value > MAX_DELAY_MS) {
    fail(name, `a positive number of milliseconds up to ${MAX_DELAY_MS}`, value);
  }
};

/** A duration, or 0 for "off". */
export const durationOrOff: Check = (name, value) => {
  if (value !== 0) duration(name, value);
};

export const boolean: Check = (name, value) => {
  if (typeof value !== 'boolean') fail(name, 'true or false', value);
};

export const string: Check = (name, value) => {
  if (typeof value !== 'string') fail(name, 'a string', value);
};

export const func: Check = (name, value) => {
  if (typeof value !== 'function') fail(name, 'a function', value);
};

export const plainObject: Check = (name, value) => {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(name, 'an object', value);
};

/** An object with these methods. */
export function withMethods(what: string, ...methods: string[]): Check {
  return (name, value) => {
    const target = value as Record<string, unknown> | null;
    if (typeof value !== 'object' || value === null || methods.some((m) => typeof target![m] !== 'function')) {
      fail(name, `${what} (with ${methods.join(', ')})`, value);
    }
  };
}

export const pemOrPath: Check = (name, value) => {
  if (typeof value !== 'string' && !(value instanceof Uint8Array)) fail(name, 'PEM text, a file path or a Buffer', value);
};

/** A list of web origins (`scheme://host[:port]`, as a browser sends in `Origin`) or `'*'`. */
export const originList: Check = (name, value) => {
  if (!Array.isArray(value)) fail(name, "an array of origins (or '*')", value);
  for (const [i, entry] of (value as unknown[]).entries()) {
    if (entry === '*') continue;
    let origin: string | undefined;
    try {
      origin = typeof entry === 'string' ? new URL(entry).origin : undefined;
    } catch {
      origin = undefined;
    }
    // URL normalises case and drops default ports; a browser's Origin header is already normal.
    if (typeof entry !== 'string' || origin === 'null' || origin !== entry.toLowerCase().replace(/\/$/, '')) {
      fail(`${name}[${i}]`, "an origin such as 'https://app.example:8443' (scheme, host and port only) or '*'", entry);
    }
  }
};

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0];
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j];
      const same = a[i - 1].toLowerCase() === b[j - 1].toLowerCase();
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (same ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length];
}

export function nearest(key: string, candidates: readonly string[]): string {
  return candidates.reduce((best, candidate) => (distance(key, candidate) < distance(key, best) ? candidate : best));
}

/**
 * Checks every key of `config` against `checks`. `where` names the options in messages
 * (`connect()`, `security`); `elsewhere` maps keys that belong to another function to
 * its name, so that `connect(addr, { handshakeTimeout })` says where that option goes.
 */
export function checkOptions(
  where: string,
  config: unknown,
  checks: Readonly<Record<string, Check>>,
  elsewhere: Readonly<Record<string, string>> = {},
  prefix = '',
): void {
  if (config === undefined) return;
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new ConfigError(`options of ${where} must be an object, got ${describeValue(config)}`);
  }
  for (const [key, value] of Object.entries(config)) {
    if (!Object.prototype.hasOwnProperty.call(checks, key)) {
      const owner = elsewhere[key];
      throw new ConfigError(
        owner
          ? `'${key}' is an option of ${owner}, not of ${where}`
          : `unknown option '${key}' for ${where}; did you mean '${nearest(key, Object.keys(checks))}'?`,
      );
    }
    if (value !== undefined) checks[key](prefix + key, value); // an explicit undefined keeps the default
  }
}
