import { describe, expect, it } from "vitest";
import { exposedGc, oldGenerationBytes } from "@esp-fleet/common/testing";
import { FridgeModel } from "../src/models/fridge.ts";
import { DEFAULT_PROFILES } from "../src/firmware.ts";
import { SeededRng } from "../src/rng.ts";
import { Unacked } from "../src/transports/unacked.ts";

/**
 * What a device keeps from one reading to the next, a second later, survives the young generation's
 * collections in between and is promoted; rewritten every second, it is garbage in the old generation, and a
 * fleet's old generation then grows until a full collection, whose marking takes a third of a core for a
 * second (docs/benchmarks.md, "End to end, sixteenth session"). Each case runs many devices' worth of
 * per-second work with two young-generation collections between "seconds" (so that anything kept from one
 * second to the next is promoted) and measures how much the old generation grew.
 */
describe("what the fleet keeps per device per second, and the garbage collector", () => {
  const gc = exposedGc();
  const N = 20_000;
  const promotedPerDeviceSecond = (second: () => void): number => {
    for (let i = 0; i < 30; i++) second(); // (optimized code from here on)
    gc();
    const before = oldGenerationBytes();
    const seconds = 20;
    for (let i = 0; i < seconds; i++) {
      second();
      gc({ type: "minor" });
      gc({ type: "minor" });
    }
    return (oldGenerationBytes() - before) / (seconds * N);
  };

  it("a session's in-flight table: one QoS 1 message sent and acknowledged per second promotes nothing", () => {
    // A Map here promoted ~150 B per device per second: its table, reallocated as it empties, lived until
    // the next publish.
    const sessions = Array.from({ length: N }, () => new Unacked());
    const frame = Buffer.alloc(60);
    let id = 0;
    const perDevice = promotedPerDeviceSecond(() => {
      id = id === 65_535 ? 1 : id + 1;
      for (const s of sessions) {
        s.push(id, frame);
        s.remove(id);
      }
    });
    expect(perDevice).toBeLessThan(4);
  });

  it("a fridge model and its generator: one reading per second promotes nothing", () => {
    // Before: ~40 B per reading — the generator's unsigned state (a heap number for half the values) and the
    // model's `t` and `sinceDefrostS` (declared without an initializer, so V8 kept them as tagged fields,
    // a new heap number per write).
    const fridges = Array.from({ length: N }, (_, i) => ({
      model: new FridgeModel(DEFAULT_PROFILES.fridge, new SeededRng(i)),
      rng: new SeededRng(`fridge:${i}`),
    }));
    let sum = 0;
    const perDevice = promotedPerDeviceSecond(() => {
      for (const f of fridges) sum += f.model.read(f.rng, 1, 0.1).t;
    });
    expect(Number.isFinite(sum)).toBe(true);
    expect(perDevice).toBeLessThan(4);
  });
});
