import type { Rng } from "@esp-fleet/common/random";

/**
 * Injectable line noise for the emulated side of a serial link: independent bit flips at `bitErrorRate`
 * per bit, and garbage bursts (random bytes, 0x00 included) inserted before a write with probability
 * `burstProb`. Deterministic for a given seed. Counts what it did so tests can account for every frame.
 */
export interface NoiseOptions {
  /** probability that any one bit is flipped, e.g. 1e-4 */
  bitErrorRate?: number;
  /** probability that a write is preceded by a burst of garbage */
  burstProb?: number;
  /** burst length range in bytes */
  burstMin?: number;
  burstMax?: number;
}

export interface NoiseCounters {
  bitFlips: number;
  /** writes that had at least one bit flipped */
  corruptedWrites: number;
  bursts: number;
  burstBytes: number;
}

export class LineNoise {
  readonly counters: NoiseCounters = { bitFlips: 0, corruptedWrites: 0, bursts: 0, burstBytes: 0 };
  readonly #rng: Rng;
  readonly #ber: number;
  readonly #burstProb: number;
  readonly #burstMin: number;
  readonly #burstMax: number;

  constructor(rng: Rng, opts: NoiseOptions = {}) {
    this.#rng = rng;
    this.#ber = opts.bitErrorRate ?? 0;
    this.#burstProb = opts.burstProb ?? 0;
    this.#burstMin = opts.burstMin ?? 1;
    this.#burstMax = Math.max(this.#burstMin, opts.burstMax ?? 64);
  }

  get active(): boolean {
    return this.#ber > 0 || this.#burstProb > 0;
  }

  /** The bytes as they arrive at the far end. Never modifies `bytes`. */
  apply(bytes: Uint8Array): Uint8Array {
    if (!this.active) return bytes;
    let out = bytes;
    if (this.#ber > 0) {
      // Geometric gaps between flipped bits: one random draw per flip, not per bit.
      const bits = bytes.length * 8;
      let pos = this.#gap();
      if (pos < bits) {
        out = Uint8Array.from(bytes);
        this.counters.corruptedWrites++;
        while (pos < bits) {
          out[pos >> 3]! ^= 1 << (pos & 7);
          this.counters.bitFlips++;
          pos += 1 + this.#gap();
        }
      }
    }
    if (this.#burstProb > 0 && this.#rng.chance(this.#burstProb)) {
      const n = this.#rng.int(this.#burstMin, this.#burstMax);
      const burst = new Uint8Array(n + out.length);
      for (let i = 0; i < n; i++) burst[i] = this.#rng.int(0, 255);
      burst.set(out, n);
      this.counters.bursts++;
      this.counters.burstBytes += n;
      out = burst;
    }
    return out;
  }

  #gap(): number {
    const u = 1 - this.#rng.next(); // (0, 1]
    return Math.floor(Math.log(u) / Math.log(1 - this.#ber));
  }
}
