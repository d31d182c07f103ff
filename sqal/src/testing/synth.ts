import { createRng, type Rng } from "@esp-fleet/common/random";
import { QUALITY_TIERS, type QualityTier, type SqalSample, AS7341_REFERENCE_COUNTS } from "@esp-fleet/schemas";

/**
 * A small reference generator of SQAL samples from the domain doc's physical description (lobe on a
 * tray under a VL53L8CH, AS7341 reference counts shifted by quality). For tests and the bench only —
 * the fleet's real sensor models live in `@esp-fleet/device-emulator`.
 */
export const TIER_MIX: Record<QualityTier, number> = { premium: 0.15, good: 0.4, acceptable: 0.3, low: 0.1, defective: 0.05 };
export const TIER_INDICES: Record<QualityTier, { freshness: number; fat: number; oxidation: number; uniformity: number }> = {
  premium: { freshness: 0.95, fat: 0.95, oxidation: 0.05, uniformity: 0.92 },
  good: { freshness: 0.85, fat: 0.85, oxidation: 0.15, uniformity: 0.82 },
  acceptable: { freshness: 0.7, fat: 0.7, oxidation: 0.3, uniformity: 0.75 },
  low: { freshness: 0.55, fat: 0.55, oxidation: 0.45, uniformity: 0.65 },
  defective: { freshness: 0.35, fat: 0.35, oxidation: 0.65, uniformity: 0.5 },
};
const REF = AS7341_REFERENCE_COUNTS;

export function pickTier(rng: Rng): QualityTier {
  let x = rng.next();
  for (const t of QUALITY_TIERS) {
    x -= TIER_MIX[t];
    if (x < 0) return t;
  }
  return "good";
}

export interface SynthOptions {
  tier?: QualityTier;
  /** force a defect */
  defect?: "foreign_body" | "deformation" | "optical" | "none";
  /** texture noise override, mm (default grows as uniformity falls) */
  noiseMm?: number;
  dev?: string;
  seq?: number;
}

export function synthSample(rng: Rng, opts: SynthOptions = {}): SqalSample {
  const tier = opts.tier ?? pickTier(rng);
  const q = TIER_INDICES[tier];
  const u = Math.min(1, Math.max(0, rng.normal(q.uniformity, 0.02)));
  const fresh = Math.min(1, Math.max(0, rng.normal(q.freshness, 0.03)));
  const fat = Math.min(1, Math.max(0, rng.normal(q.fat, 0.03)));
  const sensorH = 100;
  const peak = Math.max(20, 82 - 90 * (0.92 - u));
  const a = 100; // semi-axes, mm
  const b = 50;
  const theta = ((45 + rng.uniform(-22.5, 22.5)) * Math.PI) / 180;
  const cx = 150 + rng.uniform(-10, 10);
  const cy = 90 + rng.uniform(-8, 8);
  const noise = opts.noiseMm ?? 10 * (1 - u);
  const dist = new Uint16Array(64);
  const status = new Uint8Array(64).fill(5);
  const refl = new Uint8Array(64);
  const amp = new Uint16Array(64);
  const heights = new Float64Array(64);
  for (let r = 0; r < 8; r++) {
    for (let c = 0; c < 8; c++) {
      const x = (c + 0.5) * 37.5 - cx;
      const y = (r + 0.5) * 22.5 - cy;
      const xr = x * Math.cos(theta) + y * Math.sin(theta);
      const yr = -x * Math.sin(theta) + y * Math.cos(theta);
      const rho = (xr / a) ** 2 + (yr / b) ** 2;
      const h = rho < 1 ? peak * Math.sqrt(1 - rho) + rng.normal(0, noise) : rng.normal(0, Math.min(0.8, noise));
      heights[r * 8 + c] = Math.max(0, h);
    }
  }
  const defect =
    opts.defect ??
    (tier === "defective"
      ? rng.pick(["foreign_body", "deformation", "optical"] as const)
      : tier === "low" && rng.chance(0.2)
        ? "deformation"
        : "none");
  const product = [...heights.keys()].filter((i) => heights[i]! > 15);
  const reflBase = 40 + 20 * fresh;
  const opticalZones = new Set<number>();
  if (defect !== "none" && product.length > 0) {
    const z = rng.pick(product);
    if (defect === "foreign_body") heights[z] = heights[z]! + rng.uniform(12, 25);
    else if (defect === "deformation") heights[z] = Math.max(0, heights[z]! - rng.uniform(12, 15));
    else opticalZones.add(z);
  }
  for (let i = 0; i < 64; i++) {
    dist[i] = Math.round(Math.max(0, sensorH - heights[i]!));
    const rf =
      heights[i]! > 10 ? reflBase + rng.normal(0, 2) - (opticalZones.has(i) ? rng.uniform(20, 30) : 0) : 15 + rng.normal(0, 2);
    refl[i] = Math.round(Math.min(100, Math.max(0, rf)));
    amp[i] = Math.round(Math.min(4095, 400 + 25 * refl[i]!));
  }
  const age = 1 + 0.5 * (0.95 - fresh);
  const spec = {
    f1: REF.f1 * age * (1 - 0.9 * (0.95 - fresh)),
    f2: REF.f2 * age,
    f3: REF.f3 * age,
    f4: REF.f4 * age,
    f5: REF.f5 * age,
    f6: REF.f6 * age * (1 + 1.3 * (0.95 - fat)),
    f7: REF.f7 * age * (1 + 1.3 * (0.95 - fat)),
    f8: REF.f8 * age,
    clear: REF.clear * age,
    nir: REF.nir * age,
  };
  const n = (v: number) => Math.round(Math.min(65535, Math.max(0, v * (1 + rng.normal(0, 0.01)))));
  return {
    v: 1,
    dev: opts.dev ?? "ESP32_LL_01",
    boot: 1,
    seq: opts.seq ?? 0,
    ts: 1_700_000_000_000,
    sample: `S${opts.seq ?? 0}`,
    tof: { dist, status, refl, amp, h: sensorH },
    spec: {
      f1: n(spec.f1),
      f2: n(spec.f2),
      f3: n(spec.f3),
      f4: n(spec.f4),
      f5: n(spec.f5),
      f6: n(spec.f6),
      f7: n(spec.f7),
      f8: n(spec.f8),
      clear: n(spec.clear),
      nir: n(spec.nir),
      gain: 3,
      atime: 29,
      astep: 1198,
    },
    sim: { tier, defects: defect === "none" ? [] : [defect] },
  };
}

export { createRng };
