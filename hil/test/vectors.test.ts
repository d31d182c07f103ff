import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeCbor } from "@esp-fleet/schemas";
import { decodeFrame, encodeFrame, type Frame } from "../src/frames.ts";
import { renderCHeader, renderFramesJson } from "../src/vector-files.ts";
import type { BadFrameVector, FrameVector } from "../src/vectors.ts";

const root = new URL("../", import.meta.url);
const file = JSON.parse(readFileSync(new URL("vectors/frames.json", root), "utf8")) as {
  frames: FrameVector[];
  bad: BadFrameVector[];
};

function bodyFromJson(v: FrameVector): Frame {
  const body = { ...v.body };
  if (typeof body.p === "string") body.p = Buffer.from(body.p, "hex");
  return { type: v.type, body } as Frame;
}

describe("golden frame vectors (hil/vectors/frames.json)", () => {
  it("are what the generator writes (run `npx tsx hil/scripts/generate-vectors.ts` after a protocol change)", () => {
    expect(JSON.parse(readFileSync(new URL("vectors/frames.json", root), "utf8"))).toEqual(JSON.parse(renderFramesJson()));
    expect(readFileSync(new URL("firmware/test/vectors_gen.h", root), "utf8")).toBe(renderCHeader());
  });

  it.each(file.frames.map((v) => [v.name, v] as const))(
    "%s: decodes to its meaning and encodes back to the same bytes",
    (_n, v) => {
      const wire = Buffer.from(v.hex, "hex");
      const r = decodeFrame(wire.subarray(0, wire.length - 1));
      expect(r.ok).toBe(true);
      if (!r.ok) return;
      expect(r.value.type).toBe(v.type);
      const got = Object.fromEntries(
        Object.entries(r.value.body).map(([k, x]) => [k, x instanceof Uint8Array ? Buffer.from(x).toString("hex") : x]),
      );
      expect(got).toEqual(v.body);
      if (v.payload !== undefined && typeof v.body.p === "string") {
        const p = Buffer.from(v.body.p, "hex");
        const meaning = v.body.ch === "log" ? p.toString("utf8") : (decodeCbor(p) as { ok: true; value: unknown }).value;
        expect(meaning).toEqual(v.payload);
      }
      expect(Buffer.from(encodeFrame(bodyFromJson(v))).toString("hex")).toBe(v.hex);
    },
  );

  it.each(file.bad.map((v) => [v.name, v] as const))("%s: rejected as %s", (_n, v) => {
    const r = decodeFrame(Buffer.from(v.hex, "hex"));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.kind).toBe(v.error);
  });
});
