import type { Clock, Timer } from "@esp-fleet/common/clock";

/**
 * One timer queue for a whole fleet, driven by a single clock timer instead of one `setTimeout` per
 * device per period. Targets are objects with an `onTimer(slot, at)` method; each (target, slot) pair
 * owns ONE reusable `TimerHandle` (`scheduler.timer(target, slot)`), so re-arming a device's reading
 * timer every second allocates nothing.
 *
 * Entries fire in (time, scheduling order) — exactly the order of a binary min-heap over all entries
 * (property test against that reference). The structure is a bucket queue on a `bucketMs` grid:
 * - a ring of `RING` buckets holds entries due within the next `RING × bucketMs` clock ms, unsorted
 *   (an array push; a cancel is a swap-remove);
 * - entries further away wait in an overflow list, moved into the ring as time approaches them;
 * - only the buckets whose time has come are moved into a small binary heap (~ one bucket: 100 entries
 *   for 10,000 devices on a 1 s period and a 10 ms grid), which orders them exactly.
 * With a 30,000-entry heap every firing cost two root-to-leaf walks through cold memory and one new
 * entry object; here it is a push into a hot array and a ~7-level walk in a small heap.
 *
 * Invariant: the heap holds every live entry whose bucket key (`floor(at / bucketMs)`) is ≤ `#horizon`;
 * the ring and the overflow hold the entries with a later key. The heap's top is therefore the
 * earliest entry overall once `#horizon` has reached the current time's key.
 *
 * A batch stops after `budgetMs` of wall time and yields to the event loop, so 10,000 devices never hold
 * the loop for long. With `quantum` > 0 (clock ms) the clock timer is only ever armed on multiples of
 * `quantum`: entries fire up to one quantum late, in the same order, in batches — 10,000 devices on a
 * 1 s period cost 100 timer wake-ups per second with a 10 ms quantum instead of ~1,000.
 */
export interface TimerTarget {
  /** `at` is the scheduled (nominal) time on the scheduler's clock. Must not throw; errors are counted. */
  onTimer(slot: number, at: number): void;
}

const NOWHERE = 0;
const IN_HEAP = 1;
const IN_BUCKET = 2;

/** A reusable timer of one (target, slot): armed by `scheduler.set(handle, at)`, voided by `cancel`. */
export class TimerHandle {
  readonly target: TimerTarget;
  readonly slot: number;
  /** Scheduled clock time (meaningful while armed). */
  at = 0;
  /** Scheduling order: ties on `at` fire in the order they were set. */
  seq = 0;
  /** Bucket key of `at`. */
  key = 0;
  /** NOWHERE, IN_HEAP or IN_BUCKET (a ring bucket or the overflow list, `list`). */
  where = NOWHERE;
  /** Index in the heap or in `list`. */
  index = -1;
  list: TimerHandle[] | undefined = undefined;

  constructor(target: TimerTarget, slot: number) {
    this.target = target;
    this.slot = slot;
  }

  get armed(): boolean {
    return this.where !== NOWHERE;
  }
}

/** Ring size (buckets): with a 10 ms grid the ring spans 40.96 s, past the 30 s heartbeat. */
const RING = 4096;

export class Scheduler {
  readonly clock: Clock;
  readonly #bucketMs: number;
  #heap: TimerHandle[] = [];
  /** `#ring[key % RING]`, created on first use. */
  readonly #ring: (TimerHandle[] | undefined)[] = new Array<TimerHandle[] | undefined>(RING);
  #ringCount = 0;
  #overflow: TimerHandle[] = [];
  /** A lower bound of the overflow's smallest key (exact after a rescan). */
  #overflowMinKey = Infinity;
  /** Every key ≤ horizon is in the heap. */
  #horizon: number;
  #size = 0;
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
  /**
   * How late (clock ms) the first entry of the latest batch fired after its nominal time: about one
   * quantum when the fleet keeps pace, growing while the process falls behind (a backlog to work off).
   */
  lagMs = 0;

  constructor(
    clock: Clock,
    opts: { budgetMs?: number; quantum?: number; yieldFn?: (fn: () => void) => void; bucketMs?: number } = {},
  ) {
    this.clock = clock;
    this.#budgetMs = opts.budgetMs ?? 8;
    this.#yieldFn = opts.yieldFn;
    this.#quantum = opts.quantum ?? 0;
    // The grid only groups entries (ordering inside a bucket is exact), so any width is correct; the
    // firing quantum is the natural one (one bucket per wake-up).
    this.#bucketMs = opts.bucketMs ?? (this.#quantum > 0 ? this.#quantum : 16);
    this.#horizon = this.#keyOf(clock.now());
  }

  #keyOf(at: number): number {
    return Math.floor(at / this.#bucketMs);
  }

  #align(at: number): number {
    const q = this.#quantum;
    return q > 0 ? Math.ceil(at / q) * q : at;
  }

  /** Entries armed (not cancelled, not yet fired). */
  get size(): number {
    return this.#size;
  }

  /** The reusable handle of `target`'s timer `slot` (create it once, e.g. in the target's constructor). */
  timer(target: TimerTarget, slot: number): TimerHandle {
    return new TimerHandle(target, slot);
  }

  /** Arm `handle` to fire at clock time `at` (re-arming an armed handle moves it). */
  set(handle: TimerHandle, at: number): void {
    if (handle.where !== NOWHERE) this.#remove(handle);
    else this.#size++;
    handle.at = at;
    handle.seq = this.#seq++;
    handle.key = this.#keyOf(at);
    this.#insert(handle);
    if (!this.#stopped && at < this.#armedAt) {
      const aligned = this.#align(at);
      if (aligned < this.#armedAt) this.#arm(aligned);
    }
  }

  /** One-off form: a new handle armed at `at` (prefer `timer()` + `set()` for anything periodic). */
  schedule(target: TimerTarget, slot: number, at: number): TimerHandle {
    const h = new TimerHandle(target, slot);
    this.set(h, at);
    return h;
  }

  cancel(handle: TimerHandle | undefined): void {
    if (handle && handle.where !== NOWHERE) {
      this.#remove(handle);
      this.#size--;
    }
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
    this.#advanceTo(this.#keyOf(now));
    let n = 0;
    const heap = this.#heap;
    if (heap.length > 0 && (heap[0] as TimerHandle).at <= now) this.lagMs = now - (heap[0] as TimerHandle).at;
    while (heap.length > 0) {
      const top = heap[0] as TimerHandle;
      if (top.at > now) break;
      this.#heapPop();
      top.where = NOWHERE;
      top.index = -1;
      this.#size--;
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
    const next = this.#peekNext();
    if (next !== undefined && next < this.#armedAt) this.#arm(this.#align(next));
  }

  /** Earliest armed time, pulling the next non-empty bucket into the heap if the heap is empty. */
  #peekNext(): number | undefined {
    if (this.#heap.length === 0 && this.#size > 0) this.#advanceTo(this.#nextKey());
    return this.#heap[0]?.at;
  }

  /** Smallest key among the ring and the overflow (both non-empty → the ring's; only called when size > 0). */
  #nextKey(): number {
    if (this.#ringCount > 0) {
      for (let k = this.#horizon + 1; ; k++) {
        const b = this.#ring[ringIndex(k)];
        if (b && b.length > 0) return k;
      }
    }
    let min = Infinity;
    for (const h of this.#overflow) if (h.key < min) min = h.key;
    this.#overflowMinKey = min;
    return min;
  }

  /** Move every entry with key ≤ `key` into the heap. */
  #advanceTo(key: number): void {
    const from = this.#horizon;
    if (!(key > from && key < Infinity)) return;
    this.#horizon = key;
    if (this.#ringCount > 0) {
      // Ring buckets (from, key], at most one lap.
      const last = Math.min(key, from + RING);
      for (let k = from + 1; k <= last && this.#ringCount > 0; k++) {
        const b = this.#ring[ringIndex(k)];
        if (!b || b.length === 0) continue;
        // Every ring entry's key is within (from, from + RING], so this bucket holds key k only.
        for (let i = 0; i < b.length; i++) this.#heapPush(b[i] as TimerHandle);
        this.#ringCount -= b.length;
        b.length = 0;
      }
    }
    // Overflow entries now within reach: into the heap or the ring.
    if (this.#overflowMinKey <= key + RING) {
      const old = this.#overflow;
      this.#overflow = [];
      this.#overflowMinKey = Infinity;
      for (let i = 0; i < old.length; i++) this.#insert(old[i] as TimerHandle);
    }
  }

  #bucketFor(key: number): TimerHandle[] {
    const i = ringIndex(key);
    let b = this.#ring[i];
    if (!b) {
      b = [];
      this.#ring[i] = b;
    }
    return b;
  }

  #insert(h: TimerHandle): void {
    if (h.key <= this.#horizon) this.#heapPush(h);
    else if (h.key <= this.#horizon + RING) {
      this.#listPush(this.#bucketFor(h.key), h);
      this.#ringCount++;
    } else {
      this.#listPush(this.#overflow, h);
      if (h.key < this.#overflowMinKey) this.#overflowMinKey = h.key;
    }
  }

  #remove(h: TimerHandle): void {
    if (h.where === IN_HEAP) this.#heapRemove(h.index);
    else {
      const list = h.list as TimerHandle[];
      const last = list.pop() as TimerHandle;
      if (last !== h) {
        list[h.index] = last;
        last.index = h.index;
      }
      if (list !== this.#overflow) this.#ringCount--;
      h.list = undefined;
    }
    h.where = NOWHERE;
    h.index = -1;
  }

  #listPush(list: TimerHandle[], h: TimerHandle): void {
    h.where = IN_BUCKET;
    h.list = list;
    h.index = list.length;
    list.push(h);
  }

  // ----------------------------------------------------------------------------- binary heap (indexed)

  #heapPush(h: TimerHandle): void {
    h.where = IN_HEAP;
    h.list = undefined;
    const heap = this.#heap;
    heap.push(h);
    this.#siftUp(heap.length - 1, h);
  }

  #heapPop(): void {
    const heap = this.#heap;
    const last = heap.pop() as TimerHandle;
    if (heap.length > 0) this.#siftDown(0, last);
  }

  #heapRemove(i: number): void {
    const heap = this.#heap;
    const last = heap.pop() as TimerHandle;
    if (i >= heap.length) return; // it was the last one
    const parent = i > 0 ? (heap[(i - 1) >> 1] as TimerHandle) : undefined;
    if (parent && less(last, parent)) this.#siftUp(i, last);
    else this.#siftDown(i, last);
  }

  #siftUp(i: number, h: TimerHandle): void {
    const heap = this.#heap;
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = heap[p] as TimerHandle;
      if (!less(h, parent)) break;
      heap[i] = parent;
      parent.index = i;
      i = p;
    }
    heap[i] = h;
    h.index = i;
  }

  #siftDown(i: number, h: TimerHandle): void {
    const heap = this.#heap;
    const n = heap.length;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      let c = l;
      if (r < n && less(heap[r] as TimerHandle, heap[l] as TimerHandle)) c = r;
      const child = heap[c] as TimerHandle;
      if (!less(child, h)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = h;
    h.index = i;
  }
}

function ringIndex(key: number): number {
  const i = key % RING;
  return i < 0 ? i + RING : i;
}

function less(a: TimerHandle, b: TimerHandle): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}
