import type { Grade } from "@esp-fleet/schemas";

/**
 * Every number the graders use, in one place (shared/domain/README.md, "SQAL" and "Lot decision").
 * Graders take a `GradingThresholds` argument defaulting to `DEFAULT_THRESHOLDS`, so a line can be
 * re-tuned without touching code. Frozen: treat as data.
 */

/** A ratio's optimal and acceptable bands [lo, hi]. */
export interface RatioBand {
  optimal: readonly [number, number];
  acceptable: readonly [number, number];
}

export const SPECTRAL_RATIOS = [
  "violet_orange", // F1/F7 — freshness
  "nir_violet", // NIR/F1 — water/fat balance (anomaly check only)
  "discoloration", // (F5+F6)/(F1+F2) — colour
  "lipid_oxidation", // (F7+F8)/F4 — fat quality
  "freshness_meat", // (F1+F2)/(F7+F8) — freshness
  "oil_oxidation", // (F1+F3)/(F5+F6) — fat quality
] as const;
export type SpectralRatio = (typeof SPECTRAL_RATIOS)[number];

export interface LotRule {
  /** No sample may grade below this (REJECT = any REJECT sample rejects the lot). */
  forbidden: readonly Grade[];
  /** Grades that count as "good". */
  good: readonly Grade[];
  /** Minimum share of samples grading `good` for approval, 0..1. */
  minGoodShare: number;
}

export interface GradingThresholds {
  tof: {
    /** VL53L8CH target status meaning a valid range. */
    validStatus: number;
    /** Tray footprint split over the 8×8 zones, mm² per zone (300 × 180 mm / 64). */
    zoneAreaMm2: number;
    /** A zone belongs to the product when its surface is higher than this above the tray floor, mm. */
    productMinHeightMm: number;
    /** A zone deviating more than this from its local surface is a defect, mm. */
    defectDeviationMm: number;
    /** Optical inconsistency: reflectance this many points below the product median, %. */
    opticalDropPct: number;
    /** Severity of an optical defect = drop / this. */
    opticalSeverityScalePct: number;
    /** Volume score is 1 at the peak and falls linearly to 0 at peak ± tolerance, mm³. */
    volumePeakMm3: number;
    volumeToleranceMm3: number;
    /** Max-height score ramps from 0 at `low` to 1 at `high`, mm. */
    maxHeightMm: { low: number; high: number };
    /** Uniformity score ramps from 0 at `low` to 1 at `high` (uniformity = 1 / (1 + roughness mm)). */
    uniformity: { low: number; high: number };
    /** Feature weights of the combined ToF feature score (sum 1). */
    weights: { volume: number; height: number; uniformity: number; thickness: number };
    /** Thickness classes by mean product height, mm (lower bounds, inclusive). */
    thickness: { extraMin: number; extraMax: number; firstMin: number; secondMin: number };
    /** Thickness-class sub-score. */
    thicknessScore: { extra: number; first_choice: number; second_choice: number; out_of_norm: number };
    /** Estimated liver weight = volume / 1000 × this, g. */
    liverDensityGPerCm3: number;
  };
  spectral: {
    /** Reference acquisition the bands were defined at: gain ×4, 100 ms. */
    referenceGain: number;
    referenceIntegrationMs: number;
    ratios: Record<SpectralRatio, RatioBand>;
    /** Sub-score inside the acceptable band slides from 1.0 (optimal edge) to this (acceptable edge). */
    acceptableEdgeScore: number;
    /** Sub-score outside the acceptable band. */
    outsideScore: number;
    saturatedCount: number;
    lowCount: number;
    anomalyPenalty: number;
    maxAnomalyPenalty: number;
    indexWeights: { freshness: number; fat: number; colour: number; antiOxidation: number };
  };
  fusion: { tof: number; spectral: number };
  /** Lower bounds of each grade, best first; anything below the last is REJECT. */
  grades: readonly { grade: Grade; min: number }[];
  alerts: {
    criticalScoreBelow: number;
    warningScoreBelow: number;
    warningOxidationAbove: number;
    warningFreshnessBelow: number;
  };
  capability: { lslMm: number; uslMm: number; window: number };
  lot: LotRule;
}

function deepFreeze<T>(o: T): T {
  if (o && typeof o === "object") {
    for (const v of Object.values(o)) deepFreeze(v);
    Object.freeze(o);
  }
  return o;
}

export const DEFAULT_LOT_RULE: LotRule = deepFreeze({ forbidden: ["REJECT"], good: ["A+", "A", "B"], minGoodShare: 0.8 });

/**
 * The ToF ramps and weights (not fixed by the domain doc) were calibrated against the emulator's
 * VL53L8CH model (`@esp-fleet/device-emulator` SQAL_PROFILE: lobe heights and texture per tier) so that
 * premium product grades A+, good A, acceptable B; see docs/sqal.md.
 */
export const DEFAULT_THRESHOLDS: GradingThresholds = deepFreeze({
  tof: {
    validStatus: 5,
    zoneAreaMm2: (300 * 180) / 64,
    productMinHeightMm: 10,
    defectDeviationMm: 10,
    opticalDropPct: 15,
    opticalSeverityScalePct: 50,
    volumePeakMm3: 700_000,
    volumeToleranceMm3: 600_000,
    maxHeightMm: { low: 40, high: 85 },
    uniformity: { low: 0.4, high: 0.9 },
    weights: { volume: 0.2, height: 0.35, uniformity: 0.3, thickness: 0.15 },
    thickness: { extraMin: 45, extraMax: 60, firstMin: 35, secondMin: 25 },
    thicknessScore: { extra: 1, first_choice: 0.8, second_choice: 0.5, out_of_norm: 0.1 },
    liverDensityGPerCm3: 0.947,
  },
  spectral: {
    referenceGain: 4,
    referenceIntegrationMs: 100,
    ratios: {
      violet_orange: { optimal: [0.25, 0.45], acceptable: [0.2, 0.55] },
      nir_violet: { optimal: [1.2, 1.8], acceptable: [1.0, 2.0] },
      discoloration: { optimal: [1.3, 1.7], acceptable: [1.1, 2.0] },
      lipid_oxidation: { optimal: [0.8, 1.2], acceptable: [0.7, 1.4] },
      freshness_meat: { optimal: [0.35, 0.65], acceptable: [0.25, 0.75] },
      oil_oxidation: { optimal: [0.5, 0.8], acceptable: [0.4, 0.9] },
    },
    acceptableEdgeScore: 0.7,
    outsideScore: 0.3,
    saturatedCount: 65500,
    lowCount: 10,
    anomalyPenalty: 0.1,
    maxAnomalyPenalty: 0.5,
    indexWeights: { freshness: 0.35, fat: 0.3, colour: 0.2, antiOxidation: 0.15 },
  },
  fusion: { tof: 0.6, spectral: 0.4 },
  grades: [
    { grade: "A+", min: 0.85 },
    { grade: "A", min: 0.75 },
    { grade: "B", min: 0.6 },
    { grade: "C", min: 0.45 },
  ],
  alerts: { criticalScoreBelow: 0.4, warningScoreBelow: 0.6, warningOxidationAbove: 0.7, warningFreshnessBelow: 0.5 },
  capability: { lslMm: 45, uslMm: 55, window: 50 },
  lot: DEFAULT_LOT_RULE,
});

/** AGAIN code 0..10 → gain ×0.5 … ×512. */
export function gainFactor(code: number): number {
  return 2 ** (code - 1);
}

/** AS7341 integration time, ms: (ATIME + 1) × (ASTEP + 1) × 2.78 µs. */
export function integrationMs(atime: number, astep: number): number {
  return ((atime + 1) * (astep + 1) * 2.78) / 1000;
}
