import type { Rng } from "@esp-fleet/common/random";
import { QUALITY_TIERS, TOF_STATUS_VALID, TOF_ZONES, type QualityTier } from "@esp-fleet/schemas";
import type { DefectKind, SqalProfile, TierModel } from "../profiles.ts";

/**
 * VL53L8CH (8×8 time-of-flight) and AS7341 (10-channel spectral) models for a quality-control station.
 * Geometry (zone centres over the tray) is computed once per profile; a sample costs a few hundred
 * arithmetic operations and four small typed arrays. Pure: randomness only from the given `Rng`.
 */

export interface TofFrameValues {
  dist: Uint16Array;
  status: Uint8Array;
  refl: Uint8Array;
  amp: Uint16Array;
  amb: number;
  h: number;
}

export interface SpectralValues {
  f1: number;
  f2: number;
  f3: number;
  f4: number;
  f5: number;
  f6: number;
  f7: number;
  f8: number;
  clear: number;
  nir: number;
  gain: number;
  atime: number;
  astep: number;
}

export interface SqalMeasurement {
  tof: TofFrameValues;
  spec: SpectralValues;
  temp: number;
  tier: QualityTier;
  defects: DefectKind[];
}

const GRID = 8;
const DEFECT_KINDS: readonly DefectKind[] = ["foreign_body", "deformation", "edge_damage", "optical_inconsistency"];
const INVALID_STATUSES = [4, 6] as const;

interface Geometry {
  x: Float64Array;
  y: Float64Array;
}

const geometryCache = new WeakMap<SqalProfile, Geometry>();
// Scratch space for one frame (single-threaded; reused by every sample).
const SCRATCH_SURFACE = new Float64Array(TOF_ZONES);
const SCRATCH_REFL = new Float64Array(TOF_ZONES);
const SCRATCH_ON_PRODUCT = new Uint8Array(TOF_ZONES);

function geometry(profile: SqalProfile): Geometry {
  let g = geometryCache.get(profile);
  if (!g) {
    const { lengthMm, widthMm } = profile.tof.tray;
    const x = new Float64Array(TOF_ZONES);
    const y = new Float64Array(TOF_ZONES);
    for (let r = 0; r < GRID; r++)
      for (let c = 0; c < GRID; c++) {
        x[r * GRID + c] = ((c + 0.5) / GRID - 0.5) * lengthMm;
        y[r * GRID + c] = ((r + 0.5) / GRID - 0.5) * widthMm;
      }
    g = { x, y };
    geometryCache.set(profile, g);
  }
  return g;
}

/** AGAIN code → gain factor: 0 → ×0.5, n → ×2^(n−1). */
export function gainFactor(code: number): number {
  return code === 0 ? 0.5 : 2 ** (code - 1);
}

/** AS7341 integration time, ms: (ATIME + 1) × (ASTEP + 1) × 2.78 µs. */
export function integrationMs(atime: number, astep: number): number {
  return ((atime + 1) * (astep + 1) * 2.78) / 1000;
}

/** Draw a tier from weights (any positive numbers, normalised here), in QUALITY_TIERS order. */
export function drawTier(rng: Rng, weights: Record<QualityTier, number>): QualityTier {
  let total = 0;
  for (const t of QUALITY_TIERS) total += weights[t];
  let x = rng.next() * total;
  for (const t of QUALITY_TIERS) {
    x -= weights[t];
    if (x < 0) return t;
  }
  return "acceptable";
}

/** One AS7341 channel: mean counts with shot noise, 16-bit saturation. */
function count(rng: Rng, scale: number, ref: number, mod: number): number {
  const mean = ref * scale * mod;
  return clamp(Math.round(mean + rng.normal(0, Math.sqrt(Math.max(mean, 1)) * 0.5 + 2)), 0, 65535);
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function poisson(rng: Rng, mean: number, cap: number): number {
  const l = Math.exp(-mean);
  let k = 0;
  let p = rng.next();
  while (p > l && k < cap) {
    k++;
    p *= rng.next();
  }
  return k;
}

export interface SpectralSettings {
  gain: number;
  atime: number;
  astep: number;
}

/** Measure one product sample of the given tier. */
export function measureSample(
  rng: Rng,
  profile: SqalProfile,
  tier: QualityTier,
  settings?: Partial<SpectralSettings>,
): SqalMeasurement {
  const tm = profile.tiers[tier];
  const temp = Math.round(rng.uniform(profile.spectral.stationTempC[0], profile.spectral.stationTempC[1]) * 10) / 10;
  const defects: DefectKind[] = [];
  const tof = measureTof(rng, profile, tm, defects);
  const spec = measureSpectral(rng, profile, tm, temp, settings);
  return { tof, spec, temp, tier, defects };
}

function measureTof(rng: Rng, profile: SqalProfile, tm: TierModel, defects: DefectKind[]): TofFrameValues {
  const p = profile.tof;
  const g = geometry(profile);
  const hs = p.sensorHeightMm;
  const dist = new Uint16Array(TOF_ZONES);
  const status = new Uint8Array(TOF_ZONES);
  const refl = new Uint8Array(TOF_ZONES);
  const amp = new Uint16Array(TOF_ZONES);
  // Product lobe: an ellipsoid cap, rotated 45° ± 22.5°, centre jittered.
  const theta = ((p.rotationDeg.mean + rng.uniform(-p.rotationDeg.spread, p.rotationDeg.spread)) * Math.PI) / 180;
  const cos = Math.cos(theta);
  const sin = Math.sin(theta);
  const a = (p.product.lengthMm / 2) * rng.uniform(0.95, 1.05);
  const b = (p.product.widthMm / 2) * rng.uniform(0.95, 1.05);
  const height = clamp(rng.normal(tm.height.mean, tm.height.sd), 20, hs - 10);
  const cx = rng.normal(0, p.centreJitterMm);
  const cy = rng.normal(0, p.centreJitterMm);
  const productRefl = p.reflectance.product[0] + (p.reflectance.product[1] - p.reflectance.product[0]) * tm.freshness;
  const surface = SCRATCH_SURFACE;
  const onProduct = SCRATCH_ON_PRODUCT;
  const reflF = SCRATCH_REFL;
  for (let i = 0; i < TOF_ZONES; i++) {
    const dx = (g.x[i] as number) - cx;
    const dy = (g.y[i] as number) - cy;
    const u = (dx * cos + dy * sin) / a;
    const v = (-dx * sin + dy * cos) / b;
    const r2 = u * u + v * v;
    if (r2 < 1) {
      onProduct[i] = 1;
      surface[i] = height * Math.sqrt(1 - r2) + rng.normal(0, tm.textureMm);
      reflF[i] = productRefl + (rng.next() - 0.5) * 6;
    } else {
      // tray floor: small uniform noise is enough (cheaper than a Gaussian)
      onProduct[i] = 0;
      surface[i] = (rng.next() - 0.5) * 1.2;
      reflF[i] = p.reflectance.tray + (rng.next() - 0.5) * 3;
    }
  }
  // Random defects on the product.
  const nDefects = poisson(rng, tm.defectRate, 4);
  for (let d = 0; d < nDefects; d++) {
    const kind = rng.pick(DEFECT_KINDS);
    const spec = p.defects[kind];
    const centre = pickProductZone(rng, onProduct, kind === "edge_damage");
    if (centre < 0) continue;
    defects.push(kind);
    const radius = rng.int(spec.radiusZones[0], spec.radiusZones[1]);
    const delta = spec.distMm ? rng.uniform(spec.distMm[0], spec.distMm[1]) : 0;
    const reflDelta = spec.reflDelta ? rng.uniform(spec.reflDelta[0], spec.reflDelta[1]) : 0;
    const cr = Math.floor(centre / GRID);
    const cc = centre % GRID;
    for (let r = Math.max(0, cr - radius); r <= Math.min(GRID - 1, cr + radius); r++)
      for (let c = Math.max(0, cc - radius); c <= Math.min(GRID - 1, cc + radius); c++) {
        const i = r * GRID + c;
        if (!onProduct[i]) continue;
        if ((r - cr) * (r - cr) + (c - cc) * (c - cc) > radius * radius) continue;
        surface[i] = (surface[i] as number) - delta; // distance + delta ⇔ surface − delta
        reflF[i] = (reflF[i] as number) + reflDelta;
      }
  }
  const amb = Math.round(rng.uniform(p.ambientKcps[0], p.ambientKcps[1]));
  for (let i = 0; i < TOF_ZONES; i++) {
    const d = clamp(Math.round(hs - (surface[i] as number)), 1, 4000);
    const rf = clamp(Math.round(reflF[i] as number), 1, 100);
    const invalid = tm.invalidZoneRate > 0 && rng.next() < tm.invalidZoneRate;
    dist[i] = invalid ? clamp(Math.round(d + rng.normal(0, 30)), 0, 4000) : d;
    status[i] = invalid ? rng.pick(INVALID_STATUSES) : TOF_STATUS_VALID;
    refl[i] = rf;
    amp[i] = clamp(Math.round(((rf * 18 * 100) / d) * (0.95 + 0.1 * rng.next())), 0, 4095);
  }
  return { dist, status, refl, amp, amb, h: hs };
}

function pickProductZone(rng: Rng, onProduct: Uint8Array, edge: boolean): number {
  const candidates: number[] = [];
  for (let i = 0; i < TOF_ZONES; i++) {
    if (!onProduct[i]) continue;
    if (edge) {
      const r = Math.floor(i / GRID);
      const c = i % GRID;
      const isEdge =
        (c > 0 && !onProduct[i - 1]) ||
        (c < GRID - 1 && !onProduct[i + 1]) ||
        (r > 0 && !onProduct[i - GRID]) ||
        (r < GRID - 1 && !onProduct[i + GRID]);
      if (!isEdge) continue;
    }
    candidates.push(i);
  }
  return candidates.length === 0 ? -1 : (candidates[Math.floor(rng.next() * candidates.length)] as number);
}

function measureSpectral(
  rng: Rng,
  profile: SqalProfile,
  tm: TierModel,
  temp: number,
  settings?: Partial<SpectralSettings>,
): SpectralValues {
  const s = profile.spectral;
  const gain = settings?.gain ?? s.gain;
  const atime = settings?.atime ?? s.atime;
  const astep = settings?.astep ?? s.astep;
  // Sample-level spread around the tier's indices.
  const freshness = clamp(rng.normal(tm.freshness, 0.03), 0, 1);
  const fat = clamp(rng.normal(tm.fat, 0.03), 0, 1);
  const ox = clamp(rng.normal(tm.oxidation, 0.03), 0, 1);
  const scale =
    (gainFactor(gain) / 4) *
    (integrationMs(atime, astep) / 100) *
    (1 + s.tempCoeff * (temp - 25)) *
    (1 + s.aging * (1 - freshness));
  const blue = 1 + s.oxidationBlue * Math.max(0, ox - 0.05);
  const fatF = 1 - s.fat * (1 - fat);
  const nirF = 1 - s.nirAging * (1 - freshness);
  const r = s.reference;
  const f1 = count(rng, scale, r.f1, blue);
  const f2 = count(rng, scale, r.f2, blue);
  const f3 = count(rng, scale, r.f3, 1);
  const f4 = count(rng, scale, r.f4, 1);
  const f5 = count(rng, scale, r.f5, 1);
  const f6 = count(rng, scale, r.f6, fatF);
  const f7 = count(rng, scale, r.f7, fatF);
  const f8 = count(rng, scale, r.f8, 1);
  const nir = count(rng, scale, r.nir, nirF);
  const clear = count(rng, scale, r.clear, (blue * 2 + fatF * 2 + 6) / 10);
  return { f1, f2, f3, f4, f5, f6, f7, f8, clear, nir, gain, atime, astep };
}
