import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { decodeLine } from "../src/decode.ts";

interface Vector {
  name: string;
  topic: string;
  hex: string;
  json?: Record<string, unknown>;
  error?: string;
}
const vectors = JSON.parse(readFileSync(new URL("../../schemas/vectors/messages.json", import.meta.url), "utf8")) as Vector[];
const bin = new URL("../bin/esp-fleet.mjs", import.meta.url).pathname;

describe("esp-fleet decode", () => {
  it("decodes one mosquitto_sub '%t %x' line per message kind (bytes from an independent encoder)", () => {
    for (const v of vectors.filter((x) => x.json)) {
      const out = decodeLine(`${v.topic} ${v.hex}`);
      expect(out?.error, v.name).toBeUndefined();
      expect(out?.payload, v.name).toMatchObject(v.json!);
    }
  });

  it("reports arbitrary valid CBOR on a foreign topic as cbor", () => {
    const out = decodeLine("some/other/topic a2616101616282f5f6");
    expect(out).toMatchObject({ schema: "cbor", payload: { a: 1, b: [true, null] } });
    expect(out?.error).toMatch(/^topic:/);
  });

  it("passes the broker's JSON mirror through as JSON", () => {
    const hex = Buffer.from(JSON.stringify({ v: 1, state: "online" })).toString("hex");
    expect(decodeLine(`json/LL/fridge/F1/status ${hex}`)).toMatchObject({
      schema: "json-mirror",
      payload: { v: 1, state: "online" },
    });
  });

  it("runs as a process: every line is printed, bad ones with an error naming the problem, and it keeps going", () => {
    const good = vectors.find((v) => v.name === "fridge reading")!;
    const badField = vectors.find((v) => v.name === "bad: tof.dist has 63 values")!;
    const corrupted = good.hex.slice(0, -10);
    const input = [
      `${good.topic} ${good.hex}`,
      `${good.topic} ${corrupted}`,
      "garbage-without-payload",
      `${badField.topic} ${badField.hex}`,
      `${good.topic} zz`,
      `${good.topic} ${good.hex}`,
      "",
    ].join("\n");
    const r = spawnSync(process.execPath, [bin, "decode"], { input, encoding: "utf8", timeout: 20_000 });
    expect(r.status).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { error?: string; payload?: { dev?: string } });
    expect(lines).toHaveLength(6);
    expect(lines[0]?.payload?.dev).toBe("FRIDGE_LL_01");
    expect(lines[1]?.error).toMatch(/^cbor: invalid CBOR/);
    expect(lines[2]?.error).toMatch(/expected '<topic> <hex payload>'/);
    expect(lines[3]?.error).toMatch(/tof\.dist: expected 64 uint16 values, got 63/);
    expect(lines[4]?.error).toMatch(/not an even-length hex string/);
    expect(lines[5]?.payload?.dev).toBe("FRIDGE_LL_01");
  });

  it("--strict exits 1 when a line failed", () => {
    const r = spawnSync(process.execPath, [bin, "decode", "--strict"], {
      input: "a/b c0ffee\n",
      encoding: "utf8",
      timeout: 20_000,
    });
    expect(r.status).toBe(1);
  });
});
