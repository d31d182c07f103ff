import type { Rng } from "@esp-fleet/common/random";
import { FAULT_IDS, type Envelope, type FaultId, type FridgeReading } from "@esp-fleet/schemas";
import type { FridgeField, FridgeProfile } from "../profiles.ts";

/** The physical part of a fridge reading (no envelope, no ground truth), every field present. */
export type FridgeValues = Required<Omit<FridgeReading, keyof Envelope | "sim">>;

export type FaultTransition =
  { type: "onset"; fault: FaultId; readings: number; injected: boolean } | { type: "cleared"; fault: FaultId };

const round = (x: number, digits: number): number => {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
};

/**
 * A cold room: cabinet temperature with thermal inertia, a thermostat driving the compressor
 * (hysteresis ⇒ duty cycle), random door openings, a periodic defrost, and the 12 faults as overlays
 * that fade in over a few readings where physics says so. Pure: all randomness from the given `Rng`,
 * all time from the `dtS` argument.
 */
export class FridgeModel {
  readonly profile: FridgeProfile;
  // The fractional fields rewritten every reading start as numbers (set for real in the constructor): a
  // field declared without an initializer is first `undefined`, and V8 then keeps it as a tagged field in
  // which every new fractional value is a new heap number — one that lives until the next reading, a second
  // later, and is promoted as garbage. A field that starts as a number holds its value in place
  // (docs/benchmarks.md, sixteenth session).
  t = 0;
  comp = true;
  doorLeftS = 0;
  sinceDefrostS = 0;
  fault: FaultId | null = null;
  faultLeft = 0;
  faultAge = 0;
  /** The fault that shaped the last reading (simulation ground truth for it), or null. */
  lastReadingFault: FaultId | null = null;
  #transitions: FaultTransition[] = [];
  #injected = false;

  constructor(profile: FridgeProfile, rng: Rng) {
    this.profile = profile;
    const th = profile.thermal;
    this.t = th.setpoint + rng.uniform(-th.hysteresis, th.hysteresis);
    this.sinceDefrostS = rng.uniform(0, th.defrostEveryS);
  }

  get defrost(): boolean {
    return this.sinceDefrostS < this.profile.thermal.defrostDurationS;
  }

  /**
   * Start `fault` now for `readings` readings (replacing any active fault). `injected`: on command (an
   * operator's act, announced as `sim_fault_*` events) rather than drawn by the random fault process, whose
   * ground truth travels only in each reading's `sim.fault` (docs/decisions.md).
   */
  inject(fault: FaultId, readings: number, injected = true): void {
    if (this.fault && this.#injected) this.#transitions.push({ type: "cleared", fault: this.fault });
    this.fault = fault;
    this.faultLeft = readings;
    this.faultAge = 0;
    this.#injected = injected;
    if (injected) this.#transitions.push({ type: "onset", fault, readings, injected });
  }

  clear(): FaultId | null {
    const was = this.fault;
    if (was && this.#injected) this.#transitions.push({ type: "cleared", fault: was });
    this.fault = null;
    this.faultLeft = 0;
    this.#injected = false;
    return was;
  }

  /** Onsets/clearances of injected faults since the last call (for the `sim_fault_*` events). */
  takeTransitions(): FaultTransition[] {
    if (this.#transitions.length === 0) return NO_TRANSITIONS;
    const t = this.#transitions;
    this.#transitions = [];
    return t;
  }

  /** Advance the physics by `dtS` simulated seconds and take one reading. */
  read(rng: Rng, dtS: number, faultProb: number): FridgeValues {
    const p = this.profile;
    // Random fault process: one draw per reading, as the predecessor did.
    if (this.fault === null) {
      if (rng.next() < faultProb) {
        const fault = rng.pick(FAULT_IDS);
        this.inject(fault, rng.int(p.faultReadings[0], p.faultReadings[1]), false);
      }
    }
    this.#integrate(rng, dtS);
    const n = p.normal;
    const comp = this.comp;
    const defrost = this.defrost;
    const door = this.doorLeftS > 0;
    const v: FridgeValues = {
      t: this.t + rng.normal(0, 0.25),
      t_evap: defrost
        ? this.t + 6 + rng.normal(0, 0.5)
        : comp
          ? this.t - p.thermal.evapOffset + rng.normal(0, 0.5)
          : this.t - 2 + rng.normal(0, 0.3),
      p_lo: comp ? rng.normal(n.p_lo.mean, n.p_lo.sd * 0.7) : rng.normal(n.p_lo.mean + 0.5, n.p_lo.sd * 0.5),
      p_hi: comp ? rng.normal(n.p_hi.mean, n.p_hi.sd * 0.8) : rng.normal(n.p_hi.mean - 1.5, n.p_hi.sd * 0.5),
      i_comp: comp ? rng.normal(n.i_comp.mean, n.i_comp.sd * 0.9) : rng.uniform(0.1, 0.4),
      v_sup: rng.normal(n.v_sup.mean, n.v_sup.sd),
      vib: comp ? rng.normal(n.vib.mean, n.vib.sd) : rng.uniform(0.05, 0.15),
      rh: rng.normal(n.rh.mean + (door ? 8 : 0) + (defrost ? 6 : 0), n.rh.sd * 0.8),
      flow: rng.normal(defrost ? n.flow.mean * 0.8 : n.flow.mean, n.flow.sd),
      door,
      comp,
      defrost,
    };
    if (this.fault !== null) this.#overlay(rng, v, this.fault);
    v.t = round(v.t, 2);
    v.t_evap = round(v.t_evap, 2);
    v.p_lo = round(Math.max(0, v.p_lo), 2);
    v.p_hi = round(Math.max(0, v.p_hi), 2);
    v.i_comp = round(Math.max(0, v.i_comp), 2);
    v.v_sup = round(Math.max(0, v.v_sup), 1);
    v.vib = round(Math.max(0, v.vib), 2);
    v.rh = round(Math.min(100, Math.max(0, v.rh)), 1);
    v.flow = round(Math.max(0, v.flow), 1);
    this.lastReadingFault = this.fault;
    if (this.fault !== null) {
      this.faultAge++;
      if (--this.faultLeft <= 0) this.clear();
    }
    return v;
  }

  #overlay(rng: Rng, v: FridgeValues, fault: FaultId): void {
    const sig = this.profile.faults[fault];
    const w = sig.onsetReadings === 0 ? 1 : Math.min(1, (this.faultAge + 1) / (sig.onsetReadings + 1));
    for (const key in sig.fields) {
      const field = key as FridgeField;
      const range = sig.fields[field];
      if (!range) continue;
      const target = rng.uniform(range[0], range[1]);
      v[field] = v[field] + (target - v[field]) * w;
    }
    if (sig.fixed) for (const key in sig.fixed) v[key as FridgeField] = sig.fixed[key as FridgeField] as number;
    if (sig.compressorRunning !== undefined) v.comp = sig.compressorRunning;
  }

  #integrate(rng: Rng, dtS: number): void {
    const th = this.profile.thermal;
    // Sub-steps of at most 10 s; beyond 2 h of simulated time per reading the physics is coarser.
    const steps = Math.min(720, Math.max(1, Math.ceil(dtS / 10)));
    const h = dtS / steps;
    const doorChancePerStep = (th.doorPerHour * h) / 3600;
    for (let i = 0; i < steps; i++) {
      this.sinceDefrostS += h;
      if (this.sinceDefrostS >= th.defrostEveryS) this.sinceDefrostS = 0;
      const defrost = this.sinceDefrostS < th.defrostDurationS;
      if (this.doorLeftS > 0) this.doorLeftS = Math.max(0, this.doorLeftS - h);
      else if (rng.next() < doorChancePerStep) this.doorLeftS = rng.uniform(th.doorDurationS[0], th.doorDurationS[1]);
      // Thermostat with hysteresis; the compressor is off during defrost.
      if (defrost) this.comp = false;
      else if (this.t > th.setpoint + th.hysteresis) this.comp = true;
      else if (this.t < th.setpoint - th.hysteresis) this.comp = false;
      let dT = (th.ambient - this.t) / th.tauLeakS;
      if (this.comp) dT -= th.coolRate;
      if (this.doorLeftS > 0) dT += th.doorWarmRate;
      if (defrost) dT += 0.002;
      this.t += dT * h;
    }
  }
}

const NO_TRANSITIONS: FaultTransition[] = [];
