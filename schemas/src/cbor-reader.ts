/**
 * A hot-path CBOR reader for the shapes devices send (issue #2): definite-length maps with short ASCII
 * text keys, arrays, integers, float32/float64, ASCII text, byte strings, RFC 8746 tags 64 (uint8) and
 * 69 (uint16 LE), true/false/null/undefined. It answers exactly what the codec's cbor-x Decoder would
 * (same values, same typed-array views onto the input, the same float32 decimal rounding) and declines —
 * returns NOT_HANDLED — on anything else: any other tag or simple value, float16, indefinite lengths,
 * non-ASCII text, a `__proto__` key, deep nesting, truncation, trailing bytes. The caller then runs cbor-x,
 * which stays the one authority on every error and every unusual encoding.
 * schemas/test/cbor-reader.test.ts checks it against cbor-x on generated and corrupted input.
 */

/** Returned when the payload is outside the hot-path subset; decode it with cbor-x instead. */
export const NOT_HANDLED: unique symbol = Symbol("cbor-reader: not handled");

// Thrown (never escapes readCbor) to unwind from any depth when the payload leaves the subset.
const DECLINE = new Error("cbor-reader: declined");
const MAX_DEPTH = 32;
const MAX_ITEMS = 4096;
const MAX_TEXT = 1024;

// cbor-x's FLOAT32_OPTIONS.DECIMAL_FIT rounding: the same table and the same expression, so a float32
// decodes to the very number cbor-x gives (5.12, not 5.119999885559082).
const mult10 = Array.from({ length: 256 }, (_, i) => +("1e" + Math.floor(45.15 - i * 0.30103)));

let src: Uint8Array = new Uint8Array(0);
let view: DataView | undefined;
let pos = 0;
let end = 0;
// cbor-x's guard against a small payload declaring huge arrays: the summed array lengths may not exceed
// the payload's size (never reached by a well-formed payload, since every element takes a byte).
let budget = 0;

/** Decode `bytes` as one CBOR item, or NOT_HANDLED when cbor-x must decide. Never throws. */
export function readCbor(bytes: Uint8Array): unknown {
  if (!LITTLE_ENDIAN) return NOT_HANDLED;
  src = bytes;
  view = undefined;
  pos = 0;
  end = bytes.length;
  budget = end;
  try {
    const value = read(0);
    return pos === end ? value : NOT_HANDLED;
  } catch {
    // DECLINE, or anything unforeseen: either way cbor-x decides.
    return NOT_HANDLED;
  } finally {
    src = EMPTY;
    view = undefined;
  }
}
const EMPTY = new Uint8Array(0);

/** The argument of an item head (RFC 8949 §3): the count, length, value or tag number. */
function argument(info: number, major: number): number {
  if (info < 24) return info;
  if (info === 24) {
    if (pos >= end) throw DECLINE;
    return src[pos++]!;
  }
  if (info === 25) {
    if (pos + 2 > end) throw DECLINE;
    const v = (src[pos]! << 8) | src[pos + 1]!;
    pos += 2;
    return v;
  }
  if (info === 26) {
    if (pos + 4 > end) throw DECLINE;
    const v = uint32(pos);
    pos += 4;
    return v;
  }
  // 8-byte argument: only as a uint64 (ms timestamps), computed the way cbor-x's int64AsNumber does.
  if (info === 27 && major === 0) {
    if (pos + 8 > end) throw DECLINE;
    let v = uint32(pos) * 0x100000000;
    v += uint32(pos + 4);
    pos += 8;
    return v;
  }
  throw DECLINE;
}

/** Big-endian uint32 at `at` (no DataView: one per payload costs more than these four loads). */
function uint32(at: number): number {
  return src[at]! * 0x1000000 + ((src[at + 1]! << 16) | (src[at + 2]! << 8) | src[at + 3]!);
}

function read(depth: number): unknown {
  if (pos >= end || depth > MAX_DEPTH) throw DECLINE;
  const head = src[pos++]!;
  const major = head >> 5;
  const info = head & 0x1f;
  switch (major) {
    case 0:
      return argument(info, 0);
    case 1:
      // cbor-x: `-1 - n` for a 4-byte argument, `~n` otherwise — equal for every argument handled here.
      return -1 - argument(info, 1);
    case 2: {
      const n = argument(info, 2);
      if (n > end - pos) throw DECLINE;
      return src.subarray(pos, (pos += n));
    }
    case 3:
      return text(argument(info, 3));
    case 4: {
      const n = argument(info, 4);
      if (n > end - pos || n > MAX_ITEMS || (budget -= n) < 0) throw DECLINE;
      const array = new Array<unknown>(n);
      for (let i = 0; i < n; i++) array[i] = read(depth + 1);
      return array;
    }
    case 5: {
      const n = argument(info, 5);
      if (n > (end - pos) / 2 || n > MAX_ITEMS) throw DECLINE;
      const object: Record<string, unknown> = {};
      for (let i = 0; i < n; i++) {
        const k = key();
        object[k] = read(depth + 1);
      }
      return object;
    }
    case 6:
      return tagged(argument(info, 6));
    default:
      return simple(info);
  }
}

/** A map key: a text string other than `__proto__` (cbor-x renames that one; cbor-x handles it). */
function key(): string {
  if (pos >= end) throw DECLINE;
  const head = src[pos++]!;
  if (head >> 5 !== 3) throw DECLINE;
  const k = text(argument(head & 0x1f, 3));
  if (k === "__proto__") throw DECLINE;
  return k;
}

// Recently seen short strings (keys, device ids), direct-mapped by length and first/last byte: a hit is
// checked byte for byte and allocates nothing.
const CACHE_SIZE = 4096;
const cache: (string | undefined)[] = new Array<string | undefined>(CACHE_SIZE).fill(undefined);

/** An ASCII text string (any byte ≥ 0x80 declines: UTF-8 decoding stays cbor-x's). */
function text(n: number): string {
  if (n > end - pos) throw DECLINE;
  const start = pos;
  if (n === 0) return "";
  if (n <= 32) {
    const slot = ((n << 7) ^ (src[start]! << 4) ^ src[start + n - 1]! ^ (src[start + (n >> 1)]! << 2)) & (CACHE_SIZE - 1);
    const hit = cache[slot];
    if (hit !== undefined && hit.length === n) {
      let i = 0;
      while (i < n && hit.charCodeAt(i) === src[start + i]) i++;
      if (i === n) {
        pos += n;
        return hit;
      }
    }
    const s = ascii(start, n);
    cache[slot] = s;
    return s;
  }
  if (n > MAX_TEXT) throw DECLINE;
  return ascii(start, n);
}

function ascii(start: number, n: number): string {
  for (let i = start; i < start + n; i++) if (src[i]! >= 0x80) throw DECLINE;
  pos = start + n;
  return String.fromCharCode.apply(null, src.subarray(start, start + n) as unknown as number[]);
}

/** RFC 8746 tag 64 (uint8) and 69 (uint16 little-endian) over a byte string, as cbor-x builds them. */
function tagged(tag: number): unknown {
  if (tag !== 64 && tag !== 69) throw DECLINE;
  if (pos >= end || src[pos]! >> 5 !== 2) throw DECLINE;
  const bytes = read(MAX_DEPTH) as Uint8Array;
  if (tag === 64) return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength & 1) throw DECLINE;
  // A view onto the input when aligned, else a copy (cbor-x's own rule).
  return bytes.byteOffset & 1
    ? new Uint16Array(Uint8Array.prototype.slice.call(bytes, 0).buffer)
    : new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength >> 1);
}
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A DataView of the payload, made at its first float (payloads without floats never pay for one). */
function dataView(): DataView {
  if (view === undefined) view = new DataView(src.buffer, src.byteOffset, src.byteLength);
  return view;
}

function simple(info: number): unknown {
  switch (info) {
    case 20:
      return false;
    case 21:
      return true;
    case 22:
      return null;
    case 23:
      return undefined;
    case 26: {
      if (pos + 4 > end) throw DECLINE;
      const value = dataView().getFloat32(pos);
      const multiplier = mult10[((src[pos]! & 0x7f) << 1) | (src[pos + 1]! >> 7)]!;
      pos += 4;
      return ((multiplier * value + (value > 0 ? 0.5 : -0.5)) >> 0) / multiplier;
    }
    case 27: {
      if (pos + 8 > end) throw DECLINE;
      const value = dataView().getFloat64(pos);
      pos += 8;
      return value;
    }
    default:
      throw DECLINE;
  }
}
