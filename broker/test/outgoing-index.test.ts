import fc from "fast-check";
import { createRequire } from "node:module";
import { describe, expect, it } from "vitest";
import { OutgoingIndex, type OutgoingPersistence, type QueuedPacket } from "../src/outgoing-index.ts";

const require = createRequire(import.meta.url);
const memoryPersistence = require("aedes-persistence") as () => OutgoingPersistence;

async function streamed(p: OutgoingPersistence, id: string): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const x of p.outgoingStream({ id })) out.push(x);
  return out;
}

type Op =
  | { t: "enqueue"; clients: number[]; broker: number; counter: number }
  | { t: "update"; client: number; broker: number; counter: number; messageId: number }
  | { t: "clear"; client: number; messageId: number };

// Few brokers, counters and packet ids, so that collisions (the cases where order decides) are common.
const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    t: fc.constant("enqueue" as const),
    clients: fc.uniqueArray(fc.nat(2), { minLength: 1, maxLength: 3 }),
    broker: fc.nat(1),
    counter: fc.nat(12),
  }),
  fc.record({
    t: fc.constant("update" as const),
    client: fc.nat(2),
    broker: fc.nat(1),
    counter: fc.nat(12),
    messageId: fc.integer({ min: 1, max: 6 }),
  }),
  fc.record({ t: fc.constant("clear" as const), client: fc.nat(2), messageId: fc.integer({ min: 1, max: 6 }) }),
);

describe("OutgoingIndex (indexed session queues for aedes-persistence's in-memory store)", () => {
  // as deployed (16 slots to start with, doubling as they fill); 4 slots, so that different keys share one;
  // and 1 slot to start with, doubling — up to 4, and up to the deployed limit
  it.each([
    ["indexes as deployed", {}],
    ["indexes of 4 slots", { initialSlotBits: 2, slotBits: 2 }],
    ["indexes that grow from 1 slot to 4", { initialSlotBits: 0, slotBits: 2 }],
    ["indexes that grow from 1 slot", { initialSlotBits: 0 }],
  ])("property (%s): same results, errors and queue contents as aedes-persistence's scans, for the operations Aedes makes", async (_, options) => {
    await fc.assert(
      // (size "max": lengths up to 120; fast-check's default size keeps arrays at ~5 operations)
      fc.asyncProperty(fc.array(op, { maxLength: 120, size: "max" }), async (ops) => {
        const original = memoryPersistence();
        const indexed = memoryPersistence();
        const index = new OutgoingIndex(options);
        index.install(indexed);
        let payload = 0;
        for (const o of ops) {
          if (o.t === "enqueue") {
            const packet = {
              cmd: "publish",
              topic: "a/b",
              payload: Buffer.from([payload++ & 0xff]),
              qos: 1,
              brokerId: `b${o.broker}`,
              brokerCounter: o.counter,
            };
            const subs = o.clients.map((c) => ({ clientId: `c${c}` }));
            await original.outgoingEnqueueCombi(subs, packet);
            await indexed.outgoingEnqueueCombi(subs, packet);
          } else if (o.t === "update") {
            const make = (): QueuedPacket => ({
              cmd: "publish",
              topic: "a/b",
              qos: 1,
              brokerId: `b${o.broker}`,
              brokerCounter: o.counter,
              messageId: o.messageId,
            });
            const a = await original.outgoingUpdate({ id: `c${o.client}` }, make()).then(
              () => "ok",
              (e: Error) => e.message,
            );
            const b = await indexed.outgoingUpdate({ id: `c${o.client}` }, make()).then(
              () => "ok",
              (e: Error) => e.message,
            );
            expect(b).toBe(a);
          } else {
            const a = await original.outgoingClearMessageId({ id: `c${o.client}` }, { messageId: o.messageId });
            const b = await indexed.outgoingClearMessageId({ id: `c${o.client}` }, { messageId: o.messageId });
            expect(b).toEqual(a);
          }
        }
        for (const c of [0, 1, 2]) {
          const queued = await streamed(original, `c${c}`);
          expect(await streamed(indexed, `c${c}`)).toEqual(queued);
          // the distinct identifiers held, which the identifier gate counts on (packet-ids.ts)
          const ids = new Set(queued.map((p) => (p as QueuedPacket).messageId).filter((id) => id !== undefined));
          expect(index.idsHeld(`c${c}`)).toBe(ids.size);
        }
      }),
      { numRuns: 300 },
    );
  });

  it("a subscriber with 20,000 messages in flight: every delivery and PUBACK (newest first, the scan's worst case) finds its packet", async () => {
    // (its indexes double from 16 slots to 32,768 on the way)
    const index = new OutgoingIndex();
    const N = 20_000;
    for (let i = 0; i < N; i++)
      index.enqueue("ingest", { cmd: "publish", topic: "t", qos: 1, brokerId: "b", brokerCounter: i + 1 });
    for (let i = 0; i < N; i++) index.update("ingest", { brokerId: "b", brokerCounter: i + 1, messageId: (i % 65_535) + 1 });
    expect(index.length("ingest")).toBe(N);
    // acknowledged newest first: the worst order for the scan (each PUBACK walked the whole queue)
    for (let i = N - 1; i >= 0; i--) expect(index.clear("ingest", (i % 65_535) + 1)?.brokerCounter).toBe(i + 1);
    expect(index.length("ingest")).toBe(0);
    expect(index.packets("ingest")).toEqual([]);
  });
});
