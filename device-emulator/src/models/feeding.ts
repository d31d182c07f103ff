import type { Rng } from "@esp-fleet/common/random";
import { GENETICS, type Genetics, type InspectionProfile } from "@esp-fleet/schemas";
import type { FeedingProfile } from "../profiles.ts";

/** The physical part of a feeding record (no envelope). */
export interface FeedingValues {
  lot: string;
  site: string;
  feeder_id: number;
  feeder: string;
  genetics: Genetics;
  day: number;
  days: number;
  moment: "morning" | "evening";
  dose_th: number;
  dose: number;
  weight: number;
  alive: number;
  initial: number;
  mortality: number;
  pen_t: number;
  pen_rh: number;
  ready: boolean;
}

/** `code_lot` = SITE + YYMM (UTC, simulated date) + 3-digit number (001-999). */
export function lotCode(site: string, at: number, number: number): string {
  const d = new Date(at);
  const yy = String(d.getUTCFullYear() % 100).padStart(2, "0");
  const mm = String(d.getUTCMonth() + 1).padStart(2, "0");
  return `${site}${yy}${mm}${String(number).padStart(3, "0")}`;
}

/**
 * The lot number of a feeding station's k-th lot (k from 0): stations of one site interleave so codes do
 * not collide while `ordinal + k·stations` < 1000 (the code has 3 digits by contract).
 */
export function lotNumber(ordinal: number, stations: number, k: number): number {
  return ((ordinal - 1 + k * Math.max(1, stations)) % 999) + 1;
}

/** Time (ms) of the next feeding strictly after `after`, at one of the profile's UTC hours. */
export function nextFeedingAt(profile: FeedingProfile, after: number): number {
  const day = Math.floor(after / 86_400_000) * 86_400_000;
  for (let d = 0; d < 3; d++)
    for (const h of profile.feedingHours) {
      const t = day + d * 86_400_000 + h * 3_600_000;
      if (t > after) return t;
    }
  return after + 43_200_000;
}

export function momentOf(profile: FeedingProfile, at: number): "morning" | "evening" {
  const h = new Date(at).getUTCHours();
  return h < (profile.feedingHours[1] + profile.feedingHours[0]) / 2 ? "morning" : "evening";
}

/** Inspection profile from the final weight and mortality (domain rule). */
export function inspectionProfileFor(
  profile: FeedingProfile,
  genetics: Genetics,
  weight: number,
  mortality: number,
): InspectionProfile {
  const g = profile.genetics[genetics];
  if (weight >= g.optimalWeight && mortality <= profile.profileMortality.premium) return "premium";
  if (weight >= g.minimumWeight && mortality <= profile.profileMortality.standard) return "standard";
  return "low";
}

/**
 * One lot of ducks in a feeding station: two feedings a day for 11–14 days, the day counter starting
 * at −1; weight gain, doses and mortality per the domain doc. `feed()` is called at each feeding time.
 */
export class FeedingLot {
  readonly code: string;
  readonly site: string;
  readonly feederId: number;
  readonly feederName: string;
  readonly genetics: Genetics;
  readonly days: number;
  readonly initial: number;
  // numbers from the start, so that V8 keeps fractional values in place (see FridgeModel.t)
  alive = 0;
  weight = 0;
  day = -1;
  feedings = 0;
  penT = 0;
  penRh = 0;
  finished = false;

  constructor(
    readonly profile: FeedingProfile,
    rng: Rng,
    site: string,
    code: string,
  ) {
    this.site = site;
    this.code = code;
    const local = profile.feeders.filter((f) => f.site === site);
    const feeder = rng.pick(local.length > 0 ? local : profile.feeders);
    this.feederId = feeder.id;
    this.feederName = feeder.name;
    let x = rng.next() * GENETICS.reduce((s, g) => s + profile.genetics[g].weight, 0);
    let genetics: Genetics = "mulard";
    for (const g of GENETICS) {
      x -= profile.genetics[g].weight;
      if (x < 0) {
        genetics = g;
        break;
      }
    }
    this.genetics = genetics;
    this.days = rng.int(profile.durationDays[0], profile.durationDays[1]);
    this.initial = rng.int(profile.ducks[0], profile.ducks[1]);
    this.alive = this.initial;
    const gm = profile.genetics[genetics];
    this.weight = rng.uniform(gm.startWeight[0], gm.startWeight[1]);
    this.penT = rng.uniform(profile.pen.temperature[0], profile.pen.temperature[1]);
    this.penRh = rng.uniform(profile.pen.humidity[0], profile.pen.humidity[1]);
  }

  get mortality(): number {
    return ((this.initial - this.alive) / this.initial) * 100;
  }

  /** The inspection profile the lot's final state implies. */
  get inspectionProfile(): InspectionProfile {
    return inspectionProfileFor(this.profile, this.genetics, this.weight, this.mortality);
  }

  feed(rng: Rng, moment: "morning" | "evening"): FeedingValues {
    const p = this.profile;
    if (this.feedings > 0 && moment === "morning") this.day++;
    this.feedings++;
    const dayIdx = Math.max(0, this.day);
    const frac = this.days > 1 ? Math.min(1, dayIdx / (this.days - 1)) : 1;
    const range = moment === "morning" ? p.dose.morning : p.dose.evening;
    const doseTh = range[0] + (range[1] - range[0]) * frac;
    const dose = doseTh * rng.uniform(p.dose.variation[0], p.dose.variation[1]);
    const gm = p.genetics[this.genetics];
    const gain =
      rng.uniform(gm.gainPerFeeding[0], gm.gainPerFeeding[1]) *
      (1.5 - (0.5 * dayIdx) / this.days) *
      rng.uniform(p.gainVariation[0], p.gainVariation[1]);
    this.weight += gain;
    const pDeath = p.mortality.base + p.mortality.perDay * dayIdx;
    let dead = 0;
    for (let i = 0; i < this.alive; i++) if (rng.next() < pDeath) dead++;
    this.alive -= dead;
    this.penT = Math.min(p.pen.temperature[1], Math.max(p.pen.temperature[0], this.penT + rng.normal(0, 0.3)));
    this.penRh = Math.min(p.pen.humidity[1], Math.max(p.pen.humidity[0], this.penRh + rng.normal(0, 1.5)));
    const ready = moment === "evening" && this.day >= this.days - 1;
    if (ready) this.finished = true;
    return {
      lot: this.code,
      site: this.site,
      feeder_id: this.feederId,
      feeder: this.feederName,
      genetics: this.genetics,
      day: this.day,
      days: this.days,
      moment,
      dose_th: Math.round(doseTh * 10) / 10,
      dose: Math.round(dose * 10) / 10,
      weight: Math.round(this.weight * 10) / 10,
      alive: this.alive,
      initial: this.initial,
      mortality: Math.round(this.mortality * 100) / 100,
      pen_t: Math.round(this.penT * 10) / 10,
      pen_rh: Math.round(this.penRh * 10) / 10,
      ready,
    };
  }
}
