import { describe, expect, it } from "vitest";
import { loadEmulatorConfig } from "../src/config.ts";
import { tuneHeapGrowth } from "../src/heap.ts";

describe("tuneHeapGrowth (EMULATOR_HEAP_GROWTH_PERCENT)", () => {
  it("sets V8's heap growth unless it is 0 or node was given the flag; the config bounds the value", () => {
    expect(tuneHeapGrowth(0)).toBe(false); // V8's own choice
    const explicit = process.execArgv.some((a) => a.startsWith("--heap-growing-percent"));
    expect(tuneHeapGrowth(100)).toBe(!explicit);
    expect(loadEmulatorConfig({}).EMULATOR_HEAP_GROWTH_PERCENT).toBe(100);
    expect(() => loadEmulatorConfig({ EMULATOR_HEAP_GROWTH_PERCENT: "-5" })).toThrow(/EMULATOR_HEAP_GROWTH_PERCENT/);
    expect(() => loadEmulatorConfig({ EMULATOR_HEAP_GROWTH_PERCENT: "lots" })).toThrow(/EMULATOR_HEAP_GROWTH_PERCENT/);
  });
});
