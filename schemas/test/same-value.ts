/**
 * Structural equality for the codec's property tests, telling apart what toEqual does not: -0, NaN,
 * Buffer vs Uint8Array vs Uint16Array, views sharing a buffer at different offsets, key order and
 * `undefined` keys. Errors compare by name and message (cbor-x turns tag 27 into an Error, and two
 * decodes of one payload differ only in their stack traces).
 */
export function same(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b) || a.constructor !== b.constructor) return false;
    if ((a.buffer === b.buffer) !== (a.byteOffset === b.byteOffset && a.buffer === b.buffer)) return false;
    const x = a as unknown as ArrayLike<number>;
    const y = b as unknown as ArrayLike<number>;
    return x.length === y.length && Array.from(x).every((v, i) => Object.is(v, y[i]));
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    return Array.isArray(a) && Array.isArray(b) && a.length === b.length && a.every((v, i) => same(v, b[i]));
  }
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  // cbor-x turns tag 27 into an Error; two decodes of one payload differ only in their stack traces.
  if (a instanceof Error && b instanceof Error) return a.name === b.name && a.message === b.message;
  const ka = Reflect.ownKeys(a);
  const kb = Reflect.ownKeys(b);
  return (
    ka.length === kb.length &&
    ka.every((k, i) => k === kb[i] && same((a as Record<PropertyKey, unknown>)[k], (b as Record<PropertyKey, unknown>)[k]))
  );
}
