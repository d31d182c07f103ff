import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ManualClock } from "@esp-fleet/common/clock";
import { Scheduler, type TimerHandle } from "../src/scheduler.ts";
import { Scheduler as HeapScheduler, type ScheduledEntry } from "./reference-heap-scheduler.ts";

/**
 * The bucket-queue scheduler must fire exactly what the previous binary-heap scheduler fired, in the same
 * order, at the same clock times — for any mix of schedules, re-arms from inside callbacks, cancels,
 * quanta and bucket widths. The reference is the heap scheduler as it was (test/reference-heap-scheduler.ts).
 */

type Op =
  | { kind: "set"; target: number; slot: number; delay: number }
  | { kind: "cancel"; target: number; slot: number }
  | { kind: "advance"; ms: number };

interface Rig {
  set(target: number, slot: number, at: number): void;
  cancel(target: number, slot: number): void;
}

/** A target re-arms some of its slots when fired (as a device's reading and heartbeat timers do). */
function makeTargets(rig: () => Rig, clock: ManualClock, fired: string[], periods: number[]) {
  return periods.map((period, id) => ({
    count: 0,
    onTimer(slot: number, at: number): void {
      fired.push(`${id}/${slot}@${at}:${clock.now()}`);
      this.count++;
      if (slot === 0 && period > 0) rig().set(id, 0, at + period);
      // Now and then something due immediately (same batch) or a cancel of a sibling.
      if (slot === 1 && this.count % 3 === 0) rig().set(id, 2, at);
      if (slot === 2 && this.count % 4 === 0) rig().cancel(id, 0);
    },
  }));
}

function runBucket(ops: Op[], periods: number[], quantum: number, bucketMs: number | undefined): string[] {
  const clock = new ManualClock(1_767_225_600_000);
  const sched = new Scheduler(clock, { quantum, bucketMs });
  const fired: string[] = [];
  const handles = new Map<string, TimerHandle>();
  const rig: Rig = {
    set(t, slot, at) {
      const k = `${t}/${slot}`;
      let h = handles.get(k);
      if (!h) {
        h = sched.timer(targets[t] as (typeof targets)[number], slot);
        handles.set(k, h);
      }
      sched.set(h, at);
    },
    cancel(t, slot) {
      sched.cancel(handles.get(`${t}/${slot}`));
    },
  };
  const targets = makeTargets(() => rig, clock, fired, periods);
  drive(ops, clock, rig, periods.length);
  sched.stop();
  return fired;
}

function runHeap(ops: Op[], periods: number[], quantum: number): string[] {
  const clock = new ManualClock(1_767_225_600_000);
  const sched = new HeapScheduler(clock, { quantum });
  const fired: string[] = [];
  const entries = new Map<string, ScheduledEntry>();
  const rig: Rig = {
    set(t, slot, at) {
      const k = `${t}/${slot}`;
      sched.cancel(entries.get(k));
      entries.set(k, sched.schedule(targets[t] as (typeof targets)[number], slot, at));
    },
    cancel(t, slot) {
      sched.cancel(entries.get(`${t}/${slot}`));
      entries.delete(`${t}/${slot}`);
    },
  };
  const targets = makeTargets(() => rig, clock, fired, periods);
  drive(ops, clock, rig, periods.length);
  sched.stop();
  return fired;
}

function drive(ops: Op[], clock: ManualClock, rig: Rig, targets: number): void {
  for (const op of ops) {
    if (op.kind === "advance") clock.advance(op.ms);
    else if (op.kind === "set") rig.set(op.target % targets, op.slot, clock.now() + op.delay);
    else rig.cancel(op.target % targets, op.slot);
  }
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("set" as const),
      target: fc.nat(50),
      slot: fc.nat(2),
      // Mostly near (ring), sometimes far (overflow), sometimes in the past or fractional.
      delay: fc.oneof(
        fc.integer({ min: 0, max: 2000 }),
        fc.integer({ min: 60_000, max: 400_000 }),
        fc.integer({ min: -50, max: 0 }),
        fc.double({ min: 0, max: 100, noNaN: true }),
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("cancel" as const), target: fc.nat(50), slot: fc.nat(2) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("advance" as const),
      ms: fc.oneof(fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 500_000 })),
    }),
  },
);

describe("bucket-queue scheduler", () => {
  it("fires the same entries in the same order at the same times as the heap scheduler (random schedules)", () => {
    fc.assert(
      fc.property(
        // (size "medium": up to 100 operations; fast-check's default size kept these at ~10)
        fc.array(opArb, { minLength: 1, maxLength: 300, size: "medium" }),
        fc.array(fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 30_000, max: 90_000 })), {
          minLength: 1,
          maxLength: 20,
        }),
        fc.constantFrom(0, 10, 7),
        fc.constantFrom(undefined, 1, 3, 1000),
        (ops, periods, quantum, bucketMs) => {
          const expected = runHeap(ops, periods, quantum);
          const actual = runBucket(ops, periods, quantum, bucketMs);
          expect(actual).toEqual(expected);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("re-arming a handle moves it; a cancelled handle never fires; size counts armed handles", () => {
    const clock = new ManualClock(0);
    const sched = new Scheduler(clock, { quantum: 10 });
    const fired: number[] = [];
    const target = { onTimer: (slot: number) => fired.push(slot) };
    const a = sched.timer(target, 1);
    const b = sched.timer(target, 2);
    sched.set(a, 500);
    sched.set(b, 100_000); // beyond the ring: overflow
    expect(sched.size).toBe(2);
    sched.set(a, 50); // moved earlier
    expect(sched.size).toBe(2);
    clock.advance(50);
    expect(fired).toEqual([1]);
    expect(a.armed).toBe(false);
    sched.cancel(b);
    expect(sched.size).toBe(0);
    clock.advance(200_000);
    expect(fired).toEqual([1]);
    sched.stop();
  });

  it("a periodic timer allocates no new handle: one handle per (target, slot) for 10,000 targets", () => {
    const clock = new ManualClock(0);
    const sched = new Scheduler(clock, { quantum: 10 });
    let fired = 0;
    const targets = Array.from({ length: 10_000 }, (_, i) => {
      const t = {
        h: undefined as TimerHandle | undefined,
        onTimer(_slot: number, at: number) {
          fired++;
          sched.set(t.h as TimerHandle, at + 1000);
        },
      };
      t.h = sched.timer(t, 0);
      sched.set(t.h, (i * 1000) / 10_000);
      return t;
    });
    clock.advance(10_000);
    expect(fired).toBe(100_001); // 10 periods each, and target 0 (phase 0) once more at exactly 10,000
    expect(sched.size).toBe(targets.length);
    sched.stop();
  });
});
