import { describe, expect, it } from "vitest";
import { createRng } from "@esp-fleet/common/random";
import { FAULT_IDS, type FaultId, NOMINAL_FRIDGE } from "@esp-fleet/schemas";
import {
  DIAGNOSIS_PROFILE,
  DiagnosisScorer,
  FridgeDiagnoser,
  classifyReading,
  confusionMarkdown,
  type FridgeObservation,
} from "../src/diagnosis/index.ts";
import { runSeededDiagnosis } from "../src/diagnosis/simulate.ts";

/** The domain table, verbatim (shared/domain/README.md): fields not listed stay normal. */
const TABLE: Record<FaultId, Partial<Record<keyof FridgeObservation, [number, number] | boolean>>> = {
  surchauffe_compresseur: { t: [20, 40], i_comp: [25, 35], vib: [3, 8] },
  fuite_fluide: { p_lo: [0.3, 1.0], t: [15, 25], i_comp: [8, 12] },
  givrage_evaporateur: { t: [-10, 0], rh: [85, 95], flow: [30, 60] },
  panne_electrique: { v_sup: [100, 200], i_comp: [0, 0], comp: false },
  obstruction_conduit: { flow: [10, 30], p_lo: [1.0, 2.0] },
  defaillance_ventilateur: { flow: [5, 20], rh: [80, 95] },
  capteur_defectueux: { t: [-999, -999], i_comp: [10, 20] },
  pression_anormale_HP: { p_hi: [25, 35], i_comp: [20, 28] },
  pression_anormale_BP: { p_lo: [4.0, 6.0], t: [10, 18] },
  defaut_degivrage: { t: [-15, -5], flow: [20, 50] },
  defaillance_thermostat: { t: [25, 35], i_comp: [18, 25] },
  defaillance_compresseur: { i_comp: [0, 0], vib: [2, 6] },
};

/** The predecessor's generator: mean + Gaussian noise, signature fields uniform in their range. */
function predecessorReading(rng: ReturnType<typeof createRng>, fault: FaultId | null): FridgeObservation {
  const o: FridgeObservation = {
    t: rng.normal(5, 2),
    p_lo: rng.normal(2.5, 0.3),
    p_hi: rng.normal(12, 1),
    i_comp: rng.normal(15, 2),
    v_sup: rng.normal(380, 10),
    vib: rng.normal(0.5, 0.1),
    rh: rng.normal(65, 5),
    flow: rng.normal(100, 10),
    door: false,
    comp: true,
    defrost: false,
  };
  if (fault) {
    const sig = TABLE[fault];
    for (const [k, v] of Object.entries(sig)) {
      if (k === "comp") o.comp = v as boolean;
      else {
        const [lo, hi] = v as [number, number];
        (o as unknown as Record<string, number>)[k] = rng.uniform(lo, hi);
      }
    }
  }
  return o;
}

describe("classifyReading", () => {
  it.each(FAULT_IDS.map((f) => [f]))("recognises %s from its signature in the domain table", (fault) => {
    const rng = createRng(fault);
    let hits = 0;
    for (let i = 0; i < 200; i++) if (classifyReading(predecessorReading(rng, fault)).label === fault) hits++;
    expect(hits / 200).toBeGreaterThanOrEqual(0.97);
  });

  it("reads healthy readings as normal", () => {
    const rng = createRng(1);
    let normal = 0;
    for (let i = 0; i < 2000; i++) if (classifyReading(predecessorReading(rng, null)).label === "normal") normal++;
    expect(normal / 2000).toBeGreaterThanOrEqual(0.99);
  });

  it("the −999 probe sentinel is decisive on one reading", () => {
    const r = classifyReading({ ...predecessorReading(createRng(2), null), t: -999 });
    expect(r).toMatchObject({ label: "capteur_defectueux", confidence: 1, decisive: true });
  });

  it("a stopped compressor (thermostat off cycle) is not a compressor failure or a power cut", () => {
    const o = { ...predecessorReading(createRng(3), null), comp: false, i_comp: 0.2, vib: 0.1, p_lo: 3.0, p_hi: 10.6 };
    expect(classifyReading(o).label).toBe("normal");
  });

  it("follows a drift: the first third of the way already points at the fault", () => {
    const base = { ...NOMINAL_FRIDGE };
    const target = { ...base, t: 30, i_comp: 30, vib: 5.5 };
    const at = (w: number) =>
      Object.fromEntries(
        Object.entries(base).map(([k, v]) => [
          k,
          typeof v === "number" ? v + (((target as Record<string, number | boolean>)[k] as number) - v) * w : v,
        ]),
      ) as unknown as FridgeObservation;
    expect(classifyReading(at(1 / 3)).label).toBe("surchauffe_compresseur");
    expect(classifyReading(at(1)).decisive).toBe(true);
  });
});

describe("FridgeDiagnoser (hysteresis)", () => {
  const healthy: FridgeObservation = { ...NOMINAL_FRIDGE };
  it("raises on a decisive reading, clears on a normal one, and reports each transition once", () => {
    const d = new FridgeDiagnoser();
    expect(d.observe(healthy).event).toBeUndefined();
    const raised = d.observe({ ...healthy, p_hi: 30, i_comp: 24 });
    expect(raised.event).toMatchObject({ type: "raised", fault: "pression_anormale_HP" });
    expect(raised.event!.confidence).toBeGreaterThan(0.8);
    expect(d.observe({ ...healthy, p_hi: 31, i_comp: 25 }).event).toBeUndefined();
    expect(d.observe(healthy).event).toMatchObject({ type: "cleared", fault: "pression_anormale_HP" });
  });

  it("needs two agreeing readings when one is not decisive", () => {
    const d = new FridgeDiagnoser();
    const weak = { ...healthy, flow: 58, p_lo: 1.9 }; // half way to an obstruction
    const first = d.observe(weak);
    expect(first.reading.label).toBe("obstruction_conduit");
    expect(first.state).toBe("normal");
    expect(d.observe(weak).event).toMatchObject({ type: "raised", fault: "obstruction_conduit" });
  });

  it("switches from one fault to another", () => {
    const d = new FridgeDiagnoser();
    d.observe({ ...healthy, v_sup: 150, i_comp: 0, comp: false, vib: 0.1 });
    expect(d.state).toBe("panne_electrique");
    expect(d.observe({ ...healthy, t: -999 }).event).toMatchObject({
      type: "changed",
      fault: "capteur_defectueux",
      previous: "panne_electrique",
    });
  });

  it("does not alarm while the cabinet recovers from a defrost", () => {
    const d = new FridgeDiagnoser();
    d.observe({ ...healthy, defrost: true, comp: false, t: 18, i_comp: 0.2, vib: 0.1, p_lo: 3, p_hi: 10.5, rh: 72, flow: 80 });
    for (const t of [19, 16, 13, 10, 8, 6]) expect(d.observe({ ...healthy, t }).state).toBe("normal");
  });
});

describe("scoring against ground truth", () => {
  it("counts episodes identified within 3 readings and false alarms", () => {
    const s = new DiagnosisScorer(3);
    s.record("a", null, "normal");
    s.record("a", "fuite_fluide", "normal");
    s.record("a", "fuite_fluide", "normal");
    s.record("a", "fuite_fluide", "fuite_fluide"); // 3rd reading: in time
    s.record("a", null, "fuite_fluide"); // false alarm
    s.record("b", "panne_electrique", "normal");
    s.record("b", "panne_electrique", "normal");
    s.record("b", "panne_electrique", "normal");
    s.record("b", "panne_electrique", "panne_electrique"); // 4th: too late
    const r = s.report();
    expect(r).toMatchObject({ episodes: 2, identified: 1, normalReadings: 2, falseAlarms: 1, readings: 9 });
    expect(r.matrix[0]![0]).toBe(1);
    expect(confusionMarkdown(r)).toContain("| 2 fuite_fluide | 2 | 0 | 1 |");
  });

  it("meets the targets on a seeded run of the emulator's fridge model (≥ 95 % within 3 readings, ≤ 1 % false alarms)", () => {
    const r = runSeededDiagnosis({ seed: 7, fridges: 24, readings: 300, intervalS: 60, faultProb: 0.1 });
    for (const f of FAULT_IDS) expect(r.perFault[f].episodes).toBeGreaterThan(10);
    expect(r.identifiedRate).toBeGreaterThanOrEqual(0.95);
    expect(r.falseAlarmRate).toBeLessThanOrEqual(0.01);
  });

  it("is configurable through the profile (e.g. three readings to raise)", () => {
    const d = new FridgeDiagnoser({ ...DIAGNOSIS_PROFILE, raiseAfter: 3, instantMatch: 2 });
    const hp = { ...NOMINAL_FRIDGE, p_hi: 30, i_comp: 24 };
    expect(d.observe(hp).state).toBe("normal");
    expect(d.observe(hp).state).toBe("normal");
    expect(d.observe(hp).state).toBe("pression_anormale_HP");
  });
});
