import { classifyReading, type DiagnosisLabel, type FridgeObservation, type ReadingClass } from "./classify.ts";
import { DIAGNOSIS_PROFILE, type DiagnosisProfile } from "./profile.ts";
import type { FaultId } from "@esp-fleet/schemas";

export interface DiagnosisEvent {
  type: "raised" | "cleared" | "changed";
  fault: FaultId;
  /** the fault replaced, for `changed` */
  previous?: FaultId;
  confidence: number;
}

export interface DiagnosisStep {
  /** the diagnosis after this reading */
  state: DiagnosisLabel;
  confidence: number;
  reading: ReadingClass;
  event?: DiagnosisEvent;
}

/**
 * One fridge's diagnosis with hysteresis: a fault is raised after `raiseAfter` agreeing readings, or at
 * once when a single reading is decisive (a clear match, well along its signature); it is cleared after
 * `clearAfter` normal readings; an abnormal reading that matches nothing holds the current state.
 * Pure state machine: `observe(reading) → step`.
 */
export class FridgeDiagnoser {
  state: DiagnosisLabel = "normal";
  confidence = 1;
  #candidate: DiagnosisLabel | undefined;
  #count = 0;
  #recovering = false;

  constructor(readonly profile: DiagnosisProfile = DIAGNOSIS_PROFILE) {}

  observe(o: FridgeObservation): DiagnosisStep {
    const running = this.profile.running.t;
    if (o.defrost) this.#recovering = true;
    else if (this.#recovering && Math.abs(o.t - running.mean) <= this.profile.recoveredWithin * running.scale)
      this.#recovering = false;
    const r = classifyReading({ ...o, recovering: this.#recovering && !o.defrost }, this.profile);
    if (r.label === "unknown") {
      this.#candidate = undefined;
      this.#count = 0;
      return { state: this.state, confidence: this.confidence, reading: r };
    }
    if (r.label === this.state) {
      this.#candidate = undefined;
      this.#count = 0;
      this.confidence = r.label === "normal" ? 1 : Math.max(this.confidence, r.confidence);
      return { state: this.state, confidence: this.confidence, reading: r };
    }
    if (r.label === this.#candidate) this.#count++;
    else {
      this.#candidate = r.label;
      this.#count = 1;
    }
    const needed = r.label === "normal" ? this.profile.clearAfter : this.profile.raiseAfter;
    if (this.#count < needed && !(r.decisive && r.label !== "normal")) {
      return { state: this.state, confidence: this.confidence, reading: r };
    }
    const previous = this.state;
    this.state = r.label;
    this.confidence = r.label === "normal" ? 1 : r.confidence;
    this.#candidate = undefined;
    this.#count = 0;
    let event: DiagnosisEvent;
    if (r.label === "normal") event = { type: "cleared", fault: previous as FaultId, confidence: r.confidence };
    else if (previous === "normal") event = { type: "raised", fault: r.label, confidence: r.confidence };
    else event = { type: "changed", fault: r.label, previous, confidence: r.confidence };
    return { state: this.state, confidence: this.confidence, reading: r, event };
  }
}

/** Diagnosers for many fridges, keyed by device id. */
export class FleetDiagnosis {
  readonly #fridges = new Map<string, FridgeDiagnoser>();
  constructor(readonly profile: DiagnosisProfile = DIAGNOSIS_PROFILE) {}
  observe(dev: string, o: FridgeObservation): DiagnosisStep {
    let d = this.#fridges.get(dev);
    if (!d) {
      d = new FridgeDiagnoser(this.profile);
      this.#fridges.set(dev, d);
    }
    return d.observe(o);
  }
  states(): { dev: string; state: DiagnosisLabel; confidence: number }[] {
    return [...this.#fridges].map(([dev, d]) => ({ dev, state: d.state, confidence: d.confidence }));
  }
}
