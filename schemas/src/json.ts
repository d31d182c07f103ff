/**
 * Plain-JSON view of a decoded CBOR value: typed arrays and byte strings become number arrays, Maps
 * become objects, bigints become numbers (or strings past 2^53), CBOR tags `{tag, value}`, Dates ISO
 * strings. Used by `esp-fleet decode`, the JSON mirror and the HTTP API.
 */
export function toJsonValue(value: unknown): unknown {
  if (value === null || value === undefined) return value ?? null;
  switch (typeof value) {
    case "number":
      return Number.isFinite(value) ? value : String(value);
    case "bigint":
      return value <= BigInt(Number.MAX_SAFE_INTEGER) && value >= BigInt(Number.MIN_SAFE_INTEGER)
        ? Number(value)
        : value.toString();
    case "string":
    case "boolean":
      return value;
    case "object":
      break;
    default:
      return String(value);
  }
  if (ArrayBuffer.isView(value)) {
    if (value instanceof DataView) return Array.from(new Uint8Array(value.buffer, value.byteOffset, value.byteLength));
    return Array.from(value as unknown as ArrayLike<number | bigint>, (n) => toJsonValue(n));
  }
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Map) return Object.fromEntries([...value].map(([k, v]) => [String(k), toJsonValue(v)]));
  if (value instanceof Set) return [...value].map(toJsonValue);
  const tagged = value as { tag?: unknown; value?: unknown; constructor?: { name?: string } };
  if (tagged.constructor?.name === "Tag" && typeof tagged.tag === "number")
    return { tag: tagged.tag, value: toJsonValue(tagged.value) };
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toJsonValue(v);
  return out;
}
