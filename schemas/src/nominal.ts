import type { As7341Channel } from "./domain.ts";
import type { FridgeReading } from "./messages.ts";

/**
 * Nominal values from the domain facts (shared/domain/README.md), in one place for every test, probe,
 * benchmark and model that needs "a normal reading": a healthy fridge at its means with the compressor
 * running, and the AS7341 reference counts (gain ×4, 100 ms integration).
 */
export const NOMINAL_FRIDGE: Readonly<Omit<FridgeReading, "v" | "dev" | "boot" | "seq" | "ts" | "t_evap" | "sim">> =
  Object.freeze({
    t: 5,
    p_lo: 2.5,
    p_hi: 12,
    i_comp: 15,
    v_sup: 380,
    vib: 0.5,
    rh: 65,
    flow: 100,
    door: false,
    comp: true,
    defrost: false,
  });

export const AS7341_REFERENCE_COUNTS: Readonly<Record<As7341Channel, number>> = Object.freeze({
  f1: 400,
  f2: 600,
  f3: 500,
  f4: 1900,
  f5: 900,
  f6: 600,
  f7: 1150,
  f8: 750,
  clear: 6500,
  nir: 600,
});
