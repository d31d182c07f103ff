/**
 * Time arrives through this interface, never from `Date.now()`/`setTimeout` in core code, so tests can
 * run an hour of device life in milliseconds and the emulator can accelerate simulated time.
 */
export interface Timer {
  cancel(): void;
}

export interface Clock {
  /** Current time, ms since the Unix epoch (simulated time for an accelerated clock). */
  now(): number;
  /** Run `fn` after `ms` of this clock's time. */
  setTimeout(fn: () => void, ms: number): Timer;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout(fn, ms) {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return { cancel: () => clearTimeout(t) };
  },
};

/**
 * Real time scaled by `accel`: simulated time starts at `epoch` (default: now) and runs `accel` times
 * faster than the wall clock. Timers fire after `ms / accel` real milliseconds.
 */
export function acceleratedClock(accel: number, epoch = Date.now()): Clock {
  if (!(accel >= 1)) throw new RangeError(`acceleration must be >= 1, got ${accel}`);
  const start = Date.now();
  return {
    now: () => epoch + (Date.now() - start) * accel,
    setTimeout(fn, ms) {
      const t = setTimeout(fn, Math.max(0, ms / accel));
      t.unref?.();
      return { cancel: () => clearTimeout(t) };
    },
  };
}

/** A manual clock for tests: nothing happens until `advance(ms)`. Timers fire in time order. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  #timers: { at: number; seq: number; fn: () => void; cancelled: boolean }[] = [];

  constructor(start = 1_700_000_000_000) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const timer = { at: this.#now + Math.max(0, ms), seq: this.#seq++, fn, cancelled: false };
    this.#timers.push(timer);
    return {
      cancel: () => {
        timer.cancelled = true;
      },
    };
  }

  /** Number of timers that are scheduled and not cancelled. */
  get pending(): number {
    return this.#timers.filter((t) => !t.cancelled).length;
  }

  /** Move time forward by `ms`, firing every timer due on the way (including ones they schedule). */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      this.#timers = this.#timers.filter((t) => !t.cancelled);
      this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
    }
    this.#now = target;
  }
}
