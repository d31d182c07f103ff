import { DEFAULT_THRESHOLDS, type GradingThresholds } from "./thresholds.ts";

/**
 * Time-of-flight features and score from one VL53L8CH 8×8 frame (pure, no allocation beyond the
 * result). heights = sensor height − distance; the product is every valid zone higher than
 * `productMinHeightMm`.
 *
 * The domain rule "defects = zones deviating > 10 mm from the median" is applied against the fitted
 * product *surface* rather than the frame's global median, which would flag the natural slope of a lobe:
 * an ellipsoid-like lobe satisfies height² = quadratic(x, y) exactly for any centre and rotation, so a
 * least-squares fit of height² over the product zones (refitted once without the outliers) gives the
 * smooth surface. Closer than the surface by more than `defectDeviationMm` → foreign body; farther →
 * deformation (edge damage when the zone borders the tray). Severity = min(1, |dev| / (0.5 × median
 * product distance)), as in the domain doc. The residuals (capped at the defect threshold) measure the
 * surface texture: uniformity = 1 / (1 + mean |residual| mm).
 */
/** What the ToF grader reads of a frame (a validated `TofFrame` fits, as does any array-like source). */
export interface TofInput {
  dist: ArrayLike<number>;
  status: ArrayLike<number>;
  refl: ArrayLike<number>;
  /** signal amplitude (not used by the grader) */
  amp?: ArrayLike<number>;
  /** sensor height above the tray floor, mm */
  h: number;
}

export type DefectType = "foreign_body" | "deformation" | "edge_damage" | "optical";
export const DEFECT_TYPES: readonly DefectType[] = ["foreign_body", "deformation", "edge_damage", "optical"];

export interface TofDefect {
  type: DefectType;
  /** zone index 0..63, row-major */
  zone: number;
  row: number;
  col: number;
  /** distance deviation from the local surface, mm (negative = closer); reflectance drop for optical */
  deviation: number;
  severity: number;
}

export type ThicknessClass = "extra" | "first_choice" | "second_choice" | "out_of_norm";

export interface TofFeatures {
  validZones: number;
  productZones: number;
  volumeMm3: number;
  maxHeightMm: number;
  meanHeightMm: number;
  minHeightMm: number;
  heightSdMm: number;
  medianDistanceMm: number;
  roughnessMm: number;
  surfaceUniformity: number;
  defects: TofDefect[];
  thicknessMm: number;
  thicknessClass: ThicknessClass;
  liverWeightG: number;
}

export interface TofScores {
  volume: number;
  height: number;
  uniformity: number;
  thickness: number;
  combined: number;
  /** mean defect severity over the product zones (non-defective zones count 0) */
  defectPenalty: number;
  score: number;
}

const SIDE = 8;
const ZONES = 64;
// Scratch buffers (graders are synchronous, so one set per module is safe).
const heights = new Float64Array(ZONES);
const isProduct = new Uint8Array(ZONES);
const residual = new Float64Array(ZONES);
const hasResidual = new Uint8Array(ZONES);
const scratch = new Float64Array(ZONES);
const heightFit = new Float64Array(ZONES);
const useInFit = new Uint8Array(ZONES);
const normal = new Float64Array(6 * 7);
const coef = new Float64Array(6);

function median(values: Float64Array, n: number): number {
  if (n === 0) return 0;
  const view = values.subarray(0, n);
  view.sort();
  const mid = n >> 1;
  return n % 2 === 1 ? view[mid]! : (view[mid - 1]! + view[mid]!) / 2;
}

/**
 * Least-squares fit of height² = c0 + c1·x + c2·y + c3·x² + c4·x·y + c5·y² over the product zones,
 * then once more without the zones deviating more than `outlierMm`. Fills `heightFit`; false when there are
 * too few product zones to fit.
 */
function fitSurface(productZones: number, outlierMm: number): boolean {
  if (productZones < 8) return false;
  for (let i = 0; i < ZONES; i++) useInFit[i] = isProduct[i]!;
  for (let pass = 0; pass < 2; pass++) {
    if (!solveFit()) return false;
    for (let i = 0; i < ZONES; i++) {
      const x = (i % SIDE) - 3.5;
      const y = ((i / SIDE) | 0) - 3.5;
      const z2 = coef[0]! + coef[1]! * x + coef[2]! * y + coef[3]! * x * x + coef[4]! * x * y + coef[5]! * y * y;
      heightFit[i] = z2 > 0 ? Math.sqrt(z2) : 0;
    }
    if (pass === 1) break;
    let kept = 0;
    for (let i = 0; i < ZONES; i++) {
      if (!isProduct[i]) continue;
      useInFit[i] = Math.abs(heightFit[i]! - heights[i]!) <= outlierMm ? 1 : 0;
      kept += useInFit[i]!;
    }
    if (kept === productZones || kept < 8) break;
  }
  return true;
}

/** Build and solve the 6×6 normal equations (Gaussian elimination with partial pivoting). */
function solveFit(): boolean {
  normal.fill(0);
  const basis = [0, 0, 0, 0, 0, 0];
  for (let i = 0; i < ZONES; i++) {
    if (!useInFit[i]) continue;
    const x = (i % SIDE) - 3.5;
    const y = ((i / SIDE) | 0) - 3.5;
    basis[0] = 1;
    basis[1] = x;
    basis[2] = y;
    basis[3] = x * x;
    basis[4] = x * y;
    basis[5] = y * y;
    const z2 = heights[i]! * heights[i]!;
    for (let a = 0; a < 6; a++) {
      const ba = basis[a]!;
      for (let b = a; b < 6; b++) normal[a * 7 + b] = normal[a * 7 + b]! + ba * basis[b]!;
      normal[a * 7 + 6] = normal[a * 7 + 6]! + ba * z2;
    }
  }
  for (let a = 0; a < 6; a++) for (let b = 0; b < a; b++) normal[a * 7 + b] = normal[b * 7 + a]!;
  for (let col = 0; col < 6; col++) {
    let pivot = col;
    for (let r = col + 1; r < 6; r++) if (Math.abs(normal[r * 7 + col]!) > Math.abs(normal[pivot * 7 + col]!)) pivot = r;
    if (Math.abs(normal[pivot * 7 + col]!) < 1e-9) return false;
    if (pivot !== col)
      for (let k = 0; k < 7; k++) {
        const tmp = normal[col * 7 + k]!;
        normal[col * 7 + k] = normal[pivot * 7 + k]!;
        normal[pivot * 7 + k] = tmp;
      }
    for (let r = 0; r < 6; r++) {
      if (r === col) continue;
      const f = normal[r * 7 + col]! / normal[col * 7 + col]!;
      if (f === 0) continue;
      for (let k = col; k < 7; k++) normal[r * 7 + k] = normal[r * 7 + k]! - f * normal[col * 7 + k]!;
    }
  }
  for (let a = 0; a < 6; a++) coef[a] = normal[a * 7 + 6]! / normal[a * 7 + a]!;
  return true;
}

export function thicknessClassOf(thicknessMm: number, t: GradingThresholds["tof"]["thickness"]): ThicknessClass {
  if (thicknessMm >= t.extraMin && thicknessMm <= t.extraMax) return "extra";
  if (thicknessMm >= t.firstMin && thicknessMm < t.extraMin) return "first_choice";
  if (thicknessMm >= t.secondMin && thicknessMm < t.firstMin) return "second_choice";
  return "out_of_norm";
}

export function tofFeatures(tof: TofInput, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): TofFeatures {
  const t = thresholds.tof;
  const { dist, status, refl } = tof;
  const sensorH = tof.h;
  let validZones = 0;
  let productZones = 0;
  for (let i = 0; i < ZONES; i++) {
    const valid = status[i] === t.validStatus;
    if (valid) validZones++;
    const h = valid ? Math.max(0, sensorH - dist[i]!) : 0;
    heights[i] = h;
    const p = valid && h > t.productMinHeightMm;
    isProduct[i] = p ? 1 : 0;
    if (p) productZones++;
  }
  // median product distance and reflectance
  let n = 0;
  for (let i = 0; i < ZONES; i++) if (isProduct[i]) scratch[n++] = dist[i]!;
  const medianDistance = median(scratch, n);
  n = 0;
  for (let i = 0; i < ZONES; i++) if (isProduct[i]) scratch[n++] = refl[i]!;
  const medianRefl = median(scratch, n);

  // residuals against the fitted lobe surface
  const fitted = fitSurface(productZones, t.defectDeviationMm);
  let sumAbsRes = 0;
  let nRes = 0;
  for (let i = 0; i < ZONES; i++) {
    if (!isProduct[i] || !fitted) {
      hasResidual[i] = 0;
      continue;
    }
    const res = heightFit[i]! - heights[i]!; // as a distance: negative = closer than the surface
    residual[i] = res;
    hasResidual[i] = 1;
    // capped, so a defect adds the most texture a zone can add but is otherwise scored as a defect
    sumAbsRes += Math.min(Math.abs(res), t.defectDeviationMm);
    nRes++;
  }
  const roughness = nRes > 0 ? sumAbsRes / nRes : 0;

  const defects: TofDefect[] = [];
  const sevScale = Math.max(1, 0.5 * medianDistance);
  for (let i = 0; i < ZONES; i++) {
    if (!isProduct[i]) continue;
    const row = (i / SIDE) | 0;
    const col = i % SIDE;
    if (hasResidual[i] && Math.abs(residual[i]!) > t.defectDeviationMm) {
      const dev = residual[i]!;
      let type: DefectType = dev < 0 ? "foreign_body" : "deformation";
      if (type === "deformation" && bordersTray(row, col)) type = "edge_damage";
      defects.push({ type, zone: i, row, col, deviation: round1(dev), severity: Math.min(1, Math.abs(dev) / sevScale) });
      heights[i] = heightFit[i]!; // the product's own surface there, for the size features
      continue;
    }
    const drop = medianRefl - refl[i]!;
    if (drop > t.opticalDropPct) {
      defects.push({
        type: "optical",
        zone: i,
        row,
        col,
        deviation: -drop,
        severity: Math.min(1, drop / t.opticalSeverityScalePct),
      });
    }
  }

  // size features from the product surface, geometric defects replaced by the fitted surface
  let sumH = 0;
  let sumH2 = 0;
  let maxH = 0;
  let minH = Infinity;
  for (let i = 0; i < ZONES; i++) {
    if (!isProduct[i]) continue;
    const h = heights[i]!;
    sumH += h;
    sumH2 += h * h;
    if (h > maxH) maxH = h;
    if (h < minH) minH = h;
  }
  const meanH = productZones > 0 ? sumH / productZones : 0;
  const variance = productZones > 0 ? Math.max(0, sumH2 / productZones - meanH * meanH) : 0;
  const volume = sumH * t.zoneAreaMm2;
  return {
    validZones,
    productZones,
    volumeMm3: Math.round(volume),
    maxHeightMm: round1(maxH),
    meanHeightMm: round1(meanH),
    minHeightMm: productZones > 0 ? round1(minH) : 0,
    heightSdMm: round1(Math.sqrt(variance)),
    medianDistanceMm: medianDistance,
    roughnessMm: round2(roughness),
    surfaceUniformity: 1 / (1 + roughness),
    defects,
    thicknessMm: round1(meanH),
    thicknessClass: thicknessClassOf(meanH, t.thickness),
    liverWeightG: round1((volume / 1000) * t.liverDensityGPerCm3),
  };
}

function bordersTray(row: number, col: number): boolean {
  for (let dr = -1; dr <= 1; dr++) {
    for (let dc = -1; dc <= 1; dc++) {
      if (dr === 0 && dc === 0) continue;
      const r = row + dr;
      const c = col + dc;
      if (r < 0 || r >= SIDE || c < 0 || c >= SIDE) return true;
      if (!isProduct[r * SIDE + c]) return true;
    }
  }
  return false;
}

export function ramp(x: number, lo: number, hi: number): number {
  if (!(x > lo)) return 0;
  if (x >= hi) return 1;
  return (x - lo) / (hi - lo);
}

export function tofScores(f: TofFeatures, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): TofScores {
  const t = thresholds.tof;
  if (f.productZones === 0) {
    return { volume: 0, height: 0, uniformity: 0, thickness: 0, combined: 0, defectPenalty: 1, score: 0 };
  }
  const volume = Math.max(0, 1 - Math.abs(f.volumeMm3 - t.volumePeakMm3) / t.volumeToleranceMm3);
  const height = ramp(f.maxHeightMm, t.maxHeightMm.low, t.maxHeightMm.high);
  const uniformity = ramp(f.surfaceUniformity, t.uniformity.low, t.uniformity.high);
  const thickness = t.thicknessScore[f.thicknessClass];
  const w = t.weights;
  const combined = clamp01(w.volume * volume + w.height * height + w.uniformity * uniformity + w.thickness * thickness);
  let sev = 0;
  for (const d of f.defects) sev += d.severity;
  const defectPenalty = Math.min(1, sev / f.productZones);
  return { volume, height, uniformity, thickness, combined, defectPenalty, score: clamp01(combined * (1 - defectPenalty)) };
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : Number.isNaN(x) ? 0 : x;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
