/**
 * The fleet scheduler as it was before the bucket queue (a binary min-heap with one entry object per
 * firing), kept verbatim as the reference model of scheduler.test.ts: the new scheduler must fire the same
 * entries in the same order.
 */
import type { Clock, Timer } from "@esp-fleet/common/clock";

/**
 * One timer queue for a whole fleet: a binary min-heap of (time, target, slot) entries driven by a single
 * clock timer, instead of one `setTimeout` per device per period. Targets are objects with an
 * `onTimer(slot, at)` method, so scheduling allocates one small entry and no closure.
 *
 * Entries due at the same time fire in scheduling order. A batch stops after `budgetMs` of wall time and
 * yields to the event loop (re-arming at 0 ms), so 10,000 devices never hold the loop for long.
 *
 * With `quantum` > 0 (clock ms) the clock timer is only ever armed on multiples of `quantum`: entries
 * fire up to one quantum late, in the same order, in batches — 10,000 devices on a 1 s period cost 100
 * timer wake-ups per second with a 10 ms quantum instead of ~1,000 with each device's own instant.
 */
export interface TimerTarget {
  /** `at` is the scheduled (nominal) time on the scheduler's clock. Must not throw; errors are counted. */
  onTimer(slot: number, at: number): void;
}

export interface ScheduledEntry {
  at: number;
  seq: number;
  target: TimerTarget;
  slot: number;
  cancelled: boolean;
}

export class Scheduler {
  readonly clock: Clock;
  #heap: ScheduledEntry[] = [];
  #seq = 0;
  #armed: Timer | undefined;
  #armedAt = Infinity;
  #budgetMs: number;
  #quantum: number;
  /** How a batch over budget continues: e.g. `setImmediate` (after the I/O poll); default a 0 ms clock timer. */
  #yieldFn: ((fn: () => void) => void) | undefined;
  #stopped = false;
  #fire = (): void => this.#run();
  /** Exceptions thrown by targets (each is a bug; the scheduler keeps going). */
  errors = 0;
  lastError: unknown;

  constructor(clock: Clock, opts: { budgetMs?: number; quantum?: number; yieldFn?: (fn: () => void) => void } = {}) {
    this.clock = clock;
    this.#budgetMs = opts.budgetMs ?? 8;
    this.#yieldFn = opts.yieldFn;
    this.#quantum = opts.quantum ?? 0;
  }

  #align(at: number): number {
    const q = this.#quantum;
    return q > 0 ? Math.ceil(at / q) * q : at;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** Schedule `target.onTimer(slot, at)` at clock time `at`. Returns the entry; `cancel(entry)` voids it. */
  schedule(target: TimerTarget, slot: number, at: number): ScheduledEntry {
    const entry: ScheduledEntry = { at, seq: this.#seq++, target, slot, cancelled: false };
    this.#push(entry);
    if (!this.#stopped && at < this.#armedAt) {
      const aligned = this.#align(at);
      if (aligned < this.#armedAt) this.#arm(aligned);
    }
    return entry;
  }

  cancel(entry: ScheduledEntry | undefined): void {
    if (entry) entry.cancelled = true;
  }

  /** Stop firing (entries stay queued but never run). */
  stop(): void {
    this.#stopped = true;
    this.#armed?.cancel();
    this.#armed = undefined;
    this.#armedAt = Infinity;
  }

  #arm(at: number): void {
    this.#armed?.cancel();
    this.#armedAt = at;
    this.#armed = this.clock.setTimeout(this.#fire, at - this.clock.now());
  }

  #run(): void {
    this.#armed = undefined;
    this.#armedAt = Infinity;
    if (this.#stopped) return;
    const now = this.clock.now();
    const started = performance.now();
    let n = 0;
    const heap = this.#heap;
    while (heap.length > 0) {
      const top = heap[0] as ScheduledEntry;
      if (top.at > now) break;
      this.#pop();
      if (top.cancelled) continue;
      try {
        top.target.onTimer(top.slot, top.at);
      } catch (e) {
        this.errors++;
        this.lastError = e;
      }
      if (this.#stopped) return;
      if ((++n & 15) === 0 && performance.now() - started > this.#budgetMs) {
        // Yield to I/O; continue with what is due right away.
        if (this.#yieldFn) {
          // (a target may have armed a clock timer during this batch)
          (this.#armed as Timer | undefined)?.cancel();
          this.#armed = undefined;
          this.#armedAt = -Infinity; // nothing re-arms until the continuation runs
          this.#yieldFn(this.#fire);
        } else this.#arm(this.clock.now());
        return;
      }
    }
    const next = heap[0];
    if (next && next.at < this.#armedAt) this.#arm(this.#align(next.at));
  }

  #less(a: ScheduledEntry, b: ScheduledEntry): boolean {
    return a.at < b.at || (a.at === b.at && a.seq < b.seq);
  }

  #push(e: ScheduledEntry): void {
    const h = this.#heap;
    let i = h.length;
    h.push(e);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p] as ScheduledEntry;
      if (!this.#less(e, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = e;
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop() as ScheduledEntry;
    if (h.length === 0) return;
    let i = 0;
    const n = h.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && this.#less(h[r] as ScheduledEntry, h[l] as ScheduledEntry)) c = r;
      const child = h[c] as ScheduledEntry;
      if (!this.#less(child, last)) break;
      h[i] = child;
      i = c;
    }
    h[i] = last;
  }
}
