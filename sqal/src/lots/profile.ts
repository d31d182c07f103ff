import type { Genetics, InspectionProfile } from "@esp-fleet/schemas";

/**
 * Inspection profile from a lot's final mean weight and mortality (shared/domain/README.md "Feeding
 * lots"): at or above the optimal weight with mortality ≤ 3 % → premium; at or above the minimum with
 * mortality ≤ 5 % → standard; else low.
 */
export interface ProfileRule {
  weights: Record<Genetics, { optimal: number; minimum: number }>;
  premiumMaxMortality: number;
  standardMaxMortality: number;
}

export const DEFAULT_PROFILE_RULE: ProfileRule = Object.freeze({
  weights: {
    mulard: { optimal: 6500, minimum: 5800 },
    barbarie: { optimal: 6000, minimum: 5500 },
    pekin: { optimal: 6200, minimum: 5600 },
  },
  premiumMaxMortality: 3,
  standardMaxMortality: 5,
});

export function inspectionProfile(
  genetics: Genetics,
  finalWeightG: number,
  mortalityPct: number,
  rule: ProfileRule = DEFAULT_PROFILE_RULE,
): InspectionProfile {
  const w = rule.weights[genetics];
  if (finalWeightG >= w.optimal && mortalityPct <= rule.premiumMaxMortality) return "premium";
  if (finalWeightG >= w.minimum && mortalityPct <= rule.standardMaxMortality) return "standard";
  return "low";
}
