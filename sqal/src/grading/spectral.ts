import { AS7341_CHANNELS, type As7341Channel, type Spectral } from "@esp-fleet/schemas";
import { clamp01 } from "./tof.ts";
import {
  DEFAULT_THRESHOLDS,
  SPECTRAL_RATIOS,
  gainFactor,
  integrationMs,
  type GradingThresholds,
  type RatioBand,
  type SpectralRatio,
} from "./thresholds.ts";

/**
 * AS7341 ratios, indices, anomalies and score (shared/domain/README.md "Spectral scoring"). Counts are
 * first normalised to the reference acquisition (gain ×4, 100 ms) so figures from stations running
 * other gains/integration times compare; ratios are scale-free, saturation and low-signal checks use
 * the raw counts (that is where the ADC limits are).
 */
export interface SpectralAnomaly {
  kind: "ratio_out_of_band" | "saturated" | "low_signal";
  /** ratio name or channel */
  what: string;
  value: number;
}

export interface SpectralFeatures {
  /** counts normalised to gain ×4 / 100 ms */
  normalized: Record<As7341Channel, number>;
  gain: number;
  integrationMs: number;
  ratios: Record<SpectralRatio, number>;
  subScores: Record<SpectralRatio, number>;
  anomalies: SpectralAnomaly[];
}

export interface SpectralScores {
  freshness: number;
  fat: number;
  colour: number;
  oxidation: number;
  /** before the anomaly penalty */
  base: number;
  anomalyPenalty: number;
  score: number;
}

/** 1 inside the optimal band, sliding 1 → edge score across the acceptable band, `outside` beyond. */
export function bandScore(value: number, band: RatioBand, edgeScore: number, outside: number): number {
  const [olo, ohi] = band.optimal;
  const [alo, ahi] = band.acceptable;
  if (!Number.isFinite(value)) return outside;
  if (value >= olo && value <= ohi) return 1;
  if (value < olo) {
    if (value < alo) return outside;
    return edgeScore + ((1 - edgeScore) * (value - alo)) / (olo - alo);
  }
  if (value > ahi) return outside;
  return edgeScore + ((1 - edgeScore) * (ahi - value)) / (ahi - ohi);
}

function ratio(a: number, b: number): number {
  return b > 0 ? a / b : a > 0 ? Infinity : 0;
}

export function spectralFeatures(spec: Spectral, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): SpectralFeatures {
  const t = thresholds.spectral;
  const gain = gainFactor(spec.gain);
  const tint = integrationMs(spec.atime, spec.astep);
  const scale = tint > 0 ? (t.referenceGain * t.referenceIntegrationMs) / (gain * tint) : 0;
  const normalized = {} as Record<As7341Channel, number>;
  const anomalies: SpectralAnomaly[] = [];
  for (const ch of AS7341_CHANNELS) {
    const raw = spec[ch];
    normalized[ch] = raw * scale;
    if (raw >= t.saturatedCount) anomalies.push({ kind: "saturated", what: ch, value: raw });
    else if (raw < t.lowCount) anomalies.push({ kind: "low_signal", what: ch, value: raw });
  }
  const { f1, f2, f3, f4, f5, f6, f7, f8, nir } = spec;
  const ratios: Record<SpectralRatio, number> = {
    violet_orange: ratio(f1, f7),
    nir_violet: ratio(nir, f1),
    discoloration: ratio(f5 + f6, f1 + f2),
    lipid_oxidation: ratio(f7 + f8, f4),
    freshness_meat: ratio(f1 + f2, f7 + f8),
    oil_oxidation: ratio(f1 + f3, f5 + f6),
  };
  const subScores = {} as Record<SpectralRatio, number>;
  for (const name of SPECTRAL_RATIOS) {
    const band = t.ratios[name];
    const v = ratios[name];
    subScores[name] = bandScore(v, band, t.acceptableEdgeScore, t.outsideScore);
    if (!(v >= band.acceptable[0] && v <= band.acceptable[1]))
      anomalies.push({ kind: "ratio_out_of_band", what: name, value: v });
  }
  return { normalized, gain, integrationMs: tint, ratios, subScores, anomalies };
}

export function spectralScores(f: SpectralFeatures, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): SpectralScores {
  const t = thresholds.spectral;
  const s = f.subScores;
  const freshness = 0.6 * s.violet_orange + 0.4 * s.freshness_meat;
  const fat = 0.6 * s.lipid_oxidation + 0.4 * s.oil_oxidation;
  const colour = s.discoloration;
  const oxidation = 1 - fat;
  const w = t.indexWeights;
  const base = w.freshness * freshness + w.fat * fat + w.colour * colour + w.antiOxidation * (1 - oxidation);
  const anomalyPenalty = Math.min(t.maxAnomalyPenalty, t.anomalyPenalty * f.anomalies.length);
  return { freshness, fat, colour, oxidation, base, anomalyPenalty, score: clamp01(base - anomalyPenalty) };
}
