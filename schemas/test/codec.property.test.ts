import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  decodeCbor,
  decodeMessage,
  encodeCbor,
  toJsonValue,
  FAULT_IDS,
  type FridgeReading,
  type SqalSample,
  type SqalSampleInput,
} from "../src/index.ts";

const envelope = (dev: fc.Arbitrary<string>) =>
  fc.record({
    v: fc.constant(1 as const),
    dev,
    boot: fc.nat({ max: 2 ** 32 - 1 }),
    seq: fc.nat({ max: 2 ** 40 }),
    ts: fc.integer({ min: 0, max: 4_102_444_800_000 }),
  });
const id = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
// Half of the uint16 frames fit in a byte per value, so they travel narrowed to tag 64.
const u16s = fc
  .oneof(fc.constant(65535), fc.constant(255))
  .chain((max) => fc.array(fc.integer({ min: 0, max }), { minLength: 64, maxLength: 64 }))
  .map((a) => new Uint16Array(a));
const u8s = fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 64, maxLength: 64 }).map((a) => new Uint8Array(a));
const u16 = fc.integer({ min: 0, max: 65535 });
const real = fc.double({ min: -1000, max: 1000, noNaN: true, noDefaultInfinity: true });

const sqalSample: fc.Arbitrary<SqalSampleInput> = fc
  .tuple(
    envelope(id),
    fc.record({
      sample: id,
      tof: fc.record({ dist: u16s, status: u8s, refl: u8s, amp: u16s, h: u16 }),
      spec: fc.record({
        f1: u16,
        f2: u16,
        f3: u16,
        f4: u16,
        f5: u16,
        f6: u16,
        f7: u16,
        f8: u16,
        clear: u16,
        nir: u16,
        gain: fc.integer({ min: 0, max: 10 }),
        atime: fc.integer({ min: 0, max: 255 }),
        astep: fc.integer({ min: 0, max: 65534 }),
      }),
    }),
  )
  .map(([e, body]) => ({ ...e, ...body }));

const fridgeReading: fc.Arbitrary<FridgeReading> = fc
  .tuple(
    envelope(id),
    fc.record({
      t: real,
      p_lo: real,
      p_hi: real,
      i_comp: real,
      v_sup: real,
      vib: real,
      rh: real,
      flow: real,
      door: fc.boolean(),
      comp: fc.boolean(),
      defrost: fc.boolean(),
      sim: fc.record({ fault: fc.option(fc.constantFrom(...FAULT_IDS), { nil: null }) }),
    }),
  )
  .map(([e, body]) => ({ ...e, ...body }));

describe("CBOR codec properties", () => {
  it("round-trips every valid SQAL sample exactly", () => {
    fc.assert(
      fc.property(sqalSample, (sample) => {
        const r = decodeMessage(`LL/sqal/${sample.dev}/telemetry`, encodeCbor(sample));
        if (!r.ok) throw new Error(r.error.error);
        expect(toJsonValue(r.value.message)).toEqual(toJsonValue(sample));
        const tof = (r.value.message as SqalSample).tof;
        expect([tof.dist, tof.amp].map((a) => a.constructor)).toEqual([Uint16Array, Uint16Array]);
      }),
      { numRuns: 200 },
    );
  });

  it("round-trips every valid fridge reading (floats to their shortest exact decimal)", () => {
    fc.assert(
      fc.property(fridgeReading, (reading) => {
        const r = decodeMessage(`LL/fridge/${reading.dev}/telemetry`, encodeCbor(reading));
        if (!r.ok) throw new Error(r.error.error);
        const back = r.value.message as FridgeReading;
        for (const k of ["t", "p_lo", "p_hi", "i_comp", "v_sup", "vib", "rh", "flow"] as const) {
          // float32 is used only when it reproduces the value's decimal digits; otherwise float64 (exact).
          expect(Math.abs(back[k] - reading[k])).toBeLessThanOrEqual(Math.abs(reading[k]) * 1e-6 + 1e-9);
        }
        expect({ ...back, t: 0, p_lo: 0, p_hi: 0, i_comp: 0, v_sup: 0, vib: 0, rh: 0, flow: 0 }).toEqual({
          ...reading,
          t: 0,
          p_lo: 0,
          p_hi: 0,
          i_comp: 0,
          v_sup: 0,
          vib: 0,
          rh: 0,
          flow: 0,
        });
      }),
      { numRuns: 300 },
    );
  });

  it("never throws on random bytes", () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 600 }),
        fc.constantFrom("LL/sqal/D1/telemetry", "LL/fridge/D1/status", "LL/sqal/D1/log", "svc/x/y", "x/y"),
        (bytes, topic) => {
          const r = decodeMessage(topic, bytes);
          expect(typeof r.ok).toBe("boolean");
          decodeCbor(bytes);
        },
      ),
      { numRuns: 2000 },
    );
  });

  it("never throws on mutated valid messages, and never accepts a sample whose bytes were truncated", () => {
    fc.assert(
      fc.property(
        sqalSample,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 8 }),
        fc.nat(),
        (sample, flips, cut) => {
          const bytes = Buffer.from(encodeCbor(sample));
          const mutated = Buffer.from(bytes);
          for (const [pos, value] of flips) mutated[pos % mutated.length] = value;
          const r = decodeMessage(`LL/sqal/${sample.dev}/telemetry`, mutated);
          expect(typeof r.ok).toBe("boolean");
          const truncated = bytes.subarray(0, cut % bytes.length);
          expect(decodeMessage(`LL/sqal/${sample.dev}/telemetry`, truncated).ok).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
  });
});
