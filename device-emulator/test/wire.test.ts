import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { decodeCbor, encodeCbor, FAULT_IDS, SCHEMA_VERSION } from "@esp-fleet/schemas";
import { encodeFridgeTelemetry, fridgeTelemetryHead } from "../src/wire.ts";

// Reading values the way the fridge model makes them (two decimals, one for v_sup/rh/flow) and the edges
// the encoder distinguishes: integers, negatives, float32-exact and float64-only values, 2^32 and beyond.
const reading = fc.oneof(
  fc.integer({ min: -100_000, max: 100_000 }).map((x) => x / 100),
  fc.integer({ min: -10_000, max: 10_000 }).map((x) => x / 10),
  fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
  fc.double({ noNaN: true, noDefaultInfinity: true, min: -1e12, max: 1e12 }),
);
const values = fc.record({
  t: reading,
  t_evap: reading,
  p_lo: reading,
  p_hi: reading,
  i_comp: reading,
  v_sup: reading,
  vib: reading,
  rh: reading,
  flow: reading,
  door: fc.boolean(),
  comp: fc.boolean(),
  defrost: fc.boolean(),
});

describe("encodeFridgeTelemetry", () => {
  it("writes exactly the bytes encodeCbor writes for the same message", () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 40 }),
        fc.nat(),
        fc.oneof(fc.nat(), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER })),
        fc.integer({ min: 0, max: 2 ** 45 }),
        values,
        fc.constantFrom(null, ...FAULT_IDS),
        (dev, boot, seq, ts, v, fault) => {
          const expected = encodeCbor({ v: SCHEMA_VERSION, dev, boot, seq, ts, ...v, sim: { fault } });
          expect(encodeFridgeTelemetry(fridgeTelemetryHead(dev, boot), seq, ts, v, fault).toString("hex")).toBe(expected.toString("hex"));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("returns bytes of its own, which decode to the fields it was given", () => {
    const v = { t: 3.25, t_evap: -21.5, p_lo: 1.8, p_hi: 12.4, i_comp: 4.1, v_sup: 230.2, vib: 0.42, rh: 61.5, flow: 0.9, door: true, comp: false, defrost: true };
    const head = fridgeTelemetryHead("ESP32_FR_01", 3);
    const a = encodeFridgeTelemetry(head, 7, 1_767_225_600_123, v, "fuite_fluide");
    const copy = Buffer.from(a);
    encodeFridgeTelemetry(fridgeTelemetryHead("ESP32_FR_02", 4), 8, 1, { ...v, t: 99 }, null);
    expect(encodeFridgeTelemetry(head, 7, 1_767_225_600_123, v, "fuite_fluide").equals(copy)).toBe(true);
    expect(a.equals(copy)).toBe(true);
    const decoded = decodeCbor(a);
    expect(decoded).toEqual({ ok: true, value: { v: SCHEMA_VERSION, dev: "ESP32_FR_01", boot: 3, seq: 7, ts: 1_767_225_600_123, ...v, sim: { fault: "fuite_fluide" } } });
  });
});
