/**
 * The interop checker checked (no Dask needed): `firstDifference` must catch every
 * difference message_set.md counts, or the round-trip specs could pass vacuously.
 */
import { firstDifference, messageSet, nested, pattern, PYTHON_FRAME0 } from './message-set';

describe('the interop message set and its checker', () => {
  it('should mirror the 40 messages of message_set.md, in order', () => {
    const names = messageSet().map(([name]) => name);
    expect(names).toHaveLength(40);
    expect(names).toEqual(Object.keys(PYTHON_FRAME0));
    expect(new Set(names).size).toBe(40);
  });

  it('should build pattern() and nested() as dask_peer.py does', () => {
    expect([...pattern(253)].slice(249)).toEqual([249, 250, 0, 1]);
    let d = nested(50) as Record<string, unknown>;
    for (let level = 0; level < 50; level++) {
      expect(Object.keys(d)).toEqual(['level', 'next']);
      expect(d.level).toBe(level);
      d = d.next as Record<string, unknown>;
    }
    expect(d).toEqual({ leaf: 'bottom' });
  });

  it('should find every message equal to a structural copy of itself', () => {
    const copies = messageSet(); // built afresh: no shared references with the first set
    for (const [i, [name, message]] of messageSet().entries()) {
      expect({ name, diff: firstDifference(message, copies[i][1]) }).toEqual({ name, diff: null });
    }
  });

  it.each<[string, unknown, unknown]>([
    ['bigint vs number', 2n ** 53n + 1n, 2 ** 53 + 1],
    ['number vs bigint', 1, 1n],
    ['int vs float', 1, 1.5],
    ['-0 vs 0', -0, 0],
    ['NaN vs a number', NaN, 0],
    ['bool vs int', true, 1],
    ['nil vs missing', null, undefined],
    ['str vs bin', 'abc', Buffer.from('abc')],
    ['bin bytes', Buffer.from([0, 1, 2]), Buffer.from([0, 1, 3])],
    ['bin length', Buffer.alloc(0), Buffer.alloc(1)],
    ['array length', [1, 2], [1, 2, 3]],
    ['array element', [1, [2, [3]]], [1, [2, [4]]]],
    ['object vs Map', { a: 1 }, new Map([['a', 1]])],
    ['object key', { a: 1 }, { b: 1 }],
    ['object value', { a: { b: 1 } }, { a: { b: 2 } }],
    ['int key vs str key', new Map([[1, 'x']]), new Map([['1', 'x']])],
    ['tuple key content', new Map([[['x', 0], 'a']]), new Map([[['x', 1], 'a']])],
    ['bytes key content', new Map([[Buffer.from('k1'), 1]]), new Map([[Buffer.from('k2'), 1]])],
    ['bigint key vs number key', new Map([[2n ** 63n, 'a']]), new Map([[2 ** 63, 'a']])],
    ['value under a tuple key', new Map([[['x'], 'a']]), new Map([[['x'], 'b']])],
    ['Map size', new Map([[1, 1]]), new Map([[1, 1], [2, 2]])],
  ])('should tell apart %s', (_, expected, actual) => {
    expect(firstDifference(expected, actual)).not.toBeNull();
  });

  it('should treat NaN as equal to NaN, ignore key order, and compare keys structurally', () => {
    expect(firstDifference(NaN, NaN)).toBeNull();
    expect(firstDifference({ a: 1, b: 2 }, { b: 2, a: 1 })).toBeNull();
    expect(firstDifference(new Map<unknown, unknown>([[['x', 0], 1], [Buffer.from('k'), 2]]), new Map<unknown, unknown>([[Buffer.from('k'), 2], [['x', 0], 1]]))).toBeNull();
    expect(firstDifference(Buffer.from('ab'), new Uint8Array([0x61, 0x62]))).toBeNull();
  });
});
