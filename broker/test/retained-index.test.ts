import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RetainedIndex } from "../src/retained-index.ts";

const require = createRequire(import.meta.url);
const memoryPersistence = require("aedes-persistence") as () => {
  storeRetained(p: object): Promise<void>;
  createRetainedStreamCombi(patterns: string[]): AsyncIterable<{ topic: string; payload: Buffer }>;
};

const level = fc.constantFrom("LL", "fridge", "F1", "F2", "cmd", "status", "", "$SYS", "a");
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((l) => l.join("/"));
// MQTT filters: '+' anywhere, '#' only last (what Aedes lets through to the persistence).
const filter = fc
  .tuple(fc.array(fc.oneof(level, fc.constant("+")), { minLength: 0, maxLength: 5 }), fc.boolean())
  .filter(([l, hash]) => l.length > 0 || hash)
  .map(([l, hash]) => (hash ? [...l, "#"] : l).join("/"));

async function topicsOf(stream: AsyncIterable<{ topic: string }>): Promise<string[]> {
  const out: string[] = [];
  for await (const p of stream) out.push(p.topic);
  return out.sort();
}

describe("RetainedIndex", () => {
  it("answers every filter with exactly the retained messages aedes-persistence's full scan finds", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(topic, fc.boolean()), { maxLength: 40, size: "max" }), // (topic, false = delete)
        fc.array(filter, { minLength: 1, maxLength: 3 }),
        async (ops, patterns) => {
          const reference = memoryPersistence();
          const index = new RetainedIndex();
          for (const [t, keep] of ops) {
            const packet = { cmd: "publish", topic: t, payload: Buffer.from(keep ? t || "x" : ""), qos: 0, retain: true };
            await reference.storeRetained(packet);
            index.store(packet);
          }
          const viaIndex = { storeRetained: async () => {} } as Parameters<RetainedIndex["install"]>[0];
          index.install(viaIndex);
          expect(await topicsOf(viaIndex.createRetainedStreamCombi!(patterns) as AsyncIterable<{ topic: string }>)).toEqual(
            await topicsOf(reference.createRetainedStreamCombi(patterns)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it("counts and prunes: deleting every retained message leaves an empty index", () => {
    const index = new RetainedIndex();
    for (let i = 0; i < 100; i++) index.store({ topic: `LL/fridge/F${i}/status`, payload: Buffer.from("x") });
    index.store({ topic: "LL/fridge/F1/status", payload: Buffer.from("y") });
    expect(index.size).toBe(100);
    expect([...index.match("LL/fridge/F1/+")].map((p) => Buffer.from(p.payload).toString())).toEqual(["y"]);
    for (let i = 0; i < 100; i++) index.store({ topic: `LL/fridge/F${i}/status`, payload: Buffer.alloc(0) });
    expect(index.size).toBe(0);
    expect([...index.match("#")]).toEqual([]);
  });
});
