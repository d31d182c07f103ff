import { describe, expect, it } from "vitest";
import { createRng } from "@esp-fleet/common/random";
import { ManualClock } from "@esp-fleet/common/clock";
import { SeededRng } from "../src/rng.ts";
import { Scheduler } from "../src/scheduler.ts";
import { sharedKeepaliveTimer } from "../src/transports/keepalive-timer.ts";

describe("SeededRng (class form of createRng)", () => {
  it("produces the same sequence as createRng for every method, including forks", () => {
    for (const seed of [1, 0, 42, "1:FRIDGE_LL_01", "1:ESP32_MT_0099:hw"]) {
      const a = createRng(seed);
      const b = new SeededRng(seed);
      const items = ["a", "b", "c", "d", "e"] as const;
      for (let i = 0; i < 500; i++) {
        expect(b.next()).toBe(a.next());
        expect(b.uniform(-3, 7)).toBe(a.uniform(-3, 7));
        expect(b.int(-78, -45)).toBe(a.int(-78, -45));
        expect(b.normal(5, 0.25)).toBe(a.normal(5, 0.25));
        expect(b.normal(0, 1)).toBe(a.normal(0, 1));
        expect(b.normal(0, 1)).toBe(a.normal(0, 1));
        expect(b.pick(items)).toBe(a.pick(items));
        expect(b.chance(0.3)).toBe(a.chance(0.3));
      }
      const fa = a.fork("x");
      const fb = b.fork("x");
      for (let i = 0; i < 50; i++) expect(fb.normal(1, 2)).toBe(fa.normal(1, 2));
    }
  });
});

describe("shared keep-alive timer", () => {
  it("fires a set interval and never fires a cleared one", async () => {
    let fired = 0;
    let cleared = 0;
    const a = sharedKeepaliveTimer.set(() => fired++, 10);
    const b = sharedKeepaliveTimer.set(() => cleared++, 10);
    sharedKeepaliveTimer.clear(b);
    await new Promise((r) => setTimeout(r, 2100));
    sharedKeepaliveTimer.clear(a);
    expect(fired).toBeGreaterThanOrEqual(1);
    expect(cleared).toBe(0);
  });
});

describe("scheduler quantum", () => {
  it("fires entries on the quantum grid, late by less than one quantum, in (time, scheduling) order", () => {
    const clock = new ManualClock(1000);
    const sched = new Scheduler(clock, { quantum: 10 });
    const fired: [number, number, number][] = [];
    const target = { onTimer: (slot: number, at: number) => fired.push([slot, at, clock.now()]) };
    sched.schedule(target, 1, 1007);
    sched.schedule(target, 2, 1003);
    sched.schedule(target, 3, 1003);
    sched.schedule(target, 4, 1012);
    clock.advance(9);
    expect(fired).toEqual([]);
    clock.advance(1);
    expect(fired).toEqual([
      [2, 1003, 1010],
      [3, 1003, 1010],
      [1, 1007, 1010],
    ]);
    clock.advance(10);
    expect(fired.at(-1)).toEqual([4, 1012, 1020]);
    sched.stop();
  });
});
