import { hashString, type Rng } from "@esp-fleet/common/random";

/**
 * The same generator as `createRng` from `@esp-fleet/common/random` (mulberry32 + Box–Muller with a
 * spare), sequence for sequence, but as a class: its methods live on the prototype, so a device's two
 * generators cost one small object each instead of a context and seven closures (which, under tsx's
 * keep-names transform, each also get a dictionary-mode `name` property: ~2.5 KB per device).
 * A test checks that both produce the same values for the same seed.
 */
export class SeededRng implements Rng {
  #state: number;
  #spare = 0;
  #hasSpare = false;

  constructor(seed: number | string) {
    this.#state = ((typeof seed === "string" ? hashString(seed) : seed >>> 0) || 0x9e3779b9) | 0;
  }

  next(): number {
    // The state is kept as a signed 32-bit integer (`| 0`), mulberry32's unsigned one with the same bits:
    // every value is then a small integer to V8, stored in place, where half the unsigned ones (≥ 2³¹)
    // would each be a new heap number — one per call, the last of which lives until the device's next
    // reading and is promoted as garbage (docs/benchmarks.md, sixteenth session). The arithmetic below
    // reads only the bits, so the sequence is the same.
    this.#state = (this.#state + 0x6d2b79f5) | 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  normal(mean: number, sd: number): number {
    if (this.#hasSpare) {
      this.#hasSpare = false;
      return mean + sd * this.#spare;
    }
    let u = 0;
    while (u === 0) u = this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.#spare = r * Math.sin(2 * Math.PI * v);
    this.#hasSpare = true;
    return mean + sd * r * Math.cos(2 * Math.PI * v);
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("pick from an empty list");
    return items[Math.floor(this.next() * items.length)] as T;
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  fork(label: string | number): Rng {
    return new SeededRng((hashString(String(label)) ^ Math.floor(this.next() * 4294967296)) >>> 0);
  }
}
