import { describe, expect, it } from "vitest";
import { AS7341_REFERENCE_COUNTS } from "@esp-fleet/schemas";
import fc from "fast-check";
import { createRng } from "@esp-fleet/common/random";
import type { Grade, Spectral, TofFrame } from "@esp-fleet/schemas";
import {
  DEFAULT_THRESHOLDS,
  alertsFor,
  bandScore,
  capability,
  CapabilityWindow,
  decideLot,
  fuse,
  gradeFor,
  gradeSample,
  integrationMs,
  gainFactor,
  spectralFeatures,
  spectralScores,
  thicknessClassOf,
  tofFeatures,
  tofScores,
} from "../src/grading/index.ts";
import { synthSample } from "../src/testing/synth.ts";

const GRADE_ORDER: Record<Grade, number> = { REJECT: 0, C: 1, B: 2, A: 3, "A+": 4 };

/** A flat-topped block of product (height h mm) on zones [r0..r1]×[c0..c1], tray elsewhere. */
function blockFrame(h: number, r0 = 2, r1 = 5, c0 = 1, c1 = 6): TofFrame {
  const dist = new Uint16Array(64).fill(100);
  for (let r = r0; r <= r1; r++) for (let c = c0; c <= c1; c++) dist[r * 8 + c] = 100 - h;
  return {
    dist,
    status: new Uint8Array(64).fill(5),
    refl: new Uint8Array(64).fill(50),
    amp: new Uint16Array(64).fill(1500),
    h: 100,
  };
}

const REF_SPEC: Spectral = { ...AS7341_REFERENCE_COUNTS, gain: 3, atime: 29, astep: 1198 };

describe("grade bands (A+ ≥ 0.85, A ≥ 0.75, B ≥ 0.60, C ≥ 0.45, else REJECT)", () => {
  it.each([
    [1, "A+"],
    [0.85, "A+"],
    [0.8499999, "A"],
    [0.75, "A"],
    [0.7499999, "B"],
    [0.6, "B"],
    [0.5999999, "C"],
    [0.45, "C"],
    [0.4499999, "REJECT"],
    [0, "REJECT"],
  ] as const)("score %f → %s", (score, grade) => {
    expect(gradeFor(score)).toBe(grade);
  });

  it("fuses 0.6 × ToF + 0.4 × spectral", () => {
    expect(fuse(1, 0)).toBeCloseTo(0.6, 12);
    expect(fuse(0, 1)).toBeCloseTo(0.4, 12);
    // 0.6·0.75 + 0.4·1.0 = 0.85 exactly at the A+ edge
    expect(gradeFor(fuse(0.75, 1))).toBe("A+");
    expect(gradeFor(fuse(0.5, 0.75))).toBe("B"); // 0.3 + 0.3 = 0.60
    expect(gradeFor(fuse(0.5, 0.374))).toBe("REJECT"); // 0.3 + 0.1496 = 0.4496
  });
});

describe("spectral sub-scores and indices", () => {
  const band = DEFAULT_THRESHOLDS.spectral.ratios.violet_orange; // 0.25–0.45 / 0.20–0.55
  it.each([
    [0.35, 1],
    [0.25, 1],
    [0.45, 1],
    [0.225, 0.85], // halfway across the low acceptable margin: 0.7 + 0.3·0.5
    [0.2, 0.7],
    [0.5, 0.85],
    [0.55, 0.7],
    [0.19, 0.3],
    [0.56, 0.3],
  ])("F1/F7 = %f → %f", (v, s) => {
    expect(bandScore(v, band, 0.7, 0.3)).toBeCloseTo(s, 10);
  });

  it("the reference counts (gain ×4, 100 ms) are an ideal product: all ratios optimal, score 1", () => {
    const f = spectralFeatures(REF_SPEC);
    expect(f.anomalies).toEqual([]);
    expect(f.ratios.violet_orange).toBeCloseTo(400 / 1150, 10);
    expect(f.ratios.discoloration).toBeCloseTo(1.5, 10);
    expect(gainFactor(3)).toBe(4);
    expect(integrationMs(29, 1198)).toBeCloseTo(99.97, 1);
    expect(f.normalized.f4).toBeCloseTo(1900, -1);
    const s = spectralScores(f);
    expect(s).toMatchObject({ freshness: 1, fat: 1, colour: 1, oxidation: 0 });
    expect(s.score).toBeCloseTo(1, 12);
  });

  it("normalises counts by gain and integration time; ratios are unchanged", () => {
    const doubled = {
      ...REF_SPEC,
      gain: 4,
      ...Object.fromEntries(
        ["f1", "f2", "f3", "f4", "f5", "f6", "f7", "f8", "clear", "nir"].map((k) => [k, REF_SPEC[k as "f1"] * 2]),
      ),
    };
    const f = spectralFeatures(doubled);
    expect(f.normalized.f1).toBeCloseTo(spectralFeatures(REF_SPEC).normalized.f1, 6);
    expect(f.ratios).toEqual(spectralFeatures(REF_SPEC).ratios);
  });

  it("counts anomalies (saturation ≥ 65500, channel < 10, ratio out of band) at −0.10 each, at most −0.5", () => {
    const sat = spectralFeatures({ ...REF_SPEC, clear: 65535 });
    expect(sat.anomalies).toEqual([{ kind: "saturated", what: "clear", value: 65535 }]);
    expect(spectralScores(sat).score).toBeCloseTo(0.9, 10);
    // F1 at 5 counts: low signal, and F1/F7, NIR/F1, (F1+F2)/(F7+F8)… fall out of band
    const dark = spectralFeatures({ ...REF_SPEC, f1: 5 });
    expect(dark.anomalies.some((a) => a.kind === "low_signal" && a.what === "f1")).toBe(true);
    const s = spectralScores(dark);
    expect(s.anomalyPenalty).toBeLessThanOrEqual(0.5);
    expect(s.score).toBeGreaterThanOrEqual(0);
  });
});

describe("ToF features", () => {
  it("computes volume, heights, thickness class and liver weight on a hand-made block", () => {
    const f = tofFeatures(blockFrame(50)); // 4 × 6 = 24 zones at 50 mm
    expect(f.productZones).toBe(24);
    expect(f.volumeMm3).toBe(Math.round(24 * 50 * 843.75));
    expect(f.maxHeightMm).toBe(50);
    expect(f.meanHeightMm).toBe(50);
    expect(f.thicknessClass).toBe("extra");
    expect(f.liverWeightG).toBeCloseTo((24 * 50 * 843.75 * 0.947) / 1000, 1);
    expect(f.defects).toEqual([]);
    expect(f.roughnessMm).toBeCloseTo(0, 6);
    expect(f.surfaceUniformity).toBeCloseTo(1, 6);
  });

  it.each([
    [60, "extra"],
    [45, "extra"],
    [44.9, "first_choice"],
    [35, "first_choice"],
    [34.9, "second_choice"],
    [25, "second_choice"],
    [24.9, "out_of_norm"],
    [60.1, "out_of_norm"],
  ] as const)("thickness %f mm → %s", (mm, cls) => {
    expect(thicknessClassOf(mm, DEFAULT_THRESHOLDS.tof.thickness)).toBe(cls);
  });

  it("finds a foreign body (closer) and a deformation (farther) with position and severity", () => {
    const frame = blockFrame(50);
    frame.dist[3 * 8 + 3] = 30; // 20 mm closer than the 50 mm surface
    frame.dist[4 * 8 + 4] = 65; // 15 mm farther
    const f = tofFeatures(frame);
    const fb = f.defects.find((d) => d.type === "foreign_body");
    const de = f.defects.find((d) => d.type === "deformation");
    expect(fb).toMatchObject({ zone: 27, row: 3, col: 3 });
    expect(de).toMatchObject({ zone: 36, row: 4, col: 4 });
    // median product distance 50 → severity = |dev| / 25
    expect(fb!.severity).toBeCloseTo(Math.min(1, Math.abs(fb!.deviation) / 25), 1);
    expect(de!.severity).toBeGreaterThan(0.4);
  });

  it("flags an optical inconsistency (reflectance drop > 15 points)", () => {
    const frame = blockFrame(50);
    frame.refl[3 * 8 + 2] = 25;
    expect(tofFeatures(frame).defects).toEqual([expect.objectContaining({ type: "optical", zone: 26, severity: 0.5 })]);
  });

  it("does not flag the natural slope of a smooth ellipsoid lobe as defects", () => {
    const rng = createRng(7);
    for (let i = 0; i < 50; i++) {
      const s = synthSample(rng, { tier: "premium", defect: "none" });
      expect(tofFeatures(s.tof).defects).toEqual([]);
    }
  });

  it("ignores zones whose target status is not valid", () => {
    const frame = blockFrame(50);
    frame.status[3 * 8 + 3] = 255;
    frame.dist[3 * 8 + 3] = 0;
    const f = tofFeatures(frame);
    expect(f.validZones).toBe(63);
    expect(f.productZones).toBe(23);
    expect(f.maxHeightMm).toBe(50);
  });

  it("an empty tray scores 0", () => {
    const frame = blockFrame(0);
    const f = tofFeatures(frame);
    expect(f.productZones).toBe(0);
    expect(tofScores(f).score).toBe(0);
  });
});

describe("alerts", () => {
  it.each([
    [0.3, "C", [], "critical"],
    [0.5, "C", [], "warning"],
    [0.44, "REJECT", [], "critical"],
    [0.7, "B", [], undefined],
  ] as const)("score %f (%s)", (score, grade, _x, level) => {
    const a = alertsFor(score, grade, { oxidation: 0.1, freshness: 0.9 });
    expect(a[0]?.level).toBe(level);
  });
  it("warns on oxidation > 0.7 and freshness < 0.5", () => {
    const a = alertsFor(0.9, "A+", { oxidation: 0.71, freshness: 0.49 });
    expect(a.map((x) => x.code)).toEqual(["oxidation", "freshness"]);
  });
});

describe("Cp / Cpk", () => {
  it("matches the hand computation", () => {
    const c = capability([48, 50, 52]); // mean 50, sd 2
    expect(c.mean).toBe(50);
    expect(c.sd).toBeCloseTo(2, 12);
    expect(c.cp).toBeCloseTo(10 / 12, 12);
    expect(c.cpk).toBeCloseTo(5 / 6, 12);
    expect(capability([46, 48, 50]).cpk).toBeCloseTo(0.5, 12); // min(55 − 48, 48 − 45) / (3 · 2)
    expect(capability([50]).cp).toBeNull();
  });
  it("keeps a window of the last samples", () => {
    const w = new CapabilityWindow(3);
    for (const v of [10, 48, 50, 52]) w.push(v);
    expect(w.get().n).toBe(3);
    expect(w.get().mean).toBe(50);
  });
});

describe("lot decision (no REJECT, ≥ 80 % B or better)", () => {
  it.each([
    [["A+", "A", "B", "B", "C"], "approved"], // 80 % exactly
    [["A+", "A", "B", "C", "C"], "rejected"], // 60 %
    [["A+", "A+", "A+", "A+", "REJECT"], "rejected"],
    [[], "rejected"],
  ] as const)("%j → %s", (grades, decision) => {
    expect(decideLot(grades).decision).toBe(decision);
  });
  it("is configurable", () => {
    expect(decideLot(["C", "C"], { forbidden: ["REJECT"], good: ["A+", "A", "B", "C"], minGoodShare: 1 }).decision).toBe(
      "approved",
    );
  });
});

describe("properties", () => {
  it("every score is within 0..1 whatever the frame and counts", () => {
    const u16 = fc.integer({ min: 0, max: 65535 });
    fc.assert(
      fc.property(
        fc.uint16Array({ minLength: 64, maxLength: 64 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.uint8Array({ minLength: 64, maxLength: 64 }),
        fc.array(u16, { minLength: 10, maxLength: 10 }),
        fc.integer({ min: 0, max: 10 }),
        fc.integer({ min: 0, max: 255 }),
        fc.integer({ min: 0, max: 65534 }),
        fc.integer({ min: 20, max: 400 }),
        (dist, status, refl, counts, gain, atime, astep, h) => {
          const st = status.map((s) => (s % 2 === 0 ? 5 : s));
          const [f1, f2, f3, f4, f5, f6, f7, f8, clear, nir] = counts as [
            number,
            number,
            number,
            number,
            number,
            number,
            number,
            number,
            number,
            number,
          ];
          const r = gradeSample({
            tof: { dist, status: st, refl, amp: new Uint16Array(64), h },
            spec: { f1, f2, f3, f4, f5, f6, f7, f8, clear, nir, gain, atime, astep },
          });
          for (const v of [
            r.score,
            r.tof.scores.score,
            r.spectral.scores.score,
            r.tof.scores.combined,
            r.tof.scores.defectPenalty,
          ])
            expect(v >= 0 && v <= 1).toBe(true);
          expect(GRADE_ORDER[r.grade]).toBeGreaterThanOrEqual(0);
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a higher final score never grades lower", () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 1, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (a, b) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        expect(GRADE_ORDER[gradeFor(hi)]).toBeGreaterThanOrEqual(GRADE_ORDER[gradeFor(lo)]);
      }),
    );
  });

  it("better ToF or better spectral score, other things equal, never grades lower", () => {
    const s = fc.double({ min: 0, max: 1, noNaN: true });
    fc.assert(
      fc.property(s, s, s, (t, sp, d) => {
        const better = Math.min(1, t + d * (1 - t));
        expect(GRADE_ORDER[gradeFor(fuse(better, sp))]).toBeGreaterThanOrEqual(GRADE_ORDER[gradeFor(fuse(t, sp))]);
        expect(GRADE_ORDER[gradeFor(fuse(sp, better))]).toBeGreaterThanOrEqual(GRADE_ORDER[gradeFor(fuse(sp, t))]);
      }),
    );
  });

  it("a ratio closer to its optimal band never scores lower", () => {
    const band = DEFAULT_THRESHOLDS.spectral.ratios.discoloration;
    const centre = (band.optimal[0] + band.optimal[1]) / 2;
    fc.assert(
      fc.property(fc.double({ min: 0, max: 5, noNaN: true }), fc.double({ min: 0, max: 1, noNaN: true }), (v, k) => {
        const closer = v + (centre - v) * k;
        expect(bandScore(closer, band, 0.7, 0.3)).toBeGreaterThanOrEqual(bandScore(v, band, 0.7, 0.3));
      }),
    );
  });

  // Removing a foreign body is a strict improvement. (A deformation also lowers the volume, which the
  // volume score may prefer when the lobe is above the 700 cm³ peak — not "other things equal".)
  it("removing a foreign body (same sample, zone restored) never grades lower", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 1e9 }), fc.integer({ min: 12, max: 30 }), (seed, mm) => {
        const clean = synthSample(createRng(seed), { tier: "good", defect: "none", noiseMm: 0 });
        const product = [...clean.tof.dist.keys()].filter((i) => clean.tof.dist[i]! < 60);
        const z = product[seed % product.length]!;
        const damaged = { ...clean, tof: { ...clean.tof, dist: clean.tof.dist.slice() } };
        damaged.tof.dist[z] = Math.max(0, clean.tof.dist[z]! - mm); // no wrap-around of the uint16
        const a = gradeSample(clean);
        const b = gradeSample(damaged);
        expect(a.tof.scores.score).toBeGreaterThanOrEqual(b.tof.scores.score);
        expect(GRADE_ORDER[a.grade]).toBeGreaterThanOrEqual(GRADE_ORDER[b.grade]);
      }),
      { numRuns: 100 },
    );
  });

  it("higher quality tiers of the reference generator grade better on average", () => {
    const rng = createRng(42);
    const mean = (tier: "premium" | "good" | "acceptable" | "low" | "defective") => {
      let sum = 0;
      for (let i = 0; i < 100; i++) sum += gradeSample(synthSample(rng, { tier })).score;
      return sum / 100;
    };
    const m = (["premium", "good", "acceptable", "low", "defective"] as const).map(mean);
    for (let i = 1; i < m.length; i++) expect(m[i - 1]!).toBeGreaterThan(m[i]!);
  });
});
