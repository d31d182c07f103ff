import type { FaultId } from "@esp-fleet/schemas";

/**
 * Everything the fridge diagnosis knows, as data (shared/domain/README.md "Fridge controller"): the
 * healthy baseline of each field — which depends on what the controller says it is doing (compressor
 * running or not, defrost, door) — the scale a deviation is measured in, and each fault's signature
 * (the centre of its ranges; fields not listed stay at the baseline).
 */
export const FRIDGE_FIELDS = ["t", "p_lo", "p_hi", "i_comp", "v_sup", "vib", "rh", "flow"] as const;
export type FridgeField = (typeof FRIDGE_FIELDS)[number];
export type Range = readonly [number, number];

export interface DiagnosisProfile {
  /** Healthy means with the compressor running, and the scale (≈ sd) of one unit of deviation. */
  running: Record<FridgeField, { mean: number; scale: number }>;
  /** Overrides when the compressor is stopped (thermostat off cycle, defrost): no current, no vibration, pressures equalise. */
  stopped: Partial<Record<FridgeField, { mean: number; scale: number }>>;
  /** Overrides during a defrost: the cabinet warms, humidity rises, air flow drops. */
  defrost: Partial<Record<FridgeField, { mean: number; scale: number }>>;
  /**
   * After a defrost the compressor pulls the warm cabinet back down over many readings: until the
   * temperature is back within `recoveredWithin` scales of the running mean, these overrides apply.
   */
  recovery: Partial<Record<FridgeField, { mean: number; scale: number }>>;
  recoveredWithin: number;
  /** Extra humidity / temperature allowed while the door is open. */
  door: Partial<Record<FridgeField, { mean: number; scale: number }>>;
  /** The 12 signatures: the ranges of the listed fields. */
  faults: Record<Exclude<FaultId, "capteur_defectueux">, Partial<Record<FridgeField, Range>>>;
  /** A cabinet temperature at or below this is the invalid-probe sentinel (−999). */
  invalidTemperatureBelow: number;
  /** A reading is normal when every field is within this many scales of its baseline. */
  normalWithin: number;
  /** A fault matches when cos² between the deviation and its signature direction reaches this… */
  minMatch: number;
  /** …and the deviation has gone at least this far along the signature (0 = baseline, 1 = signature centre). */
  minProgress: number;
  /** One reading is enough when the match and progress reach these; otherwise two agreeing readings. */
  instantMatch: number;
  instantProgress: number;
  /** Consecutive agreeing readings to raise (or change) a diagnosis. */
  raiseAfter: number;
  /** Consecutive normal readings to clear a diagnosis. */
  clearAfter: number;
}

export const DIAGNOSIS_PROFILE: DiagnosisProfile = {
  running: {
    t: { mean: 5, scale: 2 },
    p_lo: { mean: 2.5, scale: 0.3 },
    p_hi: { mean: 12, scale: 1 },
    i_comp: { mean: 15, scale: 2 },
    v_sup: { mean: 380, scale: 10 },
    vib: { mean: 0.5, scale: 0.15 },
    rh: { mean: 65, scale: 5 },
    flow: { mean: 100, scale: 10 },
  },
  stopped: {
    p_lo: { mean: 3.0, scale: 0.3 },
    p_hi: { mean: 10.5, scale: 1 },
    i_comp: { mean: 0.25, scale: 1 },
    vib: { mean: 0.1, scale: 0.15 },
  },
  defrost: {
    t: { mean: 12, scale: 5 },
    rh: { mean: 71, scale: 6 },
    flow: { mean: 80, scale: 10 },
  },
  recovery: {
    t: { mean: 12, scale: 5 },
  },
  recoveredWithin: 1.5,
  door: {
    t: { mean: 6, scale: 2.5 },
    rh: { mean: 73, scale: 6 },
  },
  faults: {
    surchauffe_compresseur: { t: [20, 40], i_comp: [25, 35], vib: [3, 8] },
    fuite_fluide: { p_lo: [0.3, 1.0], t: [15, 25], i_comp: [8, 12] },
    givrage_evaporateur: { t: [-10, 0], rh: [85, 95], flow: [30, 60] },
    panne_electrique: { v_sup: [100, 200], i_comp: [0, 0] },
    obstruction_conduit: { flow: [10, 30], p_lo: [1.0, 2.0] },
    defaillance_ventilateur: { flow: [5, 20], rh: [80, 95] },
    pression_anormale_HP: { p_hi: [25, 35], i_comp: [20, 28] },
    pression_anormale_BP: { p_lo: [4.0, 6.0], t: [10, 18] },
    defaut_degivrage: { t: [-15, -5], flow: [20, 50] },
    defaillance_thermostat: { t: [25, 35], i_comp: [18, 25] },
    defaillance_compresseur: { i_comp: [0, 0], vib: [2, 6] },
  },
  invalidTemperatureBelow: -900,
  normalWithin: 4,
  minMatch: 0.6,
  minProgress: 0.25,
  instantMatch: 0.85,
  instantProgress: 0.55,
  raiseAfter: 2,
  clearAfter: 1,
};
