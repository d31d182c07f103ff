/**
 * The codec's encoder: a small, allocation-light CBOR writer (first written for the emulator's hot path)
 * producing exactly the bytes the cbor-x reference path in codec.ts produces (a property test checks byte
 * equality on random values): maps with text keys sized minimally, undefined fields omitted, integers in
 * the smallest form (uint64 beyond 32 bits), non-integers as float32 when that round-trips the decimal
 * value (cbor-x's DECIMAL_FIT rule) else float64, Uint8Array/Uint16Array as RFC 8746 tags 64/69 (a
 * Uint16Array whose values all fit in a byte as tag 64, the smallest form, like integers) and a Node
 * Buffer as a plain byte string.
 *
 * Why not `encodeCbor` itself: at 10,000 messages/s the generic encoder (object copy + cbor-x's general
 * machinery) costs ~7 µs for a fridge reading and ~30 µs for a SQAL sample; this one writes into one
 * reused buffer and caches key headers. Supported value types are the ones above plus booleans, null,
 * strings and plain arrays; anything else throws (a programming error).
 */

// cbor-x's table matching binary exponents to the decimal multiplier for significant-digit rounding.
const mult10 = new Array<number>(147);
for (let i = 0; i < 256; i++) mult10[i] = +("1e" + Math.floor(45.15 - i * 0.30103));

let buf = Buffer.allocUnsafeSlow(64 * 1024);
let view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
let pos = 0;
const keyCache = new Map<string, Buffer>();
const TWO_32 = 0x1_0000_0000;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function ensure(n: number): void {
  if (pos + n <= buf.length) return;
  const bigger = Buffer.allocUnsafeSlow(Math.max(buf.length * 2, pos + n + 1024));
  buf.copy(bigger, 0, 0, pos);
  buf = bigger;
  view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

function head(major: number, n: number): void {
  ensure(9);
  if (n < 24) buf[pos++] = major | n;
  else if (n < 0x100) {
    buf[pos++] = major | 24;
    buf[pos++] = n;
  } else if (n < 0x10000) {
    buf[pos++] = major | 25;
    buf[pos++] = n >> 8;
    buf[pos++] = n & 0xff;
  } else if (n < TWO_32) {
    buf[pos++] = major | 26;
    view.setUint32(pos, n);
    pos += 4;
  } else {
    buf[pos++] = major | 27;
    view.setBigUint64(pos, BigInt(n));
    pos += 8;
  }
}

function text(s: string): void {
  const n = s.length;
  if (n < 24) {
    // Short strings (ids, keys, enum values): header and ASCII bytes in one JS loop, no native call.
    ensure(n + 1);
    const start = pos;
    buf[pos++] = 0x60 | n;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[pos++] = c;
    }
    if (i === n) return;
    pos = start; // not ASCII: the general path below
  }
  let ascii = n < 0x10000;
  for (let i = 0; ascii && i < s.length; i++) if (s.charCodeAt(i) >= 0x80) ascii = false;
  if (ascii) {
    head(0x60, s.length);
    ensure(s.length);
    buf.write(s, pos, "latin1");
    pos += s.length;
    return;
  }
  const bytes = Buffer.from(s, "utf8");
  head(0x60, bytes.length);
  ensure(bytes.length);
  bytes.copy(buf, pos);
  pos += bytes.length;
}

function key(k: string): void {
  let h = keyCache.get(k);
  if (!h) {
    const save = pos;
    text(k);
    h = Buffer.from(buf.subarray(save, pos));
    pos = save;
    if (keyCache.size < 10_000) keyCache.set(k, h);
  }
  const n = h.length;
  ensure(n);
  for (let i = 0; i < n; i++) buf[pos + i] = h[i] as number;
  pos += n;
}

function number(x: number): void {
  if (x >>> 0 === x) return head(0x00, x);
  if (x >> 0 === x) return head(0x20, -1 - x);
  if (Number.isSafeInteger(x)) {
    // beyond 32 bits: cbor-x writes negatives down to −2^32 as nint32, the codec turns the rest into BigInt
    if (x < 0) return head(0x20, -1 - x);
    return head(0x00, x);
  }
  ensure(9);
  if (x < TWO_32 && x >= -0x80000000) {
    buf[pos] = 0xfa;
    view.setFloat32(pos + 1, x);
    const m = mult10[(((buf[pos + 1] as number) & 0x7f) << 1) | ((buf[pos + 2] as number) >> 7)] as number;
    const shifted = x * m;
    if (shifted >> 0 === shifted) {
      pos += 5;
      return;
    }
  }
  buf[pos++] = 0xfb;
  view.setFloat64(pos, x);
  pos += 8;
}

function value(v: unknown): void {
  switch (typeof v) {
    case "number":
      return number(v);
    case "string":
      return text(v);
    case "undefined":
      ensure(1);
      buf[pos++] = 0xf7;
      return;
    case "boolean":
      ensure(1);
      buf[pos++] = v ? 0xf5 : 0xf4;
      return;
    case "bigint":
      if (v >= 0n) {
        ensure(9);
        buf[pos++] = 0x1b;
        view.setBigUint64(pos, v);
        pos += 8;
      } else {
        ensure(9);
        buf[pos++] = 0x3b;
        view.setBigUint64(pos, -1n - v);
        pos += 8;
      }
      return;
    case "object": {
      if (v === null) {
        ensure(1);
        buf[pos++] = 0xf6;
        return;
      }
      if (v instanceof Uint8Array) {
        // A Node Buffer is a plain byte string (major type 2), as cbor-x writes it; any other
        // Uint8Array is an RFC 8746 uint8 typed array (tag 64).
        if (!Buffer.isBuffer(v)) {
          ensure(2);
          buf[pos++] = 0xd8;
          buf[pos++] = 64;
        }
        head(0x40, v.length);
        ensure(v.length);
        buf.set(v, pos);
        pos += v.length;
        return;
      }
      if (v instanceof Uint16Array) {
        if (fitsInBytes(v)) {
          // Every value fits in a byte: the narrower RFC 8746 uint8 array (tag 64), as DESIGN §3 allows
          // (docs/decisions.md) — a SQAL frame's distances at the station's 100 mm height, say.
          ensure(2);
          buf[pos++] = 0xd8;
          buf[pos++] = 64;
          head(0x40, v.length);
          ensure(v.length);
          for (let i = 0; i < v.length; i++) buf[pos++] = v[i] as number;
          return;
        }
        ensure(2);
        buf[pos++] = 0xd8;
        buf[pos++] = 69;
        const n = v.length * 2;
        head(0x40, n);
        ensure(n);
        if (LITTLE_ENDIAN) {
          buf.set(new Uint8Array(v.buffer, v.byteOffset, n), pos);
          pos += n;
        } else {
          for (let i = 0; i < v.length; i++) {
            const x = v[i] as number;
            buf[pos++] = x & 0xff;
            buf[pos++] = x >> 8;
          }
        }
        return;
      }
      if (Array.isArray(v)) {
        head(0x80, v.length);
        for (const item of v) value(item);
        return;
      }
      const proto = Object.getPrototypeOf(v) as unknown;
      if (proto !== Object.prototype && proto !== null) throw new TypeError("only plain objects are written as CBOR maps");
      const o = v as Record<string, unknown>;
      let n = 0;
      for (const k in o) if (o[k] !== undefined) n++;
      head(0xa0, n);
      for (const k in o) {
        const item = o[k];
        if (item === undefined) continue;
        key(k);
        value(item);
      }
      return;
    }
    default:
      throw new TypeError(`cannot encode ${typeof v} as CBOR`);
  }
}

/** Encode a message; returns a fresh Buffer (safe to keep, e.g. in the offline FIFO). Throws TypeError on
 * a value type it does not write (the codec then falls back to cbor-x). */
export function encodeFast(v: unknown): Buffer {
  pos = 0;
  value(v);
  const out = Buffer.allocUnsafe(pos);
  buf.copy(out, 0, 0, pos);
  return out;
}

/** Bytes encoded ahead of time for the streaming writer below: a map key, or a message's constant head. */
export type CborChunk = Uint8Array & { readonly __cborChunk: true };

/** A text string pre-encoded (header + UTF-8 bytes): a map key, or an enum value sent often. Safe to call
 * while a streamed message is being written (it leaves that message's bytes as they are). */
export function cborKey(k: string): CborChunk {
  const save = pos;
  text(k);
  const bytes = Uint8Array.prototype.slice.call(buf, save, pos);
  pos = save;
  return bytes as CborChunk;
}

/**
 * A streaming writer for fixed-shape messages on a hot path — the way firmware writes CBOR (TinyCBOR's
 * `cbor_encode_*`): the caller writes the map header with its exact size, then each pre-encoded key and
 * its value, and takes the bytes with `end()`. No message object is built and no keys are looked up.
 * Same rules and bytes as `encodeFast` for the same fields in the same order (a test checks the emulator's
 * writers against `encodeCbor`). One message at a time and synchronously: it shares `encodeFast`'s
 * buffer, so nothing else may encode between `begin()` and `end()`.
 */
export const cborStream = {
  /** Start a message whose top level is a map of `size` entries. */
  begin(size: number): void {
    pos = 0;
    head(0xa0, size);
  },
  /** Start a message with bytes encoded earlier (a constant head: map header and the first fields). */
  start(prefix: CborChunk): void {
    pos = 0;
    cborStream.key(prefix);
  },
  map(size: number): void {
    head(0xa0, size);
  },
  /** A pre-encoded key (or any pre-encoded chunk). */
  key(k: CborChunk): void {
    const n = k.length;
    ensure(n);
    for (let i = 0; i < n; i++) buf[pos + i] = k[i] as number;
    pos += n;
  },
  number,
  text,
  bool(b: boolean): void {
    ensure(1);
    buf[pos++] = b ? 0xf5 : 0xf4;
  },
  null(): void {
    ensure(1);
    buf[pos++] = 0xf6;
  },
  /** Any value `encodeFast` writes (nested maps and arrays included). */
  value,
  /** The message's bytes as a fresh Buffer (safe to keep). */
  end(): Buffer {
    const out = Buffer.allocUnsafe(pos);
    buf.copy(out, 0, 0, pos);
    return out;
  },
};

/** True when every value of `a` fits in one byte, so it goes on the wire as a uint8 typed array. */
export function fitsInBytes(a: Uint16Array): boolean {
  for (let i = 0; i < a.length; i++) if ((a[i] as number) > 0xff) return false;
  return true;
}
