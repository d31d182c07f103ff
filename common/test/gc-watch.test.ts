import { describe, expect, it } from "vitest";
import { watchGc } from "../src/gc-watch.ts";

/** Allocate enough short-lived objects for several scavenges. */
function churn(): void {
  let keep: object[] = [];
  for (let i = 0; i < 2_000_000; i++) {
    keep.push({ i, s: `x${i}` });
    if (keep.length > 50_000) keep = [];
  }
}

describe("watchGc", () => {
  it("reports the scavenges caused by allocating, with the worst pause, and starts over on take()", async () => {
    const gc = watchGc();
    try {
      churn();
      await new Promise((r) => setTimeout(r, 50)); // observer entries arrive asynchronously
      const first = gc.take();
      expect(first.minor).toBeGreaterThan(0);
      expect(first.worst).toBeGreaterThan(0);
      expect(first.worstKind).not.toBe("");
      const total = first.minor + first.major + first.incremental + first.other;
      expect(first.worst).toBeLessThanOrEqual(total);
      expect(first.majorCount > 0).toBe(first.major > 0);
      // taken again in the same synchronous run: no observer callback can have come in between
      const second = gc.take();
      expect(second).toEqual({ minor: 0, major: 0, incremental: 0, other: 0, majorCount: 0, worst: 0, worstKind: "" });
      // and it counts anew from there
      churn();
      await new Promise((r) => setTimeout(r, 50));
      expect(gc.take().minor).toBeGreaterThan(0);
    } finally {
      gc.stop();
    }
  });
});
