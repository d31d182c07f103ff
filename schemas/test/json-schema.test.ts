import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { WIRE_SCHEMAS, toWireJsonSchema } from "../src/json-schema.ts";

describe("generated JSON Schema", () => {
  it.each(Object.keys(WIRE_SCHEMAS))("schemas/json-schema/%s.json is up to date (run npm run schemas:generate)", (name) => {
    const committed = JSON.parse(readFileSync(new URL(`../json-schema/${name}.json`, import.meta.url), "utf8"));
    expect(committed).toEqual(toWireJsonSchema(name, WIRE_SCHEMAS[name]!));
  });

  it("describes typed arrays as integer arrays of the right length", () => {
    const s = toWireJsonSchema("telemetry-sqal", WIRE_SCHEMAS["telemetry-sqal"]!) as {
      properties: { tof: { properties: { dist: { type: string; items: { maximum: number } } } } };
    };
    expect(s.properties.tof.properties.dist.type).toBe("array");
    expect(s.properties.tof.properties.dist.items.maximum).toBe(65535);
  });
});
