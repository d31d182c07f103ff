import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { Unacked } from "../src/transports/unacked.ts";

const frame = (n: number) => Buffer.from([n & 0xff, n >> 8]);

describe("Unacked (a session's QoS 1 messages in flight)", () => {
  it("keeps send order, forgets acknowledged ones in any order, and reports unknown identifiers", () => {
    const u = new Unacked();
    for (const id of [5, 6, 7, 8, 9]) u.push(id, frame(id));
    expect(u.remove(7)).toBe(true); // out of order: a hole in the middle
    expect(u.remove(7)).toBe(false); // a second PUBACK for it
    expect(u.remove(42)).toBe(false); // never sent
    expect(u.has(6)).toBe(true);
    expect(u.has(7)).toBe(false);
    expect([...u.frames()].map((f) => f[0])).toEqual([5, 6, 8, 9]);
    expect(u.size).toBe(4);
    u.clear();
    expect(u.size).toBe(0);
    expect([...u.frames()]).toEqual([]);
  });

  it("property: behaves as a Map in insertion order, through growth and holes", () => {
    // ops: push the next identifier, ack the k-th oldest in flight, clear (an emulated reboot)
    const op = fc.oneof(
      { weight: 5, arbitrary: fc.constant({ t: "push" as const }) },
      { weight: 4, arbitrary: fc.record({ t: fc.constant("ack" as const), k: fc.nat(40) }) },
      { weight: 1, arbitrary: fc.record({ t: fc.constant("miss" as const), id: fc.integer({ min: 1, max: 65535 }) }) },
      { weight: 1, arbitrary: fc.constant({ t: "clear" as const }) },
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300, size: "max" }), (ops) => {
        const u = new Unacked();
        const model = new Map<number, Buffer>();
        let next = 65_530; // wraps past 65535 within a run
        for (const o of ops) {
          if (o.t === "push") {
            const id = next;
            next = next === 65535 ? 1 : next + 1;
            if (model.has(id)) continue; // the session never reuses an identifier in flight
            const f = frame(id);
            u.push(id, f);
            model.set(id, f);
          } else if (o.t === "ack") {
            const ids = [...model.keys()];
            if (ids.length === 0) continue;
            const id = ids[o.k % ids.length] as number;
            expect(u.remove(id)).toBe(true);
            model.delete(id);
          } else if (o.t === "miss") {
            expect(u.remove(o.id)).toBe(model.delete(o.id));
          } else {
            u.clear();
            model.clear();
          }
          expect(u.size).toBe(model.size);
        }
        expect([...u.frames()]).toEqual([...model.values()]);
        for (const id of model.keys()) expect(u.has(id)).toBe(true);
      }),
    );
  });
});
