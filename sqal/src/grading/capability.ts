import { DEFAULT_THRESHOLDS, type GradingThresholds } from "./thresholds.ts";

export interface Capability {
  n: number;
  mean: number;
  sd: number;
  /** (USL − LSL) / 6σ; null when σ = 0 or fewer than 2 samples */
  cp: number | null;
  /** min(USL − μ, μ − LSL) / 3σ */
  cpk: number | null;
}

/** Process capability of a measure (thickness, mm) against the LSL/USL of the thresholds. */
export function capability(values: readonly number[], thresholds: GradingThresholds = DEFAULT_THRESHOLDS): Capability {
  const { lslMm: lsl, uslMm: usl } = thresholds.capability;
  const n = values.length;
  if (n === 0) return { n, mean: 0, sd: 0, cp: null, cpk: null };
  let sum = 0;
  for (const v of values) sum += v;
  const mean = sum / n;
  let ss = 0;
  for (const v of values) ss += (v - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(ss / (n - 1)) : 0;
  if (!(sd > 0)) return { n, mean, sd, cp: null, cpk: null };
  return { n, mean, sd, cp: (usl - lsl) / (6 * sd), cpk: Math.min(usl - mean, mean - lsl) / (3 * sd) };
}

/** The last `window` values of one line (station), for a running Cp/Cpk. */
export class CapabilityWindow {
  readonly #values: number[] = [];
  constructor(
    readonly window = DEFAULT_THRESHOLDS.capability.window,
    readonly thresholds: GradingThresholds = DEFAULT_THRESHOLDS,
  ) {}
  push(v: number): void {
    this.#values.push(v);
    if (this.#values.length > this.window) this.#values.shift();
  }
  get(): Capability {
    return capability(this.#values, this.thresholds);
  }
}
