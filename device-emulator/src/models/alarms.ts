import type { FridgeField, FridgeProfile } from "../profiles.ts";

/** The fields a fridge controller checks against its validation bounds, in bit order. */
export const ALARM_FIELDS: readonly FridgeField[] = ["t", "p_lo", "p_hi", "i_comp", "v_sup", "vib", "rh", "flow"];

/**
 * Alarm debouncing as a controller does it: an alarm is raised on the first reading outside the
 * validation bounds, and cleared only after `clearReadings` consecutive readings back inside the bounds
 * narrowed by `clearMargin` × the bounds' span (hysteresis). Without it a value that hovers around a
 * bound — high pressure of 25–35 bar during `pression_anormale_HP` against a 30 bar bound — raised and
 * cleared an alarm on almost every reading. Pure: the state is two numbers (the active-alarm mask and a
 * 4-bit in-range streak per field packed in one integer, so `clearReadings` ≤ 15), no time, no I/O.
 *
 * `update()` reports what changed as bit masks over `ALARM_FIELDS` (`raised`, `cleared`), so the caller
 * publishes one event per bit and nothing is allocated per reading.
 */
export class AlarmDebouncer {
  readonly #bounds: FridgeProfile["bounds"];
  readonly #margin: Float64Array;
  readonly #clearReadings: number;
  /** Fields whose alarm is active. */
  mask = 0;
  /** Set by the last `update()`: alarms raised / cleared by that reading. */
  raised = 0;
  cleared = 0;
  /** Consecutive readings back in range: 4 bits per field (bits 4i … 4i+3). */
  #streaks = 0;

  constructor(profile: Pick<FridgeProfile, "bounds" | "alarm">) {
    this.#bounds = profile.bounds;
    this.#clearReadings = Math.max(1, Math.min(15, Math.floor(profile.alarm.clearReadings)));
    this.#margin = marginsFor(profile);
  }

  /** Forget every alarm (a reboot: the controller's RAM is lost). */
  reset(): void {
    this.mask = this.raised = this.cleared = this.#streaks = 0;
  }

  update(v: Readonly<Record<FridgeField, number>>): void {
    let raised = 0;
    let cleared = 0;
    let streaks = this.#streaks;
    for (let i = 0; i < ALARM_FIELDS.length; i++) {
      const f = ALARM_FIELDS[i] as FridgeField;
      const b = this.#bounds[f];
      const x = v[f];
      const bit = 1 << i;
      if (!(this.mask & bit)) {
        if (x < b[0] || x > b[1]) raised |= bit;
        continue;
      }
      const shift = 4 * i;
      const m = this.#margin[i] as number;
      const n = x >= b[0] + m && x <= b[1] - m ? ((streaks >>> shift) & 15) + 1 : 0;
      if (n >= this.#clearReadings) cleared |= bit;
      streaks = (streaks & ~(15 << shift)) | ((n >= this.#clearReadings ? 0 : n) << shift);
    }
    this.#streaks = streaks;
    this.mask = (this.mask | raised) & ~cleared;
    this.raised = raised;
    this.cleared = cleared;
  }
}

const marginCache = new WeakMap<object, Float64Array>();

/** Hysteresis per field in the field's unit (shared by every device of one profile). */
function marginsFor(profile: Pick<FridgeProfile, "bounds" | "alarm">): Float64Array {
  let m = marginCache.get(profile);
  if (!m) {
    m = new Float64Array(ALARM_FIELDS.length);
    for (let i = 0; i < ALARM_FIELDS.length; i++) {
      const b = profile.bounds[ALARM_FIELDS[i] as FridgeField];
      m[i] = Math.max(0, profile.alarm.clearMargin) * (b[1] - b[0]);
    }
    marginCache.set(profile, m);
  }
  return m;
}
