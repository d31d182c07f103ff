/**
 * Consistent Overhead Byte Stuffing (Cheshire & Baker, 1999): removes every 0x00 from a buffer so 0x00
 * can delimit frames on the wire. Overhead is at most one byte per 254 bytes plus one.
 */

/** Largest encoded size of `n` bytes (without the trailing delimiter). */
export function cobsMaxEncodedLength(n: number): number {
  return n + Math.floor(n / 254) + 1;
}

/** Encode `data` (may contain 0x00) into `out` at `offset`; returns the number of bytes written. */
export function cobsEncodeInto(data: Uint8Array, out: Uint8Array, offset = 0): number {
  let codeAt = offset;
  let w = offset + 1;
  let code = 1;
  for (let i = 0; i < data.length; i++) {
    const b = data[i]!;
    if (b === 0) {
      out[codeAt] = code;
      codeAt = w++;
      code = 1;
    } else {
      out[w++] = b;
      code++;
      if (code === 0xff) {
        out[codeAt] = code;
        codeAt = w++;
        code = 1;
      }
    }
  }
  out[codeAt] = code;
  return w - offset;
}

export function cobsEncode(data: Uint8Array): Uint8Array {
  const out = new Uint8Array(cobsMaxEncodedLength(data.length));
  const n = cobsEncodeInto(data, out);
  return out.subarray(0, n);
}

/**
 * Decode one COBS block (without its delimiter). Returns undefined when the block is not valid COBS:
 * a 0x00 inside it, or a code byte pointing past the end.
 */
export function cobsDecode(block: Uint8Array): Uint8Array | undefined {
  const out = new Uint8Array(block.length);
  let r = 0;
  let w = 0;
  while (r < block.length) {
    const code = block[r++]!;
    if (code === 0) return undefined;
    const end = r + code - 1;
    if (end > block.length) return undefined;
    while (r < end) {
      const b = block[r++]!;
      if (b === 0) return undefined;
      out[w++] = b;
    }
    // A code below 0xFF stands for a zero byte — except after the last group.
    if (code !== 0xff && r < block.length) out[w++] = 0;
  }
  return out.subarray(0, w);
}
