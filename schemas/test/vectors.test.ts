import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeCbor, toJsonValue } from "../src/index.ts";

/**
 * Golden vectors written by an independent CBOR encoder (schemas/vectors/make_vectors.py, RFC 8949/8746
 * by hand). The firmware's C tests read the same file.
 */
interface Vector {
  name: string;
  topic: string;
  hex: string;
  json?: unknown;
  error?: string;
}
const vectors = JSON.parse(readFileSync(new URL("../vectors/messages.json", import.meta.url), "utf8")) as Vector[];

describe("golden CBOR vectors", () => {
  it("has valid and invalid vectors for every message kind", () => {
    expect(vectors.filter((v) => v.json).length).toBeGreaterThanOrEqual(11);
    expect(vectors.filter((v) => v.error).length).toBeGreaterThanOrEqual(5);
  });

  for (const v of vectors.filter((x) => x.json !== undefined)) {
    it(`decodes: ${v.name}`, () => {
      const r = decodeMessage(v.topic, Buffer.from(v.hex, "hex"));
      if (!r.ok) throw new Error(`${r.error.stage}: ${r.error.error}`);
      const expected = v.json as Record<string, unknown>;
      // Schema defaults (e.g. tof.h) may add fields; everything in the vector must match exactly.
      expect(toJsonValue(r.value.message)).toMatchObject(expected);
    });

    it(`re-encodes to bytes that decode to the same message: ${v.name}`, () => {
      const first = decodeMessage(v.topic, Buffer.from(v.hex, "hex"));
      if (!first.ok) throw new Error(first.error.error);
      const again = decodeMessage(v.topic, encodeCbor(first.value.message));
      if (!again.ok) throw new Error(again.error.error);
      expect(toJsonValue(again.value.message)).toEqual(toJsonValue(first.value.message));
    });
  }

  for (const v of vectors.filter((x) => x.error !== undefined)) {
    it(`rejects with a reason naming the problem: ${v.name}`, () => {
      const r = decodeMessage(v.topic, Buffer.from(v.hex, "hex"));
      expect(r.ok).toBe(false);
      if (!r.ok) {
        if (v.error === "cbor") expect(r.error.stage).toBe("cbor");
        else expect(r.error.error).toContain(v.error);
      }
    });
  }

  it("encodes a sample canonically: typed-array tags, uint64 timestamp, no cbor-x extensions", () => {
    const v = vectors[0]!;
    const first = decodeMessage(v.topic, Buffer.from(v.hex, "hex"));
    if (!first.ok) throw new Error(first.error.error);
    const hex = Buffer.from(encodeCbor(first.value.message)).toString("hex");
    expect(hex).toContain("d8455880"); // tag 69 + 128-byte byte string (64 × uint16)
    expect(hex).toContain("1b0000019ad735847b"); // ts as CBOR uint64, not float64
    expect(hex).not.toMatch(/^d9d9f7/); // no self-describe header
    expect(hex).not.toContain("d869"); // no tag 105 (cbor-x records)
  });
});
