/**
 * How values are printed: readably for people (Node's `inspect`: Maps with their keys,
 * `123n` bigints, `<Buffer 00 01 …>` bytes), or as JSON for scripts, where what JSON cannot
 * hold is tagged: `{"$bytes": "<base64>"}`, `{"$bigint": "123"}`, `{"$map": [[key, value], …]}`,
 * `{"$set": […]}`, `{"$float": "NaN"}`, and payloads kept opaque as
 * `{"$serialized": {"header": …, "frames": […]}}` (`$pickled` likewise).
 */
import { inspect } from 'node:util';
import { Pickled, Serialized } from '../index';
import { UsageError } from './exit-codes';

export function readable(value: unknown, colors = false): string {
  return inspect(value, { depth: null, colors, maxArrayLength: 200, maxStringLength: 10_000, breakLength: 120 });
}

/** `value` as JSON-safe data, with the tags above. */
export function toJsonValue(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $float: String(value) };
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Map) return { $map: [...value].map(([k, v]) => [toJsonValue(k), toJsonValue(v)]) };
  if (value instanceof Set) return { $set: [...value].map(toJsonValue) };
  if (value instanceof Serialized || value instanceof Pickled) {
    const tag = value instanceof Serialized ? '$serialized' : '$pickled';
    return { [tag]: { header: toJsonValue(value.header), frames: value.frames.map(toJsonValue) } };
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJsonValue(v)]));
}

export function json(value: unknown): string {
  return JSON.stringify(toJsonValue(value));
}

/** The inverse of `toJsonValue`: tagged objects (one key, one of the tags) become their values. */
export function fromJsonValue(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(fromJsonValue);
  const entries = Object.entries(value);
  if (entries.length === 1) {
    const [[tag, inner]] = entries;
    if (tag === '$bytes' && typeof inner === 'string') return new Uint8Array(Buffer.from(inner, 'base64'));
    if (tag === '$bigint' && typeof inner === 'string') return BigInt(inner);
    if (tag === '$float' && typeof inner === 'string') return Number(inner);
    if (tag === '$map' && Array.isArray(inner)) return new Map(inner.map((pair) => [fromJsonValue(pair[0]), fromJsonValue(pair[1])]));
    if (tag === '$set' && Array.isArray(inner)) return new Set(inner.map(fromJsonValue));
  }
  return Object.fromEntries(entries.map(([k, v]) => [k, fromJsonValue(v)]));
}

/** A JSON argument from the command line as a message, tags included (`{"$bytes": …}`). */
export function parseJsonArgument(text: string, what: string): unknown {
  try {
    return fromJsonValue(JSON.parse(text));
  } catch (err) {
    throw new UsageError(`${what} is not JSON: ${(err as Error).message}`);
  }
}
