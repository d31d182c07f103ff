import { describe, expect, it } from "vitest";
import { exposedGc, oldGenerationBytes } from "@esp-fleet/common/testing";
import { OutgoingIndex } from "../src/outgoing-index.ts";

// A file of its own: what V8 learns from other tests' long queues (allocation-site pretenuring) would change
// what this one measures.
describe("OutgoingIndex and the garbage collector", () => {
  it("acknowledged messages do not keep later ones from the young generation's collections (no nepotism)", () => {
    // Garbage in the old generation counts as alive for the young generation's collections until a full
    // one. A removed node that kept its `next`, or its packet, or an obsolete `Map` table of the index (V8
    // links it to its successor) kept the next node or table alive until promoted as well, and so on down
    // the queue: every message's node, packet copy and payload promoted (docs/benchmarks.md, "End to end,
    // fourteenth session"). Before the fix the old generation grew ~17 MB here, in every run.
    const gc = exposedGc();
    const index = new OutgoingIndex();
    const put = (n: number) => {
      index.enqueue("ingest", {
        cmd: "publish",
        topic: "t",
        payload: Buffer.from("0123456789"),
        qos: 1,
        brokerId: "b",
        brokerCounter: n,
      });
      index.update("ingest", { brokerId: "b", brokerCounter: n, messageId: (n % 65_535) + 1 });
    };
    // 100 in flight, acknowledged in order; a scavenge every 1,000 messages, so none is alive at two
    const run = (from: number, to: number) => {
      for (let n = from; n <= to; n++) {
        put(n);
        if (index.clear("ingest", ((n - 100) % 65_535) + 1)?.brokerCounter !== n - 100) throw new Error(`lost ${n - 100}`);
        if (n % 1000 === 0) gc({ type: "minor" });
      }
    };
    for (let n = 1; n <= 100; n++) put(n);
    run(101, 10_100); // (optimized code from here on)
    gc(); // the 100 in flight now are in the old generation, as a backlog leaves them
    const before = oldGenerationBytes();
    run(10_101, 60_100);
    const grown = oldGenerationBytes() - before;
    // 50,000 messages of ~300 bytes (node, packet copy, payload view) each: several MB if they are promoted
    expect(grown).toBeLessThan(1_000_000);
    expect(index.length("ingest")).toBe(100);
  });
});
