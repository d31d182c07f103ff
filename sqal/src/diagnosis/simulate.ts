import { createRng } from "@esp-fleet/common/random";
import { FridgeModel } from "@esp-fleet/device-emulator/models/fridge";
import { FRIDGE_PROFILE } from "@esp-fleet/device-emulator/profiles";
import type { FaultId } from "@esp-fleet/schemas";
import { DiagnosisScorer, type DiagnosisReport } from "./score.ts";
import { FleetDiagnosis } from "./tracker.ts";
import { DIAGNOSIS_PROFILE, type DiagnosisProfile } from "./profile.ts";

export interface SeededRunOptions {
  seed: number;
  fridges: number;
  readings: number;
  intervalS: number;
  faultProb: number;
  profile?: DiagnosisProfile;
}

/**
 * Run the emulator's fridge model (thermal physics, duty cycle, doors, defrost, faults fading in) for
 * `fridges` × `readings` readings, diagnose every reading and score against the model's true fault.
 * Deterministic for a seed. Used by `esp-fleet sqal diagnosis-report` and docs/diagnosis.md.
 */
export function runSeededDiagnosis(o: SeededRunOptions): DiagnosisReport {
  const rng = createRng(o.seed);
  const diag = new FleetDiagnosis(o.profile ?? DIAGNOSIS_PROFILE);
  const scorer = new DiagnosisScorer(3);
  const fridges = Array.from({ length: o.fridges }, (_, i) => {
    const r = rng.fork(`fridge-${i}`);
    return { dev: `FRIDGE_${i}`, rng: r, model: new FridgeModel(FRIDGE_PROFILE, r) };
  });
  for (let k = 0; k < o.readings; k++) {
    for (const f of fridges) {
      const before = f.model.fault;
      const v = f.model.read(f.rng, o.intervalS, o.faultProb);
      let truth: FaultId | null = f.model.fault ?? before;
      for (const tr of f.model.takeTransitions()) if (tr.type === "onset") truth = tr.fault;
      const step = diag.observe(f.dev, v);
      scorer.record(f.dev, truth, step.state);
    }
  }
  return scorer.report();
}
