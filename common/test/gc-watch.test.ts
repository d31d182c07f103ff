import { describe, expect, it } from "vitest";
import { watchGc } from "../src/gc-watch.ts";

describe("watchGc", () => {
  it("reports the scavenges caused by allocating, with the worst pause, and starts over on take()", async () => {
    const gc = watchGc();
    try {
      let keep: object[] = [];
      for (let i = 0; i < 2_000_000; i++) {
        keep.push({ i, s: `x${i}` });
        if (keep.length > 50_000) keep = [];
      }
      await new Promise((r) => setTimeout(r, 50)); // observer entries arrive asynchronously
      const first = gc.take();
      expect(first.minor).toBeGreaterThan(0);
      expect(first.worst).toBeGreaterThan(0);
      expect(first.worstKind).not.toBe("");
      const total = first.minor + first.major + first.incremental + first.other;
      expect(first.worst).toBeLessThanOrEqual(total);
      const second = gc.take(); // nothing allocated since
      expect(second.worst).toBeLessThan(first.worst + 1e-9);
      expect(second.minor).toBeLessThan(first.minor);
    } finally {
      gc.stop();
    }
  });
});
