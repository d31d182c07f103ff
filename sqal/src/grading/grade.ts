import type { Grade, SqalSample } from "@esp-fleet/schemas";
import { spectralFeatures, spectralScores, type SpectralFeatures, type SpectralScores } from "./spectral.ts";
import { DEFAULT_THRESHOLDS, type GradingThresholds, type LotRule } from "./thresholds.ts";
import { clamp01, tofFeatures, tofScores, type TofFeatures, type TofInput, type TofScores } from "./tof.ts";

export type AlertLevel = "critical" | "warning";
export interface Alert {
  level: AlertLevel;
  code: "low_score" | "reject" | "oxidation" | "freshness";
  message: string;
}

export interface GradeResult {
  tof: { features: TofFeatures; scores: TofScores };
  spectral: { features: SpectralFeatures; scores: SpectralScores };
  /** 0.6 × ToF + 0.4 × spectral, 0..1 */
  score: number;
  grade: Grade;
  alerts: Alert[];
}

/** The sample's grade from its final score (bands in `thresholds.grades`, best first). */
export function gradeFor(score: number, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): Grade {
  for (const band of thresholds.grades) if (score >= band.min) return band.grade;
  return "REJECT";
}

export function fuse(tofScore: number, spectralScore: number, thresholds: GradingThresholds = DEFAULT_THRESHOLDS): number {
  return clamp01(thresholds.fusion.tof * tofScore + thresholds.fusion.spectral * spectralScore);
}

export function alertsFor(
  score: number,
  grade: Grade,
  spectral: Pick<SpectralScores, "oxidation" | "freshness">,
  thresholds: GradingThresholds = DEFAULT_THRESHOLDS,
): Alert[] {
  const a = thresholds.alerts;
  const out: Alert[] = [];
  if (grade === "REJECT") out.push({ level: "critical", code: "reject", message: `sample rejected (score ${score.toFixed(3)})` });
  else if (score < a.criticalScoreBelow)
    out.push({ level: "critical", code: "low_score", message: `score ${score.toFixed(3)} < ${a.criticalScoreBelow}` });
  else if (score < a.warningScoreBelow)
    out.push({ level: "warning", code: "low_score", message: `score ${score.toFixed(3)} < ${a.warningScoreBelow}` });
  if (spectral.oxidation > a.warningOxidationAbove)
    out.push({
      level: "warning",
      code: "oxidation",
      message: `oxidation ${spectral.oxidation.toFixed(2)} > ${a.warningOxidationAbove}`,
    });
  if (spectral.freshness < a.warningFreshnessBelow)
    out.push({
      level: "warning",
      code: "freshness",
      message: `freshness ${spectral.freshness.toFixed(2)} < ${a.warningFreshnessBelow}`,
    });
  return out;
}

/**
 * Grade one validated sample. Pure: reads only `tof` and `spec` — never the `sim` ground truth.
 */
export function gradeSample(
  sample: { tof: TofInput; spec: SqalSample["spec"] },
  thresholds: GradingThresholds = DEFAULT_THRESHOLDS,
): GradeResult {
  const tf = tofFeatures(sample.tof, thresholds);
  const ts = tofScores(tf, thresholds);
  const sf = spectralFeatures(sample.spec, thresholds);
  const ss = spectralScores(sf, thresholds);
  const score = fuse(ts.score, ss.score, thresholds);
  const grade = gradeFor(score, thresholds);
  return {
    tof: { features: tf, scores: ts },
    spectral: { features: sf, scores: ss },
    score,
    grade,
    alerts: alertsFor(score, grade, ss, thresholds),
  };
}

export type LotDecision = "approved" | "rejected";

export interface LotVerdict {
  decision: LotDecision;
  reason: string;
  counts: Record<Grade, number>;
  goodShare: number;
}

/** The lot decision rule (ours; the predecessor had none): configurable through `LotRule`. */
export function decideLot(grades: readonly Grade[], rule: LotRule = DEFAULT_THRESHOLDS.lot): LotVerdict {
  const counts: Record<Grade, number> = { "A+": 0, A: 0, B: 0, C: 0, REJECT: 0 };
  for (const g of grades) counts[g]++;
  const total = grades.length;
  const good = grades.filter((g) => rule.good.includes(g)).length;
  const goodShare = total > 0 ? good / total : 0;
  const forbidden = rule.forbidden.filter((g) => counts[g] > 0);
  if (total === 0) return { decision: "rejected", reason: "no graded samples", counts, goodShare };
  if (forbidden.length > 0)
    return {
      decision: "rejected",
      reason: `${forbidden.map((g) => `${counts[g]} × ${g}`).join(", ")} present`,
      counts,
      goodShare,
    };
  if (goodShare < rule.minGoodShare)
    return {
      decision: "rejected",
      reason: `${(goodShare * 100).toFixed(0)} % graded ${rule.good.join("/")} < ${(rule.minGoodShare * 100).toFixed(0)} %`,
      counts,
      goodShare,
    };
  return { decision: "approved", reason: `${(goodShare * 100).toFixed(0)} % graded ${rule.good.join("/")}`, counts, goodShare };
}
