/**
 * How the graders grade the emulator's SQAL model, tier by tier: `npx tsx sqal/scripts/tier-grades.ts [n] [oxidationBlue]`.
 * Prints a Markdown table (rows: true tier; columns: grade shares) for docs/sqal.md and recalibration.
 */
import { createRng } from "@esp-fleet/common/random";
import { GRADES, QUALITY_TIERS, type Grade, type QualityTier } from "@esp-fleet/schemas";
import { SQAL_PROFILE, drawTier, measureSample } from "@esp-fleet/device-emulator";
import { gradeSample } from "../src/grading/index.ts";

const n = Number(process.argv[2] ?? 5000);
const ob = process.argv[3] === undefined ? SQAL_PROFILE.spectral.oxidationBlue : Number(process.argv[3]);
const profile = { ...SQAL_PROFILE, spectral: { ...SQAL_PROFILE.spectral, oxidationBlue: ob } };
const rng = createRng(2025);
const weights = Object.fromEntries(QUALITY_TIERS.map((t) => [t, SQAL_PROFILE.tiers[t].weight])) as Record<QualityTier, number>;
const table = new Map<QualityTier, Record<Grade, number>>(
  QUALITY_TIERS.map((t) => [t, { "A+": 0, A: 0, B: 0, C: 0, REJECT: 0 }]),
);
const totals: Record<Grade, number> = { "A+": 0, A: 0, B: 0, C: 0, REJECT: 0 };
for (let i = 0; i < n; i++) {
  const tier = drawTier(rng, weights);
  const m = measureSample(rng, profile, tier);
  const g = gradeSample({ tof: m.tof, spec: m.spec }).grade;
  table.get(tier)![g]++;
  totals[g]++;
}
const pct = (x: number, of: number) => (of ? `${((100 * x) / of).toFixed(1)} %` : "–");
console.log(`${n} samples, emulator SQAL_PROFILE with spectral.oxidationBlue = ${ob}\n`);
console.log(`| true tier (share) | ${GRADES.join(" | ")} |`);
console.log(`|---|${GRADES.map(() => "---:").join("|")}|`);
for (const t of QUALITY_TIERS) {
  const row = table.get(t)!;
  const sum = GRADES.reduce((a, g) => a + row[g], 0);
  console.log(`| ${t} (${(weights[t] * 100).toFixed(0)} %) | ${GRADES.map((g) => pct(row[g], sum)).join(" | ")} |`);
}
console.log(`| **all** | ${GRADES.map((g) => `**${pct(totals[g], n)}**`).join(" | ")} |`);
