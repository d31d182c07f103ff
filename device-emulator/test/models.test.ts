import { describe, expect, it } from "vitest";
import { createRng } from "@esp-fleet/common/random";
import { encodeCbor, FAULT_IDS, LOT_CODE_RE, QUALITY_TIERS, type FaultId } from "@esp-fleet/schemas";
import { FridgeModel } from "../src/models/fridge.ts";
import { FeedingLot, lotCode, lotNumber, nextFeedingAt } from "../src/models/feeding.ts";
import { drawTier, gainFactor, integrationMs, measureSample } from "../src/models/sqal.ts";
import { FEEDING_PROFILE, FRIDGE_PROFILE, SQAL_PROFILE, type FridgeField } from "../src/profiles.ts";
import { deviceRig } from "./helpers.ts";

const NORMAL_BAND: Record<FridgeField, [number, number]> = {
  t: [-5, 20],
  p_lo: [1.3, 4.0],
  p_hi: [8, 16],
  i_comp: [0, 24],
  v_sup: [330, 430],
  vib: [0, 1.2],
  rh: [40, 95],
  flow: [55, 145],
};

describe("fridge: each of the 12 fault signatures is recognisable in the published readings", () => {
  it.each(FAULT_IDS.map((f) => [f]))("%s", (fault: FaultId) => {
    const { clock, transport, device, take } = deviceRig("fridge", {
      seed: `fault-${fault}`,
      mode: "accept",
      options: { faultProb: 0, intervalMs: 1000, wifiJoinMs: [10, 10], i2cErrorProb: 0 },
    });
    device.start();
    clock.advance(5000);
    transport.take();
    transport.command("fault", encodeCbor({ id: "f1", action: "inject", fault, cycles: 12 }));
    clock.advance(14_000);
    const out = take();
    expect(out.find((w) => w.topic.endsWith("/cmd/fault/res"))?.msg).toMatchObject({
      id: "f1",
      ok: true,
      data: { fault, readings: 12 },
    });
    expect(out.find((w) => w.msg.type === "sim_fault_onset")?.msg).toMatchObject({ fault, sev: "warning" });
    expect(out.find((w) => w.msg.type === "sim_fault_cleared")?.msg).toMatchObject({ fault });
    const readings = out
      .filter((w) => w.schema === "telemetry/fridge")
      .map((w) => w.msg as Record<string, number | boolean | { fault: string | null }>);
    const faulty = readings.filter((r) => (r.sim as { fault: string | null }).fault === fault);
    expect(faulty).toHaveLength(12);
    expect(readings.length).toBeGreaterThan(faulty.length); // and the fault clears
    const sig = FRIDGE_PROFILE.faults[fault];
    // After the onset drift, every listed field sits in its range; fixed values are exact.
    for (const r of faulty.slice(sig.onsetReadings)) {
      for (const [field, range] of Object.entries(sig.fields) as [FridgeField, [number, number]][]) {
        expect(r[field], `${field}`).toBeGreaterThanOrEqual(range[0] - 0.01);
        expect(r[field], `${field}`).toBeLessThanOrEqual(range[1] + 0.01);
      }
      for (const [field, value] of Object.entries(sig.fixed ?? {})) expect(r[field]).toBe(value);
      // Fields the signature does not list stay in their normal band.
      for (const field of Object.keys(NORMAL_BAND) as FridgeField[]) {
        if (field in sig.fields || field in (sig.fixed ?? {})) continue;
        const [lo, hi] = NORMAL_BAND[field];
        expect(r[field], `${field} should stay normal`).toBeGreaterThanOrEqual(lo);
        expect(r[field], `${field} should stay normal`).toBeLessThanOrEqual(hi);
      }
    }
    // Drifting faults fade in: the first reading is not yet fully in range for at least one field.
    if (sig.onsetReadings >= 2) {
      const first = faulty[0]!;
      const outside = Object.entries(sig.fields).some(([f, range]) => {
        const v = first[f] as number;
        return v < range[0] || v > range[1];
      });
      expect(outside).toBe(true);
    }
    if (fault === "capteur_defectueux")
      expect(out.some((w) => w.msg.type === "alarm" && (w.msg.data as { field: string }).field === "t")).toBe(true);
  });

  it("random faults start with the configured probability and last 3-8 readings", () => {
    const rng = createRng(7);
    const m = new FridgeModel(FRIDGE_PROFILE, rng);
    let onsets = 0;
    let faultyReadings = 0;
    let prev: FaultId | null = null;
    for (let i = 0; i < 5000; i++) {
      m.read(rng, 60, 0.1);
      if (m.lastReadingFault) faultyReadings++;
      if (m.lastReadingFault && m.lastReadingFault !== prev) onsets++;
      prev = m.lastReadingFault;
    }
    expect(onsets).toBeGreaterThan(300);
    expect(faultyReadings / onsets).toBeGreaterThan(3);
    expect(faultyReadings / onsets).toBeLessThan(8);
  });

  it("random faults' ground truth is only in the readings' sim.fault; an injected fault is also announced", () => {
    const { clock, transport, device, take } = deviceRig("fridge", {
      seed: "random-faults",
      mode: "accept",
      options: { faultProb: 0.2, intervalMs: 1000, wifiJoinMs: [10, 10], i2cErrorProb: 0 },
    });
    device.start();
    clock.advance(120_000);
    const random = take();
    const truth = random.filter((w) => w.schema === "telemetry/fridge").map((w) => (w.msg.sim as { fault: string | null }).fault);
    expect(new Set(truth.filter(Boolean)).size).toBeGreaterThan(3); // several random faults came and went …
    expect(random.filter((w) => String(w.msg.type).startsWith("sim_fault"))).toEqual([]); // … unannounced
    transport.command("fault", encodeCbor({ id: "f1", action: "inject", fault: "givrage_evaporateur", cycles: 5 }));
    clock.advance(10_000);
    const injected = take().filter((w) => String(w.msg.type).startsWith("sim_fault"));
    expect(injected.map((w) => [w.msg.type, w.msg.fault])).toEqual([
      ["sim_fault_onset", "givrage_evaporateur"],
      ["sim_fault_cleared", "givrage_evaporateur"],
    ]);
    void device.stop();
  });

  it("healthy physics: duty cycle, defrost, door openings, mean near the domain's normal", () => {
    const rng = createRng(3);
    const m = new FridgeModel(FRIDGE_PROFILE, rng);
    let comp = 0;
    let defrost = 0;
    let door = 0;
    let sumT = 0;
    const n = 4 * 24 * 60; // four days of 1-minute readings
    for (let i = 0; i < n; i++) {
      const v = m.read(rng, 60, 0);
      comp += v.comp ? 1 : 0;
      defrost += v.defrost ? 1 : 0;
      door += v.door ? 1 : 0;
      sumT += v.t;
    }
    expect(comp / n).toBeGreaterThan(0.4);
    expect(comp / n).toBeLessThan(0.95);
    expect(defrost).toBeGreaterThan(0);
    expect(door).toBeGreaterThan(0);
    expect(sumT / n).toBeGreaterThan(3);
    expect(sumT / n).toBeLessThan(8);
  });
});

describe("SQAL station models", () => {
  it("ToF frames follow the product geometry; quality tiers order heights and spectral ratios", () => {
    const rng = createRng(11);
    const meanOf = (tier: (typeof QUALITY_TIERS)[number]) => {
      let minDist = 0;
      let ratio = 0;
      const n = 200;
      for (let i = 0; i < n; i++) {
        const m = measureSample(rng, SQAL_PROFILE, tier);
        expect(m.tof.dist).toHaveLength(64);
        minDist += Math.min(...m.tof.dist);
        ratio += m.spec.f1 / m.spec.f7;
        // the tray floor around the product reads ~ sensor height
        expect(Math.max(...m.tof.dist)).toBeGreaterThan(95);
        for (const a of m.tof.amp) expect(a).toBeLessThanOrEqual(4095);
      }
      return { minDist: minDist / n, ratio: ratio / n };
    };
    const premium = meanOf("premium");
    const acceptable = meanOf("acceptable");
    const defective = meanOf("defective");
    expect(premium.minDist).toBeLessThan(acceptable.minDist);
    expect(acceptable.minDist).toBeLessThan(defective.minDist);
    expect(premium.ratio).toBeGreaterThan(0.25);
    expect(premium.ratio).toBeLessThan(0.45); // F1/F7 optimal band
    expect(defective.ratio).toBeGreaterThan(0.55); // outside the acceptable band
  });

  it("AS7341 counts scale with gain and integration time and saturate at 65535", () => {
    expect(gainFactor(0)).toBe(0.5);
    expect(gainFactor(3)).toBe(4);
    expect(gainFactor(10)).toBe(512);
    expect(integrationMs(35, 999)).toBeCloseTo(100.08, 1);
    const rng = createRng(5);
    const ref = measureSample(rng, SQAL_PROFILE, "premium").spec;
    expect(ref.clear).toBeGreaterThan(5000);
    expect(ref.clear).toBeLessThan(9000);
    const high = measureSample(rng, SQAL_PROFILE, "premium", { gain: 10 }).spec;
    expect(high.clear).toBe(65535);
    expect(high.f4).toBe(65535);
  });

  it("the inspection profile shifts the tier mix", () => {
    const rng = createRng(9);
    const count = (profile: "premium" | "standard" | "low") => {
      const c: Record<string, number> = {};
      for (let i = 0; i < 2000; i++) {
        const t = drawTier(rng, SQAL_PROFILE.inspectionMix[profile]);
        c[t] = (c[t] ?? 0) + 1;
      }
      return c;
    };
    expect(count("premium").defective ?? 0).toBe(0);
    expect(count("low").defective ?? 0).toBeGreaterThan(300);
    expect(count("standard").good ?? 0).toBeGreaterThan(700);
  });
});

describe("feeding lots", () => {
  it("code_lot = SITE + YYMM + NNN; station lots interleave per site", () => {
    const at = Date.UTC(2025, 11, 3, 6);
    expect(lotCode("LL", at, 1)).toBe("LL2512001");
    expect(lotCode("MT", at, lotNumber(2, 3, 1))).toBe("MT2512005");
    expect(LOT_CODE_RE.test(lotCode("LS", at, 999))).toBe(true);
  });

  it("two feedings a day from day −1, doses rising, ready on the last evening", () => {
    const rng = createRng(21);
    const lot = new FeedingLot(FEEDING_PROFILE, rng, "LL", "LL2512001");
    let t = nextFeedingAt(FEEDING_PROFILE, Date.UTC(2025, 11, 3, 0));
    const records = [];
    for (let i = 0; i < 40 && !lot.finished; i++) {
      const h = new Date(t).getUTCHours();
      records.push(lot.feed(rng, h < 12 ? "morning" : "evening"));
      t = nextFeedingAt(FEEDING_PROFILE, t);
    }
    expect(records[0]).toMatchObject({ day: -1, moment: "morning", ready: false });
    expect(records.filter((r) => r.ready)).toHaveLength(1);
    const last = records.at(-1)!;
    expect(last).toMatchObject({ moment: "evening", ready: true, day: lot.days - 1, days: lot.days });
    expect(records.length).toBe(2 * (lot.days + 1));
    expect(last.dose_th).toBeGreaterThan(records[2]!.dose_th);
    expect(last.weight).toBeGreaterThan(records[0]!.weight + 1500);
    expect(last.alive).toBeLessThanOrEqual(last.initial);
    expect(["premium", "standard", "low"]).toContain(lot.inspectionProfile);
  });

  it("a feeding station publishes valid feeding records at simulated 06:00 and 18:00", () => {
    const { clock, device, take } = deviceRig("gavage", {
      site: "LS",
      dev: "GAVAGE_LS_01",
      seed: 1,
      mode: "accept",
      startMs: Date.UTC(2026, 0, 1, 5, 0),
      options: { wifiJoinMs: [10, 10], heartbeatMs: 3_600_000 },
    });
    device.start();
    clock.advance(20 * 86_400_000);
    const out = take();
    const feedings = out.filter((w) => w.schema === "telemetry/gavage").map((w) => w.msg);
    expect(feedings[0]).toMatchObject({ lot: "LS2601001", day: -1, moment: "morning", site: "LS" });
    expect(new Date(feedings[0]!.ts as number).getUTCHours()).toBe(6);
    expect(new Date(feedings[1]!.ts as number).getUTCHours()).toBe(18);
    const ready = out.find((w) => w.msg.type === "lot_ready");
    expect(ready?.msg).toMatchObject({ data: { lot: "LS2601001" } });
    // after the first lot, the next one starts with the next code
    expect(feedings.some((f) => f.lot === "LS2601002")).toBe(true);
  });
});
