import type { Envelope, FaultId, FridgeReading } from "@esp-fleet/schemas";
import { DIAGNOSIS_PROFILE, FRIDGE_FIELDS, type DiagnosisProfile, type FridgeField } from "./profile.ts";

/** The physical part of a fridge reading the diagnosis looks at (a `FridgeReading` fits). */
/** What the classifier looks at: a fridge reading's physical fields, plus per-fridge context. */
export type FridgeObservation = Omit<FridgeReading, keyof Envelope | "sim" | "t_evap"> & {
  /** the cabinet is still being pulled down after a defrost (tracked per fridge by the diagnoser) */
  recovering?: boolean;
};

export type DiagnosisLabel = FaultId | "normal";

export interface ReadingClass {
  /** `unknown`: abnormal, but no signature matches well enough. */
  label: DiagnosisLabel | "unknown";
  /** 0..1 */
  confidence: number;
  /** cos² between the deviation and the best signature (1 for normal / sentinel) */
  match: number;
  /** how far along the best signature the reading is (0 = healthy baseline, 1 = signature centre) */
  progress: number;
  /** largest deviation from the healthy baseline, in scales */
  maxDeviation: number;
  /** whether this one reading suffices to raise */
  decisive: boolean;
}

type Baseline = Record<FridgeField, { mean: number; scale: number }>;

/** The healthy baseline for what the controller says it is doing. */
export function baselineFor(
  o: Pick<FridgeObservation, "comp" | "defrost" | "door" | "recovering">,
  p: DiagnosisProfile = DIAGNOSIS_PROFILE,
): Baseline {
  const b = { ...p.running };
  if (!o.comp) Object.assign(b, p.stopped);
  if (o.recovering) Object.assign(b, p.recovery);
  if (o.defrost) Object.assign(b, p.defrost);
  if (o.door) Object.assign(b, p.door);
  return b;
}

const dev = new Float64Array(FRIDGE_FIELDS.length);
const dir = new Float64Array(FRIDGE_FIELDS.length);

/**
 * Classify one reading against the healthy baseline and the 12 signatures. A fault's signature is a
 * direction in deviation space (each listed field from its baseline to the centre of its range, in
 * scales); a fault that fades in as a drift moves the reading along that direction, so the match is the
 * angle (cos²) between the reading's deviation and the direction, and the progress is the projection.
 */
export function classifyReading(o: FridgeObservation, p: DiagnosisProfile = DIAGNOSIS_PROFILE): ReadingClass {
  if (o.t <= p.invalidTemperatureBelow) {
    return { label: "capteur_defectueux", confidence: 1, match: 1, progress: 1, maxDeviation: Infinity, decisive: true };
  }
  const base = baselineFor(o, p);
  let maxDev = 0;
  let norm2 = 0;
  for (let k = 0; k < FRIDGE_FIELDS.length; k++) {
    const f = FRIDGE_FIELDS[k]!;
    const v = o[f];
    const d = Number.isFinite(v) ? (v - base[f].mean) / base[f].scale : 1e3;
    dev[k] = d;
    norm2 += d * d;
    if (Math.abs(d) > maxDev) maxDev = Math.abs(d);
  }
  if (maxDev < p.normalWithin) {
    return {
      label: "normal",
      confidence: Math.max(0, 1 - maxDev / p.normalWithin / 2),
      match: 1,
      progress: 0,
      maxDeviation: maxDev,
      decisive: true,
    };
  }
  let best: FaultId | undefined;
  let bestMatch = -1;
  let bestProgress = 0;
  for (const fault in p.faults) {
    const sig = p.faults[fault as keyof DiagnosisProfile["faults"]];
    let dd = 0;
    let rd = 0;
    for (let k = 0; k < FRIDGE_FIELDS.length; k++) {
      const f = FRIDGE_FIELDS[k]!;
      const range = sig[f];
      const x = range ? ((range[0] + range[1]) / 2 - base[f].mean) / base[f].scale : 0;
      dir[k] = x;
      dd += x * x;
      rd += x * dev[k]!;
    }
    if (dd === 0 || rd <= 0) continue;
    const match = (rd * rd) / (dd * norm2);
    if (match > bestMatch) {
      bestMatch = match;
      best = fault as FaultId;
      bestProgress = rd / dd;
    }
  }
  if (!best || bestMatch < p.minMatch || bestProgress < p.minProgress) {
    return {
      label: "unknown",
      confidence: Math.max(0, bestMatch),
      match: Math.max(0, bestMatch),
      progress: bestProgress,
      maxDeviation: maxDev,
      decisive: false,
    };
  }
  const confidence = Math.min(1, bestMatch * Math.min(1, bestProgress / p.instantProgress));
  return {
    label: best,
    confidence,
    match: bestMatch,
    progress: bestProgress,
    maxDeviation: maxDev,
    decisive: bestMatch >= p.instantMatch && bestProgress >= p.instantProgress,
  };
}
